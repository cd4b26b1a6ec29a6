"""The console's sessions in the node's database (node/store/console_sessions.py, driven by
node/web/sessions.py), on both backends, through a real group-commit writer and the
injected clock.

Before, sessions lived in the memory of the process that made them: an officer whose next
request landed on another replica (or worker) was signed out.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from node.server.group_commit import BatchWriter
from node.store.console_sessions import ConsoleTables
from node.store.db import Database
from node.store.fieldcrypt import SealedFieldError
from node.store.sqlcipher import Store
from node.web import sessions as sessions_mod
from node.web.sessions import Session, SessionStore

T = TypeVar("T")
IDLE_S = 60


class Clock:
    def __init__(self) -> None:
        self.ms = 1_000_000

    def __call__(self) -> int:
        return self.ms


def _store(db: Database, clock: Clock, writer: BatchWriter) -> SessionStore:
    return SessionStore(tables=ConsoleTables(db), read=writer.call, write=writer.run_in_batch,
                        idle_timeout_s=IDLE_S, clock_ms=clock)


def _run(db: Database, body: Callable[[SessionStore, Clock], Awaitable[T]]) -> T:
    """``body`` on an event loop, with a store over ``db`` behind a real BatchWriter."""
    clock = Clock()

    async def main() -> T:
        writer = BatchWriter(store=db, batch_max=16, batch_ms=1)
        writer.start()
        try:
            return await body(_store(db, clock, writer), clock)
        finally:
            await writer.stop()

    return asyncio.run(main())


def test_a_session_ends_after_its_idle_time_on_the_injected_clock(any_db: Database) -> None:
    async def body(store: SessionStore, clock: Clock) -> None:
        cookie, s = await store.new(identity="kz-duty", auth="certificate", language="ru")
        clock.ms += 59_000
        got = await store.get(cookie)  # used: the idle time restarts
        assert got is not None and got.record() == s.record() and got.last_ms == clock.ms
        clock.ms += IDLE_S * 1000
        assert (await store.get(cookie)) is not None
        assert not await store.expired(cookie)
        clock.ms += IDLE_S * 1000 + 1
        assert await store.get(cookie) is None
        assert await store.expired(cookie)  # said once it ended ...
        assert await store.get(cookie) is None  # ... and never live again
        assert await store.get("x" * 200) is None and not await store.expired("nonsense")
        assert not await store.expired(None)
        other, _ = await store.new()
        assert other != cookie and await store.count() == 1
        assert await store.count(identity="kz-duty") == 0

    _run(any_db, body)


def test_what_a_page_changed_is_kept_and_a_dropped_session_stays_dropped(
        any_db: Database) -> None:
    async def body(store: SessionStore, _clock: Clock) -> None:
        cookie, s = await store.new(identity="kz-duty", auth="certificate")
        s.flash, s.last_followup = "The follow-up was filed.", "f-123"
        await store.save(cookie, s)
        got = await store.get(cookie)
        assert got is not None and (got.flash, got.last_followup, got.csrf) == (
            "The follow-up was filed.", "f-123", s.csrf)
        await store.drop(cookie)
        await store.save(cookie, s)  # a page that ran while it was dropped
        assert await store.get(cookie) is None and not await store.expired(cookie)

    _run(any_db, body)


def test_a_session_made_by_one_process_is_known_to_another(tmp_path: Path) -> None:
    """Two processes' stores (two connections, two writers) on one SQLCipher file, as
    ``serve --workers`` has them: signed in through one, known to the other, signed out
    through the other, gone for the first."""
    key = bytes(range(100, 132))
    first = Store.open(tmp_path / "node.db", key, create=True)
    second = Store.open(tmp_path / "node.db", key)
    clock = Clock()

    async def main() -> None:
        writers = [BatchWriter(store=db, batch_max=16, batch_ms=1) for db in (first, second)]
        for w in writers:
            w.start()
        try:
            a, b = (_store(db, clock, w) for db, w in zip((first, second), writers, strict=True))
            cookie, s = await a.new(identity="kz-admin", auth="token", timezone="Asia/Almaty")
            got = await b.get(cookie)
            assert got is not None and got.record() == s.record()
            await b.put_prefs("kz-admin", "kk", "Asia/Aqtobe")
            assert await a.prefs("kz-admin") == ("kk", "Asia/Aqtobe")
            await b.drop(cookie)
            assert await a.get(cookie) is None
        finally:
            for w in writers:
                await w.stop()

    try:
        asyncio.run(main())
    finally:
        second.close()
        first.close()


def test_past_the_bound_the_oldest_anonymous_sessions_go_first(
        any_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sessions_mod, "MAX_SESSIONS", 4)

    async def body(store: SessionStore, clock: Clock) -> None:
        officer, _ = await store.new(identity="kz-duty", auth="certificate")
        anonymous = []
        for _ in range(3):
            clock.ms += 1
            anonymous.append((await store.new())[0])
        clock.ms += 1
        newest, _ = await store.new()  # the fifth: the oldest anonymous one makes room
        assert [await store.get(c) is not None for c in (officer, *anonymous, newest)] == [
            True, False, True, True, True]
        assert await store.count() == 4

    _run(any_db, body)


def test_an_openid_connect_sign_in_is_taken_once_and_only_in_time(any_db: Database) -> None:
    async def body(store: SessionStore, clock: Clock) -> None:
        saved = {"state": "s1", "nonce": "n1", "verifier": "v1"}
        cookie = await store.begin_oidc(saved, ttl_ms=600_000)
        assert await store.take_oidc(cookie, ttl_ms=600_000) == saved
        assert await store.take_oidc(cookie, ttl_ms=600_000) == {}  # used once
        late = await store.begin_oidc(saved, ttl_ms=600_000)
        clock.ms += 600_001
        assert await store.take_oidc(late, ttl_ms=600_000) == {}
        assert await store.take_oidc("", ttl_ms=600_000) == {}
        assert await store.take_oidc("y" * 500, ttl_ms=600_000) == {}

    _run(any_db, body)


only_postgresql = pytest.mark.parametrize("any_db", ["postgresql"], indirect=True)


@only_postgresql
def test_nobody_signs_in_by_writing_a_row(any_db: Database) -> None:
    """On PostgreSQL the record is sealed under the field key and holds its own row key: a
    database administrator can neither write a session that opens, nor move one into
    another cookie's row."""
    tables = ConsoleTables(any_db)
    forged = json.dumps({"csrf": "x", "identity": "kz-admin", "auth": "certificate"}).encode()
    with any_db.transaction():
        any_db.execute("INSERT INTO console_sessions (key, record, signed_in, last_ms) "
                       "VALUES (?,?,1,?)", ("f" * 64, forged, 1_000_000))
        tables.put_session("a" * 64, Session(csrf="c", last_ms=0, identity="kz-duty").record(),
                           signed_in=True, last_ms=1_000_000)
        (sealed,) = any_db.query_one("SELECT record FROM console_sessions WHERE key = ?",
                                     ("a" * 64,)) or (None,)
        assert b"kz-duty" not in bytes(sealed)
        any_db.execute("INSERT INTO console_sessions (key, record, signed_in, last_ms) "
                       "VALUES (?,?,1,?)", ("b" * 64, bytes(sealed), 1_000_000))
    with pytest.raises(SealedFieldError) as forged_err:
        tables.session("f" * 64)
    assert forged_err.value.reason == "sealed_field_unreadable"
    reasons = []
    try:  # not pytest.raises: see test_sealed_rows.misplaced
        tables.session("b" * 64)
    except SealedFieldError as exc:
        reasons.append(exc.reason)
    assert reasons == ["sealed_field_misplaced"]
    opened = tables.session("a" * 64)
    assert opened is not None and opened.record["identity"] == "kz-duty"


def test_a_session_record_round_trips() -> None:
    s = Session(csrf="c", last_ms=5, identity="kz-duty", auth="token", client_system="bcs-1",
                language="ru", timezone="Asia/Bishkek", flash="f", last_followup="l")
    again: Any = Session.from_record({**s.record(), "unknown_later_field": "x"}, 5)
    assert again == s


def test_a_previewed_sync_is_kept_read_and_dropped_once(any_db: Database) -> None:
    tables = ConsoleTables(any_db)
    record = {"officer": "kz-watch", "plan": [["R1"], [], [], 3]}
    with any_db.transaction():
        tables.put_sync("k1", record, b"kind,owner_ref\n", created_ms=1_000)
    assert tables.sync("k1") == (record, b"kind,owner_ref\n", 1_000)
    assert tables.sync("nope") is None
    with any_db.transaction():
        assert (tables.drop_sync("k1"), tables.drop_sync("k1")) == (1, 0)
        for i in range(5):
            tables.put_sync(f"p{i}", record, b"x", created_ms=2_000 + i)
        # p0 too old; then room for the one about to be kept: at most 3 with it
        tables.prune_syncs(before_ms=2_001, keep=3)
    assert [tables.sync(f"p{i}") is not None for i in range(5)] == [
        False, False, False, True, True]


@only_postgresql
def test_a_previewed_upload_moved_to_another_preview_is_refused(any_db: Database) -> None:
    tables = ConsoleTables(any_db)
    with any_db.transaction():
        tables.put_sync("a", {"officer": "kz-watch"}, b"the first upload", created_ms=1)
        tables.put_sync("b", {"officer": "kz-watch"}, b"another upload!!", created_ms=2)
        (data,) = any_db.query_one("SELECT data FROM console_syncs WHERE key = ?",
                                   ("a",)) or (None,)
        assert b"first" not in bytes(data)  # sealed
        any_db.execute("UPDATE console_syncs SET data = ? WHERE key = ?", (data, "b"))
    reasons = []
    try:
        tables.sync("b")
    except SealedFieldError as exc:
        reasons.append(exc.reason)
    assert reasons == ["sealed_field_misplaced"]
