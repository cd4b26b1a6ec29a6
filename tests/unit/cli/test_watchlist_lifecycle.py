"""``bxnode watchlist add | update | withdraw | show | list | stats | export | sync |
apply-feed``: every change audited with operator and reason (never personal data), a
withdrawn alert gone from the lookup tables, bad input refused with nothing changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.unit.cli._support import Bx, assert_one_sentence, audit_bodies, store_of

PERSON = ("--kind", "person", "--action", "arrest", "--expires", "2036-01-01",
          "--family", "Юсупов", "--given", "Тимур", "--dob", "1985-03-12",
          "--nationality", "UZB", "--sex", "M")


def dev_mode(node: Path) -> Path:
    """A typed --operator writing the database directly is for development only (issue 11
    §2); under an officer identity the same changes go through the LocalService
    (tests/integration/test_local_cli.py)."""
    toml = node / "node.toml"
    toml.write_text(toml.read_text().replace("dev_mode = false", "dev_mode = true"))
    return node


@pytest.fixture
def node(node: Path) -> Path:
    return dev_mode(node)


def doc(ref: str, number: str, *extra: str) -> tuple[str, ...]:
    return ("--kind", "document", "--ref", ref, "--action", "seize_document",
            "--expires", "2036-01-01", "--number", number, "--state", "KAZ", "--type", "P",
            *extra)


def changes(node: Path) -> list[dict[str, Any]]:
    return [e for e in audit_bodies(node) if str(e.get("event", "")).startswith("watchlist_")]


def live_doc(node: Path, number: str) -> list[Any]:
    store = store_of(node)
    try:
        return store.find_documents_many([(number, "KAZ", "P")], "2026-01-01").get(
            (number, "KAZ", "P"), [])
    finally:
        store.close()


def generation(node: Path) -> str | None:
    store = store_of(node)
    try:
        return store.get_meta("watchlist_generation")
    finally:
        store.close()


def test_add_show_update_withdraw_audited_without_personal_data(node: Path, bx: Bx) -> None:
    d = ("--node-dir", str(node))
    r = bx("watchlist", "add", *doc("KAZ-1", "N0481516"), "--source", "MVD",
           "--reason", "stolen passport reported", "--operator", "op-2", *d)
    assert (r.rc, [json.loads(ln)["event"] for ln in r.err.splitlines()]) == (
        0, ["dev_typed_operator"]), r.err  # the development warning, nothing else
    assert r.out == "added document alert KAZ-1 (live, source MVD)\n"
    assert live_doc(node, "N0481516") == [("KAZ-1", "seize_document", "")]
    assert generation(node) == "1"
    r = bx("watchlist", "add", "--ref", "KAZ-P1", *PERSON, "--source", "KNB",
           "--reason", "warrant 17", "--operator", "op-2", *d)
    assert r.rc == 0, r.err
    r = bx("watchlist", "show", "KAZ-1", "--json", *d)
    shown = json.loads(r.out)
    assert (shown["kind"], shown["source"], shown["state"], shown["action"]) == (
        "document", "MVD", "live", "seize_document")
    r = bx("watchlist", "update", "KAZ-1", "--action", "refuse_entry", "--reason",
           "court order", "--operator", "op-3", *d)
    assert r.rc == 0, r.err
    assert r.out == "updated alert KAZ-1: action\n"
    assert live_doc(node, "N0481516") == [("KAZ-1", "refuse_entry", "")]
    r = bx("watchlist", "withdraw", "KAZ-1", "--reason", "passport recovered",
           "--operator", "op-3", *d)
    assert r.rc == 0, r.err
    assert live_doc(node, "N0481516") == []
    assert generation(node) == "4"
    r = bx("watchlist", "show", "KAZ-1", "--json", *d)
    assert json.loads(r.out)["state"] == "withdrawn"
    r = bx("watchlist", "stats", "--json", *d)
    assert json.loads(r.out)["by_state"] == {"live": 1, "expired": 0, "withdrawn": 1}
    entries = changes(node)
    assert [(e["event"], e["operator"], e["reason"], e["source"]) for e in entries] == [
        ("watchlist_add", "op-2", "stolen passport reported", "MVD"),
        ("watchlist_add", "op-2", "warrant 17", "KNB"),
        ("watchlist_update", "op-3", "court order", "MVD"),
        ("watchlist_withdraw", "op-3", "passport recovered", "MVD")]
    assert entries[2]["fields"] == ["action"]
    assert entries[0]["alert_id"] == entries[3]["alert_id"] == shown["alert_id"]
    text = json.dumps(entries, ensure_ascii=False)
    for secret in ("KAZ-1", "KAZ-P1", "N0481516", "Юсупов", "1985-03-12"):
        assert secret not in text


def test_refused_changes_are_one_sentence_audited_and_change_nothing(node: Path, bx: Bx,
                                                                    tmp_path: Path) -> None:
    d = ("--node-dir", str(node), "--operator", "op-2")
    assert bx("watchlist", "add", *doc("KAZ-1", "N0481516"), "--source", "MVD",
              "--reason", "r", *d).rc == 0
    assert bx("watchlist", "withdraw", "KAZ-1", "--reason", "found", *d).rc == 0
    before = generation(node)
    cases = [
        (("watchlist", "withdraw", "KAZ-404", "--reason", "x"), "no alert KAZ-404",
         "unknown_alert"),
        (("watchlist", "withdraw", "KAZ-1", "--reason", "again"), "already withdrawn",
         "already_withdrawn"),
        (("watchlist", "update", "KAZ-1", "--action", "arrest", "--reason", "x"),
         "already withdrawn", "already_withdrawn"),
        (("watchlist", "add", *doc("KAZ-2", "bad number!"), "--source", "MVD",
          "--reason", "x"), "document number", "bad_document_number"),
        (("watchlist", "add", *doc("KAZ-2", "N1"), "--source", "bad source!",
          "--reason", "x"), "source", "bad_source"),
    ]
    for argv, words, reason in cases:
        r = bx(*argv, *d)
        line = assert_one_sentence(r)
        assert words in line and f"({reason})" in line, line
    assert generation(node) == before
    refused = [e for e in changes(node) if e["event"] == "watchlist_change_refused"]
    assert [e["reason"] for e in refused] == [c[2] for c in cases]
    r = bx("watchlist", "show", "KAZ-404", "--node-dir", str(node))
    assert "no alert KAZ-404" in assert_one_sentence(r)


HEADER = ("kind,owner_ref,action,expires,contact,number,issuing_state,doc_type,loss_type,"
          "family_name,given_names,patronymic,dob,nationality,sex")


def sync_file(tmp_path: Path, name: str, *rows: str) -> Path:
    p = tmp_path / name
    p.write_text("\n".join((HEADER, *rows)) + "\n", encoding="utf-8")
    return p


def row(ref: str, number: str, action: str = "seize_document") -> str:
    return f"document,{ref},{action},2036-01-01,,{number},KAZ,P,stolen,,,,,,"


def test_sync_applies_exactly_its_difference(node: Path, bx: Bx, tmp_path: Path) -> None:
    d = ("--node-dir", str(node), "--operator", "op-2")
    first = sync_file(tmp_path, "v1.csv", row("M-1", "A1"), row("M-2", "A2"), row("M-3", "A3"))
    r = bx("watchlist", "sync", str(first), "--source", "MVD", *d)
    assert r.rc == 0, r.err
    assert r.out.splitlines()[-1] == ("sync of MVD applied: 3 added, 0 changed, 0 withdrawn, "
                                      "0 unchanged")
    # another source's alert is never touched by MVD's sync
    assert bx("watchlist", "add", *doc("K-1", "B1"), "--source", "KNB", "--reason", "r",
              *d).rc == 0
    second = sync_file(tmp_path, "v2.csv", row("M-1", "A1"), row("M-2", "A2", "arrest"),
                       row("M-4", "A4"))
    r = bx("watchlist", "sync", str(second), "--source", "MVD", "--dry-run", "--json", *d)
    assert r.rc == 0, r.err
    plan = json.loads(r.out)
    assert (plan["added_refs"], plan["changed_refs"], plan["withdrawn_refs"],
            plan["unchanged"], plan["applied"]) == (["M-4"], ["M-2"], ["M-3"], 1, False)
    assert live_doc(node, "A3") != [] and live_doc(node, "A4") == []  # dry run: nothing
    r = bx("watchlist", "sync", str(second), "--source", "MVD", *d)
    assert r.rc == 0, r.err
    assert live_doc(node, "A3") == []
    assert live_doc(node, "A4") == [("M-4", "seize_document", "")]
    assert live_doc(node, "A2") == [("M-2", "arrest", "")]
    assert live_doc(node, "B1") == [("K-1", "seize_document", "")]
    syncs = [e for e in changes(node) if e["event"] == "watchlist_sync"]
    assert [(e["added"], e["changed"], e["withdrawn"], e["unchanged"]) for e in syncs] == [
        (3, 0, 0, 0), (1, 1, 1, 1)]
    # an export of MVD syncs back to no change
    out = tmp_path / "mvd.jsonl"
    assert bx("watchlist", "export", "--source", "MVD", "--out", str(out),
              "--node-dir", str(node)).rc == 0
    r = bx("watchlist", "sync", str(out), "--source", "MVD", "--json", *d)
    assert json.loads(r.out)["unchanged"] == 3


def test_sync_refuses_truncated_duplicate_and_over_max_withdraw(node: Path, bx: Bx,
                                                                 tmp_path: Path) -> None:
    d = ("--node-dir", str(node), "--operator", "op-2")
    rows = [row(f"M-{i}", f"A{i}") for i in range(1, 6)]
    assert bx("watchlist", "sync", str(sync_file(tmp_path, "full.csv", *rows)), "--source",
              "MVD", *d).rc == 0
    gen = generation(node)
    truncated = tmp_path / "cut.csv"
    truncated.write_text("\n".join((HEADER, *rows[:2])) + "\n" + rows[2][:20], "utf-8")
    r = bx("watchlist", "sync", str(truncated), "--source", "MVD", *d)
    assert "nothing was changed" in assert_one_sentence(r)
    assert "line 4:" in r.out
    dup = sync_file(tmp_path, "dup.csv", *rows, rows[0])
    r = bx("watchlist", "sync", str(dup), "--source", "MVD", *d)
    assert "(bad_sync_file)" in assert_one_sentence(r)
    assert "already on line 2" in r.out
    short = sync_file(tmp_path, "short.csv", *rows[:2])
    r = bx("watchlist", "sync", str(short), "--source", "MVD", "--max-withdraw", "2", *d)
    line = assert_one_sentence(r)
    assert "withdraw 3 alerts of MVD, more than --max-withdraw 2" in line
    assert "(too_many_withdrawals)" in line
    assert generation(node) == gen
    assert all(live_doc(node, f"A{i}") for i in range(1, 6))
    refused = [e["reason"] for e in changes(node) if e["event"] == "watchlist_change_refused"]
    assert refused == ["bad_sync_file", "bad_sync_file", "too_many_withdrawals"]


def feed(tmp_path: Path, name: str, *events: dict[str, Any]) -> Path:
    p = tmp_path / name
    p.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return p


def alert(ref: str, number: str, action: str = "seize_document") -> dict[str, str]:
    return {"kind": "document", "owner_ref": ref, "action": action, "expires": "2036-01-01",
            "number": number, "issuing_state": "KAZ", "doc_type": "P"}


def test_feed_applies_in_order_and_refuses_gap_and_replay(node: Path, bx: Bx,
                                                          tmp_path: Path) -> None:
    d = ("--node-dir", str(node), "--operator", "op-2")
    f1 = feed(tmp_path, "f1.jsonl",
              {"source": "MVD", "seq": 1, "op": "add", "alert": alert("F-1", "C1")},
              {"source": "MVD", "seq": 2, "op": "add", "alert": alert("F-2", "C2")},
              {"source": "MID", "seq": 1, "op": "add", "alert": alert("G-1", "D1")},
              {"source": "MVD", "seq": 3, "op": "update",
               "alert": alert("F-1", "C1", "arrest")},
              {"source": "MVD", "seq": 4, "op": "withdraw", "owner_ref": "F-2"})
    r = bx("watchlist", "apply-feed", str(f1), *d)
    assert r.rc == 0, r.err
    assert r.out == "applied 5 event(s): 3 add, 1 update, 1 withdraw; last applied MID #1, MVD #4\n"
    assert live_doc(node, "C1") == [("F-1", "arrest", "")]
    assert live_doc(node, "C2") == []
    gen = generation(node)
    replay = feed(tmp_path, "f2.jsonl",
                  {"source": "MVD", "seq": 5, "op": "add", "alert": alert("F-3", "C3")},
                  {"source": "MVD", "seq": 4, "op": "withdraw", "owner_ref": "F-1"})
    r = bx("watchlist", "apply-feed", str(replay), *d)
    assert "(feed_replay)" in assert_one_sentence(r)
    gap = feed(tmp_path, "f3.jsonl",
               {"source": "MVD", "seq": 7, "op": "add", "alert": alert("F-3", "C3")})
    r = bx("watchlist", "apply-feed", str(gap), *d)
    line = assert_one_sentence(r)
    assert "does not follow 4" in line and "(feed_gap)" in line
    assert live_doc(node, "C3") == [] and live_doc(node, "C1") == [("F-1", "arrest", "")]
    assert generation(node) == gen
    refused = [e["reason"] for e in changes(node) if e["event"] == "watchlist_change_refused"]
    assert refused == ["feed_replay", "feed_gap"]
