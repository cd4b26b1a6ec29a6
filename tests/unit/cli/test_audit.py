"""``bxnode audit verify`` and ``bxnode audit list`` on real node databases."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from node.app import now_ms
from tests.federation import DEMO, Federation
from tests.unit.cli._support import Bx, assert_one_sentence, audit_bodies, tamper_body
from tests.waiting import until


@pytest.fixture
def imported(node: Path, bx: Bx) -> Path:
    """A production node with two watchlist imports: two audit entries."""
    for name in ("kaz-watchlist.csv", "kgz-watchlist.jsonl"):
        assert bx("watchlist", "import", str(DEMO / name), "--node-dir", str(node)).rc == 0
    return node


def test_verify_ok(imported: Path, bx: Bx) -> None:
    r = bx("audit", "verify", "--node-dir", str(imported))
    assert (r.rc, r.err) == (0, "")
    assert r.out.startswith("audit log verified: 2 entries")
    r = bx("audit", "verify", "--node-dir", str(imported), "--json")
    out = json.loads(r.out)
    assert (r.rc, out["ok"], out["entries"], out["first_bad_seq"], out["problem"]) == (
        0, True, 2, None, "")


def test_verify_says_nothing_was_compared_without_witnesses(imported: Path, bx: Bx) -> None:
    r = bx("audit", "verify", "--node-dir", str(imported), "--json")
    out = json.loads(r.out)
    assert (r.rc, out["ok"], out["witnesses_compared"], out["witnesses"], out["unsealed"],
            out["cosignatures"], out["last_cosigned_size"], out["after_last_cosigned"]) == (
        0, True, False, [], 0, 0, 0, 2)
    r = bx("audit", "verify", "--node-dir", str(imported))
    assert r.out.splitlines()[-1] == (
        "internally consistent; NOT compared with any witness (a log rolled back to an "
        "earlier consistent state passes this: use --witnesses)")


def _add_cosignature(node_dir: Path, witness: str, line: str) -> int:
    from node.audit.log import MerkleAuditLog
    from tests.unit.cli._support import store_of

    store = store_of(node_dir)
    try:
        log = MerkleAuditLog(store=store)
        head = log.latest_head()
        assert head is not None
        with store.transaction():
            log.add_cosignature(head.size, witness, line, time_ms=now_ms())
        return head.size
    finally:
        store.close()


def test_status_and_verify_check_cosignatures_instead_of_counting(imported: Path,
                                                                   bx: Bx) -> None:
    """A cosignature row nobody's witness key made does not count; it is named."""
    size = _add_cosignature(imported, "bxnode-witness/KGZ-BS",
                            "\u2014 bxnode-witness/KGZ-BS " + "QUFB" * 25 + "\n")
    r = bx("audit", "status", "--node-dir", str(imported), "--json")
    out = json.loads(r.out)
    problem = (f"cosignature on checkpoint {size} is by bxnode-witness/KGZ-BS, not a "
               "federation witness")
    assert (r.rc, out["cosignatures"], out["witnessed"], out["cosignature_problems"]) == (
        1, 0, False, [problem])
    r = bx("audit", "verify", "--node-dir", str(imported))
    assert assert_one_sentence(r) == f"bxnode: audit log is NOT intact: {problem}"


def test_verify_an_empty_log(node: Path, bx: Bx) -> None:
    r = bx("audit", "verify", "--node-dir", str(node), "--json")
    assert r.rc == 0
    assert (json.loads(r.out)["ok"], json.loads(r.out)["entries"]) == (True, 0)


@pytest.mark.parametrize("seq", [1, 2])
def test_verify_names_a_tampered_entry(imported: Path, bx: Bx, seq: int) -> None:
    tamper_body(imported, seq, {"operator": "someone-else"})
    r = bx("audit", "verify", "--node-dir", str(imported))
    assert r.out == ""
    assert assert_one_sentence(r) == (
        f"bxnode: audit log is NOT intact: entry {seq} was changed after it was written")
    r = bx("audit", "verify", "--node-dir", str(imported), "--json")
    out = json.loads(r.out)
    assert (r.rc, out["ok"], out["first_bad_seq"], out["entries"]) == (1, False, seq, seq - 1)
    assert out["problem"] == f"entry {seq} was changed after it was written"


def test_verify_with_the_wrong_database_key(imported: Path, bx: Bx) -> None:
    key = imported / "db.key"
    key.chmod(0o600)
    key.write_text("00" * 32 + "\n")
    r = bx("audit", "verify", "--node-dir", str(imported))
    assert assert_one_sentence(r) == (
        f"bxnode: the database key does not open {imported / 'node.db'}: wrong key or not a "
        "bxnode database")


def test_verify_with_a_key_file_others_can_read(imported: Path, bx: Bx) -> None:
    (imported / "db.key").chmod(0o644)
    r = bx("audit", "list", "--node-dir", str(imported))
    assert assert_one_sentence(r) == (
        f"bxnode: database key file {imported / 'db.key'} is readable by others; run "
        f"'chmod 600 {imported / 'db.key'}'")


def test_env_key_overrides_the_key_file(imported: Path, bx: Bx,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BXNODE_DB_KEY", "ab" * 32)
    r = bx("audit", "verify", "--node-dir", str(imported))
    assert "wrong key" in assert_one_sentence(r)
    monkeypatch.setenv("BXNODE_DB_KEY", "not hex")
    r = bx("audit", "verify", "--node-dir", str(imported))
    assert assert_one_sentence(r) == "bxnode: database key from $BXNODE_DB_KEY is not hex"
    monkeypatch.setenv("BXNODE_DB_KEY", (imported / "db.key").read_text().strip())
    assert bx("audit", "verify", "--node-dir", str(imported)).rc == 0


def test_missing_database(node: Path, bx: Bx) -> None:
    (node / "node.db").unlink()
    r = bx("audit", "verify", "--node-dir", str(node))
    assert assert_one_sentence(r) == (
        f"bxnode: database {node / 'node.db'} does not exist (run 'bxnode init')")


# --- list -----------------------------------------------------------------------------------


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds")


@pytest.fixture(scope="module")
def traffic(fed: Federation) -> tuple[int, int, int]:
    """Four requests to KAZ-BS, in order: (start, middle, end) times in ms.

    KGZ border_check (answered), UZB visa_application (answered) | UZB
    criminal_investigation (denied), KGZ counter_terrorism (answered).
    """
    from tests.federation import CTX

    def ask(asker: str, purpose: str) -> None:
        from node.core.errors import RemoteError
        from node.core.model import DocumentQuery, QueryKind

        client = fed.client(asker)
        try:
            client.lookup("KAZ-BS", CTX.__class__(CTX.operator, purpose, CTX.legal_basis,
                                                  "CASE-AUDIT"), QueryKind.DOCUMENT,
                          [DocumentQuery("N0481516", "KAZ")])
        except RemoteError:
            pass
        finally:
            client.close()
            client._store.close()  # type: ignore[union-attr]

    def after(t: int) -> int:  # the first millisecond after t: entries on either side differ
        return until("the clock's next millisecond", lambda: now_ms() > t and now_ms(),
                     every=0.001)

    start = after(now_ms())
    ask("KGZ-BS", "border_check")
    ask("UZB-BS", "visa_application")
    middle = after(now_ms())
    after(middle)
    ask("UZB-BS", "criminal_investigation")
    ask("KGZ-BS", "counter_terrorism")
    end = now_ms()
    return start, middle, end


def _listed(bx: Bx, fed: Federation, *args: str) -> list[dict[str, object]]:
    r = bx("audit", "list", "--node-dir", str(fed.dirs["KAZ-BS"]), "--json", *args)
    assert r.rc == 0, r.err
    return [json.loads(line) for line in r.out.splitlines()]


def _who(entries: list[dict[str, object]]) -> list[tuple[object, object, object]]:
    return [(e.get("requester"), e.get("purpose"), e.get("outcome")) for e in entries]


def test_list_since(fed: Federation, bx: Bx, traffic: tuple[int, int, int]) -> None:
    start, _, _ = traffic
    assert _who(_listed(bx, fed, "--since", _iso(start))) == [
        ("KGZ-BS", "border_check", "answered"), ("UZB-BS", "visa_application", "answered"),
        ("UZB-BS", "criminal_investigation", "denied"),
        ("KGZ-BS", "counter_terrorism", "answered")]


def test_list_filters(fed: Federation, bx: Bx, traffic: tuple[int, int, int]) -> None:
    start, middle, end = traffic
    since = ("--since", _iso(start))
    assert _who(_listed(bx, fed, *since, "--peer", "UZB-BS")) == [
        ("UZB-BS", "visa_application", "answered"),
        ("UZB-BS", "criminal_investigation", "denied")]
    assert _who(_listed(bx, fed, *since, "--outcome", "denied")) == [
        ("UZB-BS", "criminal_investigation", "denied")]
    assert _who(_listed(bx, fed, *since, "--purpose", "counter_terrorism")) == [
        ("KGZ-BS", "counter_terrorism", "answered")]
    assert _who(_listed(bx, fed, *since, "--until", _iso(middle))) == [
        ("KGZ-BS", "border_check", "answered"), ("UZB-BS", "visa_application", "answered")]
    assert _who(_listed(bx, fed, "--since", _iso(middle), "--until", _iso(end))) == [
        ("UZB-BS", "criminal_investigation", "denied"),
        ("KGZ-BS", "counter_terrorism", "answered")]
    assert _who(_listed(bx, fed, *since, "--limit", "1")) == [
        ("KGZ-BS", "border_check", "answered")]
    assert _who(_listed(bx, fed, *since, "--peer", "KGZ-BS", "--outcome", "answered",
                        "--purpose", "border_check")) == [("KGZ-BS", "border_check", "answered")]
    assert _listed(bx, fed, *since, "--peer", "TJK-BS") == []
    assert _listed(bx, fed, "--since", _iso(end + 60_000)) == []


def test_list_accepts_z_dates_and_naive_times_as_utc(fed: Federation, bx: Bx,
                                                     traffic: tuple[int, int, int]) -> None:
    start, _, _ = traffic
    z = _iso(start).replace("+00:00", "Z")
    naive = _iso(start).replace("+00:00", "")
    assert _listed(bx, fed, "--since", z) == _listed(bx, fed, "--since", naive)
    assert len(_listed(bx, fed, "--since", z)) == 4
    day = dt.datetime.fromtimestamp(start / 1000, dt.UTC).date() + dt.timedelta(days=1)
    assert _listed(bx, fed, "--since", day.isoformat()) == []


def test_list_text_output(fed: Federation, bx: Bx, traffic: tuple[int, int, int]) -> None:
    start, middle, _ = traffic
    r = bx("audit", "list", "--node-dir", str(fed.dirs["KAZ-BS"]), "--since", _iso(start),
           "--until", _iso(middle))
    assert r.rc == 0
    lines = r.out.splitlines()
    assert lines[-1] == "2 entries"
    assert [ln.split()[-3:] for ln in lines[:-1]] == [  # no reason when answered
        ["KGZ-BS", "border_check", "answered"], ["UZB-BS", "visa_application", "answered"]]
    r = bx("audit", "list", "--node-dir", str(fed.dirs["KAZ-BS"]), "--since", _iso(start),
           "--limit", "1")
    assert r.out.splitlines()[-1] == "1 entry"


@pytest.mark.parametrize("bad", ["yesterday", "2026-13-01", "2026-11-23T25:00", "1700000000"])
def test_list_bad_time(node: Path, bx: Bx, bad: str) -> None:
    for flag in ("--since", "--until"):
        r = bx("audit", "list", "--node-dir", str(node), flag, bad)
        assert assert_one_sentence(r) == (
            f"bxnode: time {bad!r} is not ISO 8601 (e.g. 2026-11-23T10:00:00Z)")
        assert r.out == ""


def test_list_json_lines_of_a_node(imported: Path, bx: Bx) -> None:
    r = bx("audit", "list", "--node-dir", str(imported), "--json")
    entries = [json.loads(line) for line in r.out.splitlines()]
    assert [(e["seq"], e["event"], e["source"]) for e in entries] == [
        (1, "watchlist_import", "kaz-watchlist.csv"),
        (2, "watchlist_import", "kgz-watchlist.jsonl")]
    assert entries == audit_bodies(imported)
