"""Backup and restore that cannot fork the audit log (issue 17 §3), with real processes.

KAZ-BS runs as a real ``bxnode serve`` process on a real SQLCipher file; KGZ-BS and
UZB-BS are real servers over mTLS on 127.0.0.1 (in-process), asking KAZ-BS and witnessing
its log (C2SP tlog-witness, every second here).  Each test: a backup while KAZ-BS serves,
more traffic that the witnesses cosign, KAZ-BS stopped and the old backup restored.  The
restored node is on hold: health NOT_SERVING, lookups refused ``audit_log_on_hold``, no
checkpoint signed, ``audit status`` saying why.  Then either (a) the tail comes back from a
newer backup (the witnesses accept the next checkpoint with a consistency proof from the
size they held) or (b) the operator resets the log: the witnesses refuse the new origin
(``log_origin_unlisted``, its first checkpoint kept as evidence) until governance records
it in the signed registry (``registry propose --log-origin``, three of five sign, publish,
distributed to the witnesses on refresh); then they start it from 0 and keep what they
hold of the old one.  Either way a request accepted before the backup is refused as a
replay.  The federation uses the signed registry (dev governance keys).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from node.app import open_store
from node.audit.log import MerkleAuditLog
from node.config import load_config
from node.core.model import DocumentQuery, QueryKind
from node.federation.registry_keeper import RegistryKeeper
from node.store.witness import WitnessTables
from node.wire import convert
from node.wire.convert import pb
from node.wire.trailers import trailers
from tests.federation import CTX, ROOT, Federation, make_federation
from tests.integration.test_registry import govern, refresh
from tests.waiting import until, until_file

pytestmark = pytest.mark.integration

KAZ, KGZ, UZB = "KAZ-BS", "KGZ-BS", "UZB-BS"
ORIGIN = "bxnode/KAZ-BS"


def bx(*args: str, node: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node.cli.main", *args, "--node-dir",
                           str(node)], cwd=ROOT, capture_output=True, text=True, timeout=120)


class Serve:
    """``bxnode serve`` of one node directory, its JSON log lines collected."""

    def __init__(self, node_dir: Path) -> None:
        (node_dir / "serve.port").unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "node.cli.main", "serve", "--node-dir", str(node_dir)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        until_file(node_dir / "serve.port", self.proc, timeout=30,
                   on_fail=lambda: "node did not start: " + "".join(self.lines))

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def logged(self, event: str) -> list[dict[str, Any]]:
        out = []
        for ln in list(self.lines):
            try:
                rec = json.loads(ln)
            except ValueError:
                continue
            if isinstance(rec, dict) and rec.get("event") == event:
                out.append(rec)
        return out

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(30) == 0


def wait_until(what: str, check: Any, timeout: float = 30) -> Any:
    """Poll ``check`` (another process's progress: witnessing rounds, health) until true."""
    return until(what, check, timeout=timeout, every=0.1)


@dataclass
class Scene:
    fed: Federation
    kaz: Path
    key: Path
    old_backup: Path
    newer_backup: Path
    replay: bytes  # a lookup KAZ-BS answered before the old backup
    backup_size: int  # KAZ-BS's log in the old backup
    witnessed: dict[str, tuple[int, bytes]]  # what each witness holds when KAZ-BS stopped

    @property
    def witnessed_size(self) -> int:
        return max(size for size, _ in self.witnessed.values())


def lookup_wire(fed: Federation, number: str) -> bytes:
    client = fed.client(KGZ, store=False)
    try:
        env = client.build(CTX, QueryKind.DOCUMENT,
                           [DocumentQuery(number=number, issuing_state="KAZ")])
    finally:
        client.close()
    return bytes(pb.LookupRequest(envelope=convert.envelope_to_pb(env)).SerializeToString())


def call(fed: Federation, raw: bytes) -> tuple[grpc.StatusCode, str]:
    d = fed.dirs[KGZ]
    creds = grpc.ssl_channel_credentials(
        root_certificates=(d / "ca.crt").read_bytes(), private_key=(d / "tls.key").read_bytes(),
        certificate_chain=(d / "tls.crt").read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{fed.ports[KAZ]}", creds) as ch:
        lookup: grpc.UnaryUnaryMultiCallable[bytes, bytes] = ch.unary_unary(
            "/bxnode.v1.NodeService/Lookup")
        try:
            lookup(raw, timeout=20)
        except grpc.RpcError as err:
            return err.code(), str(trailers(err).get("bxnode-reason", ""))
    return grpc.StatusCode.OK, ""


def witness_read(fed: Federation, origin: str) -> tuple[grpc.StatusCode, str]:
    """KGZ-BS asks KAZ-BS's WitnessService what it holds of ``origin``."""
    from node.wire.audit import apb

    d = fed.dirs[KGZ]
    creds = grpc.ssl_channel_credentials(
        root_certificates=(d / "ca.crt").read_bytes(), private_key=(d / "tls.key").read_bytes(),
        certificate_chain=(d / "tls.crt").read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{fed.ports[KAZ]}", creds) as ch:
        try:
            ch.unary_unary(
                "/bxnode.v1.WitnessService/GetWitnessedCheckpoint",
                request_serializer=apb.GetWitnessedCheckpointRequest.SerializeToString,
                response_deserializer=apb.GetWitnessedCheckpointResponse.FromString)(
                apb.GetWitnessedCheckpointRequest(origin=origin), timeout=20)
        except grpc.RpcError as err:
            return err.code(), str(trailers(err).get("bxnode-reason", ""))
    return grpc.StatusCode.OK, ""


def witness_state(fed: Federation, witness: str) -> dict[str, tuple[int, bytes]]:
    """What ``witness`` holds of each log: ``{origin: (size, root)}``."""
    store = open_store(load_config(fed.dirs[witness]))
    try:
        tables = WitnessTables(store)
        tables.ensure_schema()
        out = {}
        for origin in tables.states():
            row = tables.state(origin)
            assert row is not None
            out[origin] = (row.size, row.root)
        return out
    finally:
        store.close()


def witness_evidence(fed: Federation, witness: str) -> list[Any]:
    store = open_store(load_config(fed.dirs[witness]))
    try:
        return WitnessTables(store).evidence()
    finally:
        store.close()


def kaz_log(fed: Federation) -> tuple[int, int, list[str]]:
    """``(entries, latest checkpoint size, checkpoint origins)`` of KAZ-BS's log."""
    store = open_store(load_config(fed.dirs[KAZ]))
    try:
        log = MerkleAuditLog(store=store, node_id=KAZ)
        head = log.latest_head()
        origins = sorted({h.note.split(b"\n", 1)[0].decode() for h in log.heads()})
        return log.next_seq() - 1, head.size if head else 0, origins
    finally:
        store.close()


def witnessed_by_all(fed: Federation, origin: str, at_least: int) -> bool:
    return all(witness_state(fed, w).get(origin, (0, b""))[0] >= at_least for w in (KGZ, UZB))


def set_witness_interval(node_dir: Path, seconds: int) -> None:
    """Witness every ``seconds``, and fetch newer registry versions from peers as often."""
    cfg = node_dir / "node.toml"
    text = "\n".join(f"witness_interval_s = {seconds}"
                     if ln.startswith("witness_interval_s") else ln
                     for ln in cfg.read_text().splitlines()) + "\n"
    assert "\n[federation]\n" in text
    cfg.write_text(text.replace("\n[federation]\n", f"\n[federation]\nrefresh_s = {seconds}\n",
                                1))


def registry_version(fed: Federation, node: str) -> int:
    """The registry version ``node`` trusts (its database, as the CLI reads it)."""
    cfg = load_config(fed.dirs[node])
    assert cfg.registry is not None
    store = open_store(cfg)
    try:
        return RegistryKeeper.trusted_version(store=store, path=cfg.registry).version
    finally:
        store.close()


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    """Up to the restore: backups taken while serving, the witnesses ahead of the old one."""
    fed = make_federation(tmp_path, registry=True)
    kaz = fed.dirs[KAZ]
    set_witness_interval(kaz, 1)
    for n in (KGZ, UZB):
        fed.start(n)
    key = tmp_path / "backup.key"
    r = bx("backup-keygen", "--out", str(key), node=kaz)
    assert r.returncode == 0, r.stderr
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    node = Serve(kaz)
    try:
        replay = lookup_wire(fed, "N0000001")
        assert call(fed, replay) == (grpc.StatusCode.OK, "")
        entries, _, _ = kaz_log(fed)
        wait_until("the witnesses to cosign the first lookup",
                   lambda: witnessed_by_all(fed, ORIGIN, entries))
        old = tmp_path / "old.bxb"
        r = bx("backup", "--out", str(old), "--to", f"{key}.pub", "--json", node=kaz)
        assert r.returncode == 0, r.stderr
        backup_size = json.loads(r.stdout)["audit_size"]
        assert backup_size >= entries
        for i in range(3):  # after the backup: answered, and witnessed
            assert call(fed, lookup_wire(fed, f"N000010{i}")) == (grpc.StatusCode.OK, "")
        entries, _, _ = kaz_log(fed)
        wait_until("the witnesses to cosign the later lookups",
                   lambda: witnessed_by_all(fed, ORIGIN, entries))
        newer = tmp_path / "newer.bxb"
        r = bx("backup", "--out", str(newer), "--to", f"{key}.pub", node=kaz)
        assert r.returncode == 0, r.stderr
    finally:
        node.stop()
    held = {w: witness_state(fed, w)[ORIGIN] for w in (KGZ, UZB)}
    assert all(size > backup_size for size, _ in held.values())
    r = bx("restore", str(old), "--key", str(key), "--json", node=kaz)
    out = json.loads(r.stdout)
    assert r.returncode == 4, r.stdout + r.stderr  # restored, and on hold
    assert out["on_hold"] is True and out["audit_size"] == backup_size
    assert out["witnessed"] == {w: size for w, (size, _) in held.items()}
    assert "witnessed size" in out["detail"] and "rolled back" in out["detail"]
    assert Path(out["replaced"]).is_file()  # the database it replaced is kept
    yield Scene(fed, kaz, key, old, newer, replay, backup_size, held)
    fed.stop_all()


def check_on_hold(s: Scene) -> None:
    """The restored node refuses to serve and to sign, and says why."""
    r = bx("audit", "status", "--json", node=s.kaz)
    assert r.returncode == 1
    status = json.loads(r.stdout)
    assert status["on_hold"] is True and status["hold"]["backup_size"] == s.backup_size
    assert status["hold"]["witnessed"] == {w: size for w, (size, _) in s.witnessed.items()}
    assert "the log holds only" in status["hold"]["detail"]
    node = Serve(s.kaz)
    try:
        r = bx("health", node=s.kaz)
        assert r.returncode == 1 and "NOT_SERVING" in r.stdout + r.stderr
        [line] = node.logged("audit_log_on_hold")
        assert line["level"] == "error" and "recover-tail" in line["detail"]
        assert call(s.fed, lookup_wire(s.fed, "N0000200")) == (
            grpc.StatusCode.UNAVAILABLE, "audit_log_on_hold")
        # nor does it answer as a witness: its witness state is as old as the backup
        assert witness_read(s.fed, f"bxnode/{KGZ}") == (
            grpc.StatusCode.UNAVAILABLE, "audit_log_on_hold")
    finally:
        node.stop()
    entries, checkpoint, _ = kaz_log(s.fed)
    assert (entries, checkpoint) == (s.backup_size, s.backup_size)  # nothing signed, appended
    for w in (KGZ, UZB):  # the witnesses still hold the same checkpoint; nothing inconsistent
        assert witness_state(s.fed, w)[ORIGIN] == s.witnessed[w]
        assert witness_evidence(s.fed, w) == []


def test_restored_node_recovers_the_tail_from_a_newer_backup(scene: Scene) -> None:
    s = scene
    check_on_hold(s)
    r = bx("audit", "recover-tail", "--from", str(s.newer_backup), "--key", str(s.key),
           "--json", node=s.kaz)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["on_hold"] is False and out["local_size"] == s.backup_size
    assert out["size"] >= s.witnessed_size
    node = Serve(s.kaz)
    try:
        r = bx("health", node=s.kaz)
        assert r.returncode == 0, r.stdout + r.stderr
        assert call(s.fed, lookup_wire(s.fed, "N0000300")) == (grpc.StatusCode.OK, "")
        assert witness_read(s.fed, f"bxnode/{KGZ}") == (grpc.StatusCode.OK, "")
        # accepted before the backup: its nonce came back with the restore
        assert call(s.fed, s.replay) == (grpc.StatusCode.UNAUTHENTICATED, "replayed_nonce")
        entries, _, origins = kaz_log(s.fed)
        # the witnesses took the next checkpoint with a consistency proof from their size
        wait_until("the witnesses to cosign past the recovered tail",
                   lambda: witnessed_by_all(s.fed, ORIGIN, entries))
        r = bx("audit", "verify", "--witnesses", "--json", node=s.kaz)
        assert r.returncode == 0, r.stdout + r.stderr
        verified = json.loads(r.stdout)
        assert all(w["ok"] and w["size"] >= entries for w in verified["witnesses"])
        # a backup that holds all the witnesses hold restores without a hold
        latest = s.old_backup.with_name("latest.bxb")
        r = bx("backup", "--out", str(latest), "--to", f"{s.key}.pub", node=s.kaz)
        assert r.returncode == 0, r.stderr
    finally:
        node.stop()
    assert origins == [ORIGIN]
    for w in (KGZ, UZB):
        assert witness_evidence(s.fed, w) == []  # never an inconsistent checkpoint
    r = bx("restore", str(latest), "--key", str(s.key), "--json", node=s.kaz)
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["on_hold"] is False
    r = bx("audit", "status", node=s.kaz)
    assert r.returncode == 0 and "ON HOLD" not in r.stdout


def test_restored_node_resets_its_log_and_the_registry_records_the_new_origin(
        scene: Scene) -> None:
    s = scene
    new_origin = f"{ORIGIN}/log-2"
    check_on_hold(s)
    r = bx("audit", "reset-log", "--reason", "disk lost after the nightly backup",
           "--json", node=s.kaz)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["new_origin"] == new_origin and out["log_size"] == s.backup_size
    assert out["witnessed"] == {w: size for w, (size, _) in s.witnessed.items()}
    # it names the exact registry change governance has to make
    assert out["registry_change"] == {
        "node_id": KAZ, "log_origin": new_origin,
        "propose": f"bxnode registry propose --log-origin {KAZ} {new_origin}"}
    node = Serve(s.kaz)
    try:
        r = bx("health", node=s.kaz)
        assert r.returncode == 0, r.stdout + r.stderr
        assert call(s.fed, lookup_wire(s.fed, "N0000400")) == (grpc.StatusCode.OK, "")
        assert call(s.fed, s.replay) == (grpc.StatusCode.UNAUTHENTICATED, "replayed_nonce")
        # an origin the registry does not list: each witness refuses it and keeps its first
        # checkpoint as evidence; it cosigns nothing of it
        wait_until("the witnesses to refuse the unlisted origin", lambda: all(
            [e.reason for e in witness_evidence(s.fed, w)] == ["log_origin_unlisted"]
            for w in (KGZ, UZB)))
        for w in (KGZ, UZB):
            [kept] = witness_evidence(s.fed, w)
            assert kept.origin == new_origin and kept.stored_note is None
            assert kept.submitted_note.startswith(f"{new_origin}\n".encode())
            assert new_origin not in witness_state(s.fed, w)
        [hint, *_] = node.logged("log_origin_unlisted")  # the node says what to propose
        assert hint["level"] == "error" and hint["origin"] == new_origin
        assert f"--log-origin {KAZ} {new_origin}" in hint["detail"]
        r = bx("audit", "verify", "--witnesses", "--json", node=s.kaz)
        assert r.returncode == 1, r.stdout + r.stderr
        verdict = json.loads(r.stdout)
        assert verdict["ok"] is False and verdict["reason"] == "log_origin_unlisted"
        assert f"--log-origin {KAZ} {new_origin}" in verdict["problem"]
        # governance records the reset: propose, three of five sign, publish on KGZ-BS;
        # UZB-BS fetches it from its peer, KAZ-BS on its own refresh
        govern(s.fed, "--log-origin", KAZ, new_origin, publish_on=KGZ)
        refresh(s.fed, KGZ, UZB)
        entries, _, _ = kaz_log(s.fed)
        wait_until("the witnesses to cosign the new origin",
                   lambda: witnessed_by_all(s.fed, new_origin, entries))
        wait_until("KAZ-BS to apply the registry version",
                   lambda: registry_version(s.fed, KAZ) == 2)
        r = bx("audit", "verify", "--witnesses", "--json", node=s.kaz)
        assert r.returncode == 0, r.stdout + r.stderr
        assert all(w["ok"] and w["size"] >= entries for w in json.loads(r.stdout)["witnesses"])
    finally:
        node.stop()
    cosigned = entries  # what both witnesses were seen to cosign under the new origin
    entries, _, origins = kaz_log(s.fed)  # the node may have appended since (its own entries)
    assert origins == [ORIGIN, new_origin]
    for w in (KGZ, UZB):
        state = witness_state(s.fed, w)
        # the old origin's evidence is still held, unchanged, beside the new origin
        assert state[ORIGIN] == s.witnessed[w]
        assert state[new_origin][0] >= cosigned
        [unlisted, reset] = witness_evidence(s.fed, w)
        assert unlisted.reason == "log_origin_unlisted"
        assert reset.reason == "log_reset" and reset.origin == ORIGIN
        assert reset.stored_note.startswith(f"{ORIGIN}\n{s.witnessed[w][0]}\n".encode())
        assert reset.submitted_note.startswith(f"{new_origin}\n".encode())
    # the reset is itself an entry of the log, sealed under the new origin
    store = open_store(load_config(s.kaz))
    try:
        bodies = list(MerkleAuditLog(store=store).bodies())
    finally:
        store.close()
    [entry] = [e for e in bodies if e.get("event") == "audit_log_reset"]
    assert entry["seq"] == s.backup_size + 1 and entry["old_origin"] == ORIGIN
    assert entry["statement"] == "disk lost after the nightly backup"
    # each backup recorded itself in the log it holds, before its snapshot
    taken = [e for e in bodies if e.get("event") == "backup_taken"]
    assert [e["seq"] for e in taken] == [s.backup_size]
    assert taken[0]["operator"] == "officer-7" and len(taken[0]["recipient"]) == 16
