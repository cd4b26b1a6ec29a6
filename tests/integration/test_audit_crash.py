"""Crash during a batch: a real ``bxnode serve`` process killed between queueing and commit.

The node gathers a batch of heavy requests and is SIGKILLed while it runs them inside the
open transaction.  After restart the log verifies, none of their entries is there, and
no client received a response.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from node.app import open_store
from node.audit.log import MerkleAuditLog
from node.config import load_config
from node.core import envelope as env_mod
from node.core.model import DocumentQuery, QueryKind
from tests.federation import CTX, ROOT, Federation, make_federation
from tests.waiting import until, until_file


def _set_batch(node_dir: Path, batch_max: int, batch_ms: int) -> None:
    cfg = node_dir / "node.toml"
    text = cfg.read_text()
    lines = [f"batch_max = {batch_max}" if ln.startswith("batch_max") else
             f"batch_ms = {batch_ms}" if ln.startswith("batch_ms") else ln
             for ln in text.splitlines()]
    cfg.write_text("\n".join(lines) + "\n")


class Serve:
    def __init__(self, node_dir: Path) -> None:
        (node_dir / "serve.port").unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "node.cli.main", "serve", "--node-dir", str(node_dir)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        until_file(node_dir / "serve.port", self.proc, timeout=20,
                   on_fail=lambda: "node did not start: " + "".join(self.lines))

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_for(self, needle: str, timeout: float = 10) -> None:
        until(f"{needle!r} in the node's log",
              lambda: any(needle in ln for ln in self.lines), timeout=timeout, every=0.01)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(20)


@pytest.fixture
def fed(tmp_path: Path) -> Federation:
    return make_federation(tmp_path, node_ids=("KAZ-BS", "KGZ-BS"))


def _entries_for(fed: Federation, digest_hex: str) -> int:
    store = open_store(load_config(fed.dirs["KAZ-BS"]))
    try:
        return len(store.query("SELECT seq FROM audit_entries WHERE request_digest=?",
                               (digest_hex,)))
    finally:
        store.close()


def _verify(fed: Federation) -> bool:
    store = open_store(load_config(fed.dirs["KAZ-BS"]))
    try:
        from node.audit.log import log_verifiers
        from node.federation.members_file import load_members

        me = load_members(load_config(fed.dirs["KAZ-BS"]).members).member("KAZ-BS")
        report = MerkleAuditLog(store=store).verify(
            verifiers=log_verifiers("KAZ-BS", [k.public_key for k in me.keys]))
        return report.ok
    finally:
        store.close()


REQUESTS = 40  # heavy ones, so the batch runs for a good while before it commits


def _lock_held(path: Path) -> bool:
    """Does another process hold the writers' flock on ``path`` (node/store/sqlcipher/
    flock.py)?  Taken and given back at once when free."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def test_kill_while_a_batch_runs_before_its_commit(fed: Federation) -> None:
    """The node gathers a batch of 40 requests of 500 documents each (a long window, so
    they all join), reads their documents, then runs them in one transaction — which holds
    the writers' lock (``node.db.lock``) from its ``BEGIN`` to its ``COMMIT`` — and is
    SIGKILLed while it does: nothing of the batch is committed, no client received an
    answer, the log verifies.  (A request's ``lookup`` line is written only once it is
    durable: none is.)"""
    kaz = fed.dirs["KAZ-BS"]
    _set_batch(kaz, batch_max=REQUESTS, batch_ms=8_000)  # gather all of them, then run
    node = Serve(kaz)
    client = fed.client("KGZ-BS")
    asker = fed.client("KGZ-BS", store=False)  # many threads: keeps no receipts of its own
    items = [DocumentQuery(number=f"N{i:07d}", issuing_state="KAZ") for i in range(500)]
    requests = [asker.build(CTX, QueryKind.BATCH, items) for _ in range(REQUESTS)]
    outcomes: list[dict[str, object]] = [{} for _ in requests]

    def ask(i: int) -> None:
        try:
            outcomes[i]["answer"] = asker.send("KAZ-BS", requests[i], expected_items=500)
        except Exception as exc:  # the transport failure is the expected result
            outcomes[i]["error"] = exc

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(REQUESTS)]
    try:
        for t in threads:
            t.start()
        until("the batch's transaction holding the writers' lock",
              lambda: _lock_held(kaz / "node.db.lock"), every=0.001)
        node.kill()
        for t in threads:
            t.join(15)
    finally:
        if node.proc.poll() is None:
            node.kill()
        asker.close()
    assert all("answer" not in o and "error" in o for o in outcomes)
    assert not any('"event": "lookup"' in line for line in node.lines)
    assert sum(_entries_for(fed, env_mod.digest(r).hex()) for r in requests) == 0
    assert _verify(fed)

    # restarted with normal batching, the node answers, and the entry is there and verifies
    _set_batch(kaz, batch_max=256, batch_ms=5)
    node = Serve(kaz)
    try:
        request = client.build(CTX, QueryKind.DOCUMENT,
                               [DocumentQuery(number="N1122334", issuing_state="KAZ")])
        answer = client.send("KAZ-BS", request, expected_items=1)
    finally:
        node.stop()
        client.close()
    assert _entries_for(fed, env_mod.digest(request).hex()) == 1
    assert answer.audit_seq >= 1 and _verify(fed)
