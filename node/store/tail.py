"""The rows ``bxnode audit recover-tail`` copies from a newer copy of this node's database
(node/audit/tail.py verifies both logs before and the result after, in the caller's
transaction): byte for byte, only what the local database lacks or holds less of."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from node.store.db import Database

__all__ = ["copy_tail"]

_CHUNK = 2000


def copy_tail(source: Database, local: Database, *, after_seq: int, after_checkpoint: int,
              now_ms: int, put_hashes: Callable[[Sequence[tuple[int, int, bytes]]], None]
              ) -> int:
    """Copy the entries after ``after_seq``, the tree hashes (through ``put_hashes``), the
    checkpoints and cosignatures after ``after_checkpoint``, the larger witnessed sizes,
    this node's own witness state and evidence, the unexpired nonces and the larger usage
    per day.  Returns how many nonces were added."""
    _copy(source, local, "audit_entries",
          "seq, time_ms, salt, body, leaf, erased_ms, event, requester, operator, "
          "purpose, case_ref, outcome, request_digest", "seq > ?", (after_seq,))
    batch: list[tuple[int, int, bytes]] = []
    for level, idx, h in source.stream("SELECT level, idx, hash FROM audit_hashes"):
        batch.append((int(level), int(idx), bytes(h)))
        if len(batch) >= _CHUNK:
            put_hashes(batch)
            batch = []
    put_hashes(batch)
    _copy(source, local, "audit_checkpoints", "size, time_ms, root, note", "size > ?",
          (after_checkpoint,))
    _copy(source, local, "audit_cosignatures", "size, witness, time_ms, line", "size > ?",
          (after_checkpoint,))
    for peer, size, updated in source.query("SELECT peer, size, updated_ms FROM "
                                            "audit_witnessed"):
        row = local.query_one("SELECT size FROM audit_witnessed WHERE peer = ?", (peer,))
        if row is None:
            local.execute("INSERT INTO audit_witnessed (peer, size, updated_ms) "
                          "VALUES (?, ?, ?)", (peer, size, updated))
        elif int(row[0]) < int(size):
            local.execute("UPDATE audit_witnessed SET size = ?, updated_ms = ? "
                          "WHERE peer = ?", (size, updated, peer))
    _witness_side(source, local)
    nonces = 0
    for node, nonce, expires in source.stream(
            "SELECT node_id, nonce, expires_ms FROM nonces WHERE expires_ms >= ?",
            (now_ms,)):
        nonces += local.execute(
            "INSERT INTO nonces (node_id, nonce, expires_ms) VALUES (?, ?, ?) "
            "ON CONFLICT (node_id, nonce) DO NOTHING", (node, bytes(nonce), expires))
    for node, day, items in source.query("SELECT node_id, day, items FROM usage"):
        local.execute("INSERT INTO usage (node_id, day, items) VALUES (?, ?, ?) "
                      "ON CONFLICT (node_id, day) DO UPDATE SET items = "
                      "CASE WHEN usage.items > excluded.items THEN usage.items "
                      "ELSE excluded.items END", (node, day, items))
    return nonces


def _copy(source: Database, target: Database, table: str, columns: str, where: str,
          args: tuple[int, ...]) -> None:
    marks = ", ".join("?" * len(columns.split(",")))
    sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"  # noqa: S608 - fixed names
    rows: list[tuple[object, ...]] = []
    for row in source.stream(f"SELECT {columns} FROM {table} WHERE {where}", args):  # noqa: S608
        rows.append(tuple(row))
        if len(rows) >= _CHUNK:
            target.executemany(sql, rows)
            rows = []
    if rows:
        target.executemany(sql, rows)


def _witness_side(source: Database, local: Database) -> None:
    """This node as a witness: the later state per log origin, and the evidence it kept."""
    for origin, size, root, note, updated in source.query(
            "SELECT origin, size, root, note, updated_ms FROM witness_state"):
        row = local.query_one("SELECT size FROM witness_state WHERE origin = ?", (origin,))
        if row is None:
            local.execute("INSERT INTO witness_state (origin, size, root, note, updated_ms) "
                          "VALUES (?, ?, ?, ?, ?)", (origin, size, bytes(root), bytes(note),
                                                     updated))
        elif int(row[0]) < int(size):
            local.execute("UPDATE witness_state SET size = ?, root = ?, note = ?, "
                          "updated_ms = ? WHERE origin = ?",
                          (size, bytes(root), bytes(note), updated, origin))
    have = {(str(o), int(t), str(r)) for o, t, r in local.query(
        "SELECT origin, time_ms, reason FROM witness_evidence")}
    for origin, time_ms, reason, stored, submitted in source.query(
            "SELECT origin, time_ms, reason, stored_note, submitted_note FROM witness_evidence"):
        if (str(origin), int(time_ms), str(reason)) not in have:
            local.execute("INSERT INTO witness_evidence (origin, time_ms, reason, stored_note, "
                          "submitted_note) VALUES (?, ?, ?, ?, ?)",
                          (origin, time_ms, reason, None if stored is None else bytes(stored),
                           bytes(submitted)))
