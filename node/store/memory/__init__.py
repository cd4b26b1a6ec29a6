"""In-memory adapters of every port the exchange pipeline uses.

They drive the pipeline's sans-I/O unit tests (as python-tuf tests its client against a
repository simulator): the same :class:`node.responder.Responder`, the same handlers, no
database.  A :class:`MemoryUnitOfWork` gives them real transaction semantics — nested
savepoints and ``before_commit`` hooks — by snapshotting every registered adapter's state
when a transaction or savepoint opens and restoring it on rollback.  Not for production:
nothing here is durable.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from node.core.ports import AuditRecord, DocumentHit, PersonRow, Receipt

__all__ = [
    "MemoryAuditSink",
    "MemoryNonceLedger",
    "MemoryReceiptStore",
    "MemoryUnitOfWork",
    "MemoryUsageLedger",
    "MemoryWatchlistStore",
    "memory_ports",
]


class _State:
    """An adapter whose whole state is ``self.state`` (snapshotted by the unit of work)."""

    state: Any


class MemoryUnitOfWork:
    def __init__(self, *parts: _State) -> None:
        self._parts = list(parts)
        self._depth = 0
        self._hooks: dict[str, Callable[[], None]] = {}
        self.commits = 0
        self.locks: list[str] = []

    def add(self, part: _State) -> None:
        self._parts.append(part)

    @property
    def in_transaction(self) -> bool:
        return self._depth > 0

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        if self._depth:
            with self.savepoint():
                yield
            return
        snapshot = self._snapshot()
        self._depth = 1
        try:
            yield
            while self._hooks:
                self._hooks.pop(next(iter(self._hooks)))()
        except BaseException:
            self._restore(snapshot)
            raise
        else:
            self.commits += 1
        finally:
            self._depth = 0
            self._hooks.clear()
            self.locks.clear()

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        snapshot = self._snapshot()
        self._depth += 1
        try:
            yield
        except BaseException:
            self._restore(snapshot)
            raise
        finally:
            self._depth -= 1

    def before_commit(self, key: str, fn: Callable[[], None]) -> None:
        if not self._depth:
            raise RuntimeError("before_commit needs an open transaction")
        self._hooks.setdefault(key, fn)

    def lock(self, name: str) -> None:
        if not self._depth:
            raise RuntimeError("lock needs an open transaction")
        self.locks.append(name)

    def _snapshot(self) -> list[Any]:
        return [copy.deepcopy(p.state) for p in self._parts]

    def _restore(self, snapshot: list[Any]) -> None:
        for part, state in zip(self._parts, snapshot, strict=True):
            part.state = state


class MemoryNonceLedger(_State):
    def __init__(self) -> None:
        self.state: dict[tuple[str, bytes], int] = {}

    def remember(self, node_id: str, nonce: bytes, *, expires_ms: int, now_ms: int) -> bool:
        seen = self.state.get((node_id, nonce))
        if seen is not None and seen >= now_ms:
            return False
        self.state[(node_id, nonce)] = expires_ms
        return True

    def expect(self, node_id: str, nonce: bytes) -> None:
        """Nothing to read ahead in memory."""


class MemoryUsageLedger(_State):
    def __init__(self) -> None:
        self.state: dict[tuple[str, str], int] = {}

    def items_today(self, node_id: str, day: str) -> int:
        return self.state.get((node_id, day), 0)

    def add(self, node_id: str, day: str, items: int) -> None:
        self.state[(node_id, day)] = self.state.get((node_id, day), 0) + items


class MemoryReceiptStore(_State):
    def __init__(self) -> None:
        self.state: list[Receipt] = []

    def put(self, receipt: Receipt) -> None:
        self.state.append(receipt)

    def all(self, *, direction: str | None = None) -> list[Receipt]:
        return [r for r in self.state if direction is None or r.direction == direction]


class MemoryAuditSink(_State):
    """Sequence numbers from 1, as the Merkle log gives them; records kept in order."""

    def __init__(self) -> None:
        self.state: list[AuditRecord] = []

    def reserve(self) -> int:
        return len(self.state) + 1

    def append_record(self, record: AuditRecord, *, seq: int | None = None) -> int:
        if seq is not None and seq != len(self.state) + 1:
            raise RuntimeError(f"audit seq {seq} is not the next ({len(self.state) + 1})")
        self.state.append(record)
        return len(self.state)

    def bodies(self) -> list[dict[str, Any]]:
        return [r.body() for r in self.state]


class MemoryWatchlistStore(_State):
    """The watchlist tables and their change feed (``node/store/watchlist_feed.py``'s rules:
    recorded in the change's unit of work, stamped with the generation, the last
    ``keep`` generations kept, more than ``max_refs`` references "too many to list")."""

    def __init__(self, *, keep: int = 1024, max_refs: int = 20_000) -> None:
        # documents: (number, state, type, owner) -> (action, contact, expires, loss);
        # feed: pending references (None: too many to list) and generation -> references.
        self.state: tuple[dict[tuple[str, str, str, str], tuple[str, str, str, str]],
                          dict[str, PersonRow], str | None, _MemoryFeed] = (
            {}, {}, None, _MemoryFeed())
        #: owner_ref -> source agency (the SQL adapters' ``alert_meta``).
        self.sources: dict[str, str] = {}
        self.keep, self.max_refs = keep, max_refs

    def insert_documents(self, rows: Iterable[tuple[str, ...]]) -> int:
        n = 0
        for r in rows:
            self.state[0][(r[1], r[0], r[2], r[3])] = (r[4], r[5], r[6], r[7])
            n += 1
        return n

    def insert_persons(self, rows: Iterable[tuple[str, ...]]) -> int:
        n = 0
        refs: list[str] = []
        for r in rows:
            self.state[1][r[0]] = tuple(r)
            refs.append(r[0])
            n += 1
        self._record(refs)
        return n

    def delete_ref(self, owner_ref: str) -> int:
        """Delete every row of ``owner_ref`` (a withdrawal); returns how many."""
        docs = [k for k in self.state[0] if k[3] == owner_ref]
        for k in docs:
            del self.state[0][k]
        person = self.state[1].pop(owner_ref, None)
        if person is not None:
            self._record([owner_ref])
        return len(docs) + (person is not None)

    def _record(self, refs: list[str]) -> None:
        pending = self.state[3].pending
        if len(refs) > self.max_refs:
            pending.append(None)
        else:
            pending.extend(refs)

    def find_documents_many(self, keys: Sequence[tuple[str, str, str]],
                            today: str) -> dict[tuple[str, str, str], list[DocumentHit]]:
        wanted = set(keys)
        found: dict[tuple[str, str, str], list[DocumentHit]] = {}
        for (number, state, kind, owner), (action, contact, expires, _) in self.state[0].items():
            if (number, state, kind) in wanted and expires >= today:
                found.setdefault((number, state, kind), []).append((owner, action, contact))
        for hits in found.values():
            hits.sort()
        return found

    def iter_persons(self, today: str) -> Iterator[PersonRow]:
        yield from (r for r in list(self.state[1].values()) if r[9] >= today)

    def live_persons(self, owner_refs: Sequence[str], today: str) -> dict[str, PersonRow]:
        return {ref: row for ref in owner_refs
                if (row := self.state[1].get(ref)) is not None and row[9] >= today}

    def generation(self) -> str | None:
        return self.state[2]

    def sources_of(self, owner_refs: Sequence[str]) -> dict[str, str]:
        return {ref: self.sources[ref] for ref in owner_refs if self.sources.get(ref)}

    def bump_generation(self, value: str) -> None:
        docs, persons, _, feed = self.state
        self.state = (docs, persons, value, feed)
        if not value.isdigit():
            return
        gen = int(value)
        pending, feed.pending = feed.pending, []
        listed = None if None in pending or len(pending) > self.max_refs or \
            gen in feed.generations else [r for r in pending if r is not None]
        feed.generations[gen] = listed
        for g in [g for g in feed.generations if g <= gen - self.keep]:
            del feed.generations[g]

    def person_changes(self, since: str | None, until: str | None,
                       today: str) -> dict[str, PersonRow | None] | None:
        if since is None or until is None or not (since.isdigit() and until.isdigit()):
            return None
        a, b = int(since), int(until)
        if b < a:
            return None
        gens = self.state[3].generations
        refs: list[str] = []
        for g in range(a + 1, b + 1):
            listed = gens.get(g)
            if listed is None:
                return None
            refs.extend(listed)
        if len(refs) > self.max_refs:
            return None
        live = self.live_persons(refs, today)
        return {ref: live.get(ref) for ref in dict.fromkeys(refs)}

    def withdraw_person(self, owner_ref: str) -> None:
        """Remove a person without recording it or bumping the generation (a stand-in for
        a change the index has not followed yet)."""
        self.state[1].pop(owner_ref, None)

    def counts(self) -> tuple[int, int]:
        return len(self.state[0]), len(self.state[1])


class _MemoryFeed:
    def __init__(self) -> None:
        self.pending: list[str | None] = []
        self.generations: dict[int, list[str] | None] = {}


def memory_ports() -> tuple[MemoryUnitOfWork, MemoryNonceLedger, MemoryUsageLedger,
                            MemoryReceiptStore, MemoryAuditSink, MemoryWatchlistStore]:
    """A fresh set of ports sharing one unit of work."""
    nonces, usage, receipts = MemoryNonceLedger(), MemoryUsageLedger(), MemoryReceiptStore()
    audit, watchlist = MemoryAuditSink(), MemoryWatchlistStore()
    uow = MemoryUnitOfWork(nonces, usage, receipts, audit, watchlist)
    return uow, nonces, usage, receipts, audit, watchlist
