"""Issue 13 §4 on the command line, on a fresh node: each refusal one sentence, a non-zero
exit, nothing changed, and an audit entry where a change was refused -- holds placed and
lifted (and refused), a dry-run sweep that writes nothing, retention values out of range,
subject access without the auditor role, an update of an unknown alert, a sync file with a
bad value, a feed whose sequence carries on after refused files."""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.cli._support import Bx, assert_one_sentence, audit_bodies
from tests.unit.cli.test_watchlist_lifecycle import (
    alert,
    changes,
    dev_mode,
    feed,
    generation,
    live_doc,
    row,
    sync_file,
)


def test_holds_are_audited_and_refused_holds_change_nothing(node: Path, bx: Bx) -> None:
    d = ("--node-dir", str(dev_mode(node)), "--operator", "op-2")  # typed: development only
    r = bx("retention", "hold", "CASE-77", "--reason", "complaint to the DPA", *d)
    assert r.rc == 0, r.err
    line = assert_one_sentence(bx("retention", "hold", "CASE-77", "--reason", "again", *d))
    assert "already on hold" in line and "(already_held)" in line
    line = assert_one_sentence(bx("retention", "release", "CASE-78", "--reason", "x", *d))
    assert "not on hold" in line and "(not_held)" in line
    assert "(bad_reason)" in assert_one_sentence(bx("retention", "hold", "CASE-79",
                                                    "--reason", " ", *d))
    r = bx("retention", "holds", "--json", "--node-dir", str(node))
    assert [h["case_ref"] for h in json.loads(r.out)["holds"]] == ["CASE-77"]
    assert bx("retention", "release", "CASE-77", "--reason", "answered", *d).rc == 0
    r = bx("retention", "holds", "--json", "--node-dir", str(node))
    assert json.loads(r.out)["holds"] == []
    events = [(e["event"], e.get("case_ref"), e.get("operator"), e.get("role"), e.get("reason"))
              for e in audit_bodies(node) if str(e["event"]).startswith("retention_")]
    assert events == [
        ("retention_hold", "CASE-77", "op-2", "watchlist_manager", "complaint to the DPA"),
        ("retention_hold_refused", None, "op-2", "watchlist_manager", "already_held"),
        ("retention_release_refused", None, "op-2", "watchlist_manager", "not_held"),
        ("retention_hold_refused", None, "op-2", "watchlist_manager", "bad_reason"),
        ("retention_release", "CASE-77", "op-2", "watchlist_manager", "answered")]


def test_a_dry_run_sweep_writes_nothing_and_a_sweep_is_one_entry(node: Path, bx: Bx) -> None:
    before = len(audit_bodies(node))
    r = bx("retention", "run", "--dry-run", "--json", "--node-dir", str(node))
    assert r.rc == 0, r.err
    out = json.loads(r.out)
    assert out["dry_run"] is True and out["audit_seq"] is None and out["compacted"] == ""
    assert len(audit_bodies(node)) == before
    r = bx("retention", "run", "--json", "--node-dir", str(node), "--operator", "op-2")
    assert r.rc == 0, r.err
    [sweep] = audit_bodies(node)[before:]
    assert (sweep["event"], sweep["operator"], sweep["erased"]) == (
        "retention_sweep", "op-2", json.loads(r.out)["erased"])


def test_retention_out_of_range_is_one_sentence_naming_the_key(node: Path, bx: Bx) -> None:
    toml = node / "node.toml"
    good = toml.read_text()
    before = len(audit_bodies(node))
    for bad, words in (("receipts_days = 29", "receipts_days must be a whole number 30..3650"),
                       ('nonces_days = "1"', "nonces_days must be a whole number 0..30"),
                       ("receipt_days = 100", "has no key 'receipt_days'")):
        toml.write_text(good + f"\n[retention]\n{bad}\n")
        line = assert_one_sentence(bx("retention", "run", "--node-dir", str(node)))
        assert words in line, line
    toml.write_text(good)
    assert len(audit_bodies(node)) == before  # nothing ran


def test_subject_access_without_the_auditor_role_is_refused_and_audited(node: Path,
                                                                        bx: Bx) -> None:
    line = assert_one_sentence(bx("subject-access", "--document", "N0481516", "--state", "KAZ",
                                  "--node-dir", str(node)))
    assert "(not_an_auditor)" in line
    [entry] = [e for e in audit_bodies(node) if e["event"] == "subject_access_refused"]
    assert entry["reason"] == "not_an_auditor" and "N0481516" not in json.dumps(entry)


def test_watchlist_bad_input_changes_nothing(node: Path, bx: Bx, tmp_path: Path) -> None:
    dev_mode(node)  # a typed --operator (issue 11 §2)
    d = ("--node-dir", str(node), "--operator", "op-2")
    assert bx("watchlist", "sync", str(sync_file(tmp_path, "v1.csv", row("M-1", "A1"))),
              "--source", "MVD", *d).rc == 0
    gen = generation(node)
    line = assert_one_sentence(bx("watchlist", "update", "M-404", "--action", "arrest",
                                  "--reason", "x", *d))
    assert "no alert M-404" in line and "(unknown_alert)" in line
    bad = sync_file(tmp_path, "bad.csv", row("M-1", "A1"), row("M-2", "A2", "shoot"),
                    row("M-3", "not a number"))
    r = bx("watchlist", "sync", str(bad), "--source", "MVD", *d)
    assert "2 bad row(s) in bad.csv; nothing was changed" in assert_one_sentence(r)
    assert [ln.split(":")[0] for ln in r.out.splitlines()] == ["line 3", "line 4"]
    other = sync_file(tmp_path, "other.csv", row("M-1", "A1") + ",KNB")
    assert "(bad_sync_file)" in assert_one_sentence(bx("watchlist", "sync", str(other),
                                                       "--source", "MVD", *d))
    assert live_doc(node, "A2") == [] and live_doc(node, "A1") == [("M-1", "seize_document", "")]
    assert generation(node) == gen
    # a refused feed leaves the sequence where it was: the next event still applies
    one = feed(tmp_path, "f1.jsonl", {"source": "MVD", "seq": 1, "op": "add",
                                      "alert": alert("F-1", "C1")})
    assert bx("watchlist", "apply-feed", str(one), *d).rc == 0
    replay = feed(tmp_path, "f2.jsonl",
                  {"source": "MVD", "seq": 2, "op": "add", "alert": alert("F-2", "C2")},
                  {"source": "MVD", "seq": 2, "op": "add", "alert": alert("F-3", "C3")})
    assert "(feed_replay)" in assert_one_sentence(bx("watchlist", "apply-feed", str(replay),
                                                     *d))
    assert live_doc(node, "C2") == []
    two = feed(tmp_path, "f3.jsonl", {"source": "MVD", "seq": 2, "op": "add",
                                      "alert": alert("F-2", "C2")})
    assert bx("watchlist", "apply-feed", str(two), *d).rc == 0
    assert live_doc(node, "C2") == [("F-2", "seize_document", "")]
    refused = [e["reason"] for e in changes(node) if e["event"] == "watchlist_change_refused"]
    assert refused == ["unknown_alert", "bad_sync_file", "bad_sync_file", "feed_replay"]
