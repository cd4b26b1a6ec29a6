"""The node's audit log: an RFC 9162 Merkle tree over audit entries, in the node database.

One entry per exchange (or import, or sent request).  Each entry keeps:

* ``body``: canonical JSON (sorted keys, no spaces, ASCII), the exact bytes committed
  to, never re-encoded to verify;
* ``salt``: 32 random bytes;
* ``leaf``: the exact leaf bytes hashed into the tree (:func:`encode_leaf`)::

      "bxal" || 0x01 || u64 seq || u64 time_ms || SHA-256(salt || body)

  so the tree commits to the body through a *salted* hash.  When an entry's retention
  period ends, :meth:`MerkleAuditLog.erase_expired` deletes body and salt: the leaf,
  and so every root, inclusion and consistency proof, stays verifiable, and nobody can
  confirm a guessed body from the commitment.

Erasures are recorded in the log itself: every erasure of audit bodies -- ``bxnode audit
erase-expired`` or the retention sweep (:mod:`node.retention.sweep`) -- appends, in the
same transaction and at the erasure's own time, one entry carrying an
:class:`ErasureRecord` under :data:`ERASURE_KEY` (one format for both paths).  Records are
never erased themselves, and :meth:`MerkleAuditLog.verify` accepts an erased body only
when a record covers it (same erasure time, older than the record's cutoff, inside its
range, written after it), and only as many as the records say.

The tree (RFC 9162 section 2.1, :mod:`node.audit.merkle`) stores its perfect-subtree
hashes in ``audit_hashes`` (:class:`SqlHashStore`); proofs read O(log n) of them.

Sealing: appends only insert rows.  Just before the outermost ``COMMIT`` of the
transaction that appended (``Database.before_commit``), the log adds the new leaves to the
tree, checks that the new tree is consistent with the last checkpoint it signed (RFC 9162
2.1.4, from stored hashes against the *signed* old root), signs one C2SP checkpoint
(``origin``/size/root, :mod:`node.audit.checkpoint`) and stores it, all in that same
transaction.  One commit, one checkpoint: the group-commit writer gets one per batch.
A node therefore never signs a checkpoint inconsistent with its previous one.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

from node.audit.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from node.audit.hold import log_state
from node.audit.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    MerkleTree,
    ProofError,
    StoreCorrupt,
    hash_children,
    hash_leaf,
    verify_consistency,
)
from node.audit.note import (
    Ed25519NoteSigner,
    Ed25519NoteVerifier,
    NoteVerificationError,
    NoteVerifier,
    parse_note,
)
from node.audit.origins import log_origin
from node.core.errors import BxError, ConfigError
from node.core.signer import SigningKeyLike, as_signer
from node.store.audit_log import (
    ERASURE_RECORD_EVENTS,
    AuditEntry,
    AuditLogTables,
    CheckpointRow,
    NewAuditEntry,
)
from node.store.db import Database

__all__ = [
    "ERASURE_EVENT",
    "ERASURE_KEY",
    "LEAF_SIZE",
    "AuditEntry",
    "AuditLog",
    "AuditQuery",
    "ErasureRecord",
    "LeafData",
    "MerkleAuditLog",
    "SignedHead",
    "SqlHashStore",
    "VerifyReport",
    "body_commitment",
    "canonical_json",
    "decode_leaf",
    "encode_leaf",
    "log_origin",
    "log_verifiers",
]



_LEAF_MAGIC: Final = b"bxal\x01"
_LEAF = struct.Struct(">5sQQ32s")
#: Size of every leaf: magic and version, seq, time, salted body commitment.
LEAF_SIZE: Final = _LEAF.size
SALT_SIZE: Final = 32
_SEAL_KEY: Final = "audit_seal"


def canonical_json(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def body_commitment(salt: bytes, body: bytes) -> bytes:
    return hashlib.sha256(salt + body).digest()


@dataclass(frozen=True, slots=True)
class LeafData:
    seq: int
    time_ms: int
    commitment: bytes


def encode_leaf(seq: int, time_ms: int, commitment: bytes) -> bytes:
    return _LEAF.pack(_LEAF_MAGIC, seq, time_ms, commitment)


def decode_leaf(leaf: bytes) -> LeafData:
    if len(leaf) != LEAF_SIZE:
        raise ValueError("audit leaf has the wrong length")
    magic, seq, time_ms, commitment = _LEAF.unpack(leaf)
    if magic != _LEAF_MAGIC:
        raise ValueError("audit leaf has the wrong version")
    return LeafData(seq, time_ms, commitment)


def log_verifiers(node_id: str, public_keys: Sequence[bytes]) -> list[Ed25519NoteVerifier]:
    """The note verifiers of ``node_id``'s checkpoints: key name ``bxnode/<id>`` in every
    epoch of its log (:mod:`node.audit.origins`)."""
    return [Ed25519NoteVerifier(name=log_origin(node_id), public_key=k) for k in public_keys]


# --- recorded erasures ---------------------------------------------------------------------

#: The key of an :class:`ErasureRecord` in an audit entry's body.
ERASURE_KEY: Final = "audit_erasure"
#: The event of the entry ``bxnode audit erase-expired`` appends (the retention sweep's
#: ``retention_sweep`` entry carries the same record).
ERASURE_EVENT: Final = "audit_erasure"
assert ERASURE_EVENT in ERASURE_RECORD_EVENTS


@dataclass(frozen=True, slots=True)
class ErasureRecord:
    """One erasure of audit bodies, as recorded in the log (JSON under :data:`ERASURE_KEY`).

    ``erased_ms`` is the erasure's time: the ``erased_ms`` of every body it erased and the
    time of the entry that records it.  It erased ``erased`` bodies of entries older than
    ``before_ms`` (= ``erased_ms - retention_ms``), all within ``first_seq..last_seq``
    (None when it erased none); entries kept by a hold stay in the range unerased.
    """

    erased_ms: int
    retention_ms: int
    erased: int
    first_seq: int | None
    last_seq: int | None

    @property
    def before_ms(self) -> int:
        return self.erased_ms - self.retention_ms

    @classmethod
    def of(cls, *, erased_ms: int, retention_ms: int, seqs: Sequence[int]) -> ErasureRecord:
        return cls(erased_ms, retention_ms, len(seqs), min(seqs, default=None),
                   max(seqs, default=None))

    def to_json(self) -> dict[str, Any]:
        return {"erased_ms": self.erased_ms, "retention_ms": self.retention_ms,
                "before_ms": self.before_ms, "erased": self.erased,
                "first_seq": self.first_seq, "last_seq": self.last_seq}

    @classmethod
    def from_json(cls, obj: object) -> ErasureRecord | None:
        """The record, or None for anything that is not a well-formed one (fail closed:
        an erasure it would cover is then reported)."""
        if not isinstance(obj, dict):
            return None
        erased_ms, retention_ms, before_ms, erased = (
            obj.get(k) for k in ("erased_ms", "retention_ms", "before_ms", "erased"))
        first, last = obj.get("first_seq"), obj.get("last_seq")
        if not (type(erased_ms) is int and type(retention_ms) is int and retention_ms >= 0
                and type(erased) is int and erased >= 0
                and before_ms == erased_ms - retention_ms):
            return None
        if erased == 0:
            if first is not None or last is not None:
                return None
        elif not (type(first) is int and type(last) is int and 1 <= first <= last
                  and last - first + 1 >= erased):
            return None
        return cls(erased_ms, retention_ms, erased, first, last)

    def covers(self, seq: int, time_ms: int, *, recorded_at: int) -> bool:
        """Whether this record (in entry ``recorded_at``) accounts for erasing entry ``seq``."""
        return (self.first_seq is not None and self.last_seq is not None
                and self.first_seq <= seq <= self.last_seq and seq < recorded_at
                and time_ms < self.before_ms)


class _Erasures:
    """The erasure records of a log, by erasure time, and the erased bodies counted against
    them while verifying."""

    def __init__(self, records: Sequence[tuple[int, bytes]]) -> None:
        self.bodies: dict[int, bytes] = {}
        self.by_time: dict[int, list[tuple[int, ErasureRecord]]] = {}
        for seq, body in records:
            try:
                doc = json.loads(body)
            except ValueError:
                continue
            rec = ErasureRecord.from_json(doc.get(ERASURE_KEY)) if isinstance(doc, dict) else None
            if rec is None or doc.get("time_ms") != rec.erased_ms:
                continue
            self.bodies[seq] = body
            self.by_time.setdefault(rec.erased_ms, []).append((seq, rec))
        self.counted: dict[int, int] = {}

    @classmethod
    def load(cls, tables: AuditLogTables) -> _Erasures:
        return cls(tables.erasure_records())

    def accept(self, seq: int, time_ms: int, erased_ms: int) -> None:
        recs = self.by_time.get(erased_ms, [])
        if not any(r.covers(seq, time_ms, recorded_at=at) for at, r in recs):
            raise _Bad(seq, f"entry {seq} body was erased with no recorded erasure covering "
                            "it (tampering)")
        self.counted[erased_ms] = self.counted.get(erased_ms, 0) + 1

    def check_record(self, seq: int, body: bytes) -> None:
        """The record read before the scan is the body the scan verified."""
        if seq in self.bodies and self.bodies[seq] != body:
            raise _Bad(seq, f"entry {seq} (an erasure record) changed while verifying")

    def check_counts(self, counted: dict[int, int]) -> None:
        """Exactly as many bodies carry each erasure time as its records say were erased."""
        for when, recs in sorted(self.by_time.items()):
            want = sum(r.erased for _, r in recs)
            got = counted.get(when, 0)
            if got != want:
                seq = recs[-1][0]
                raise _Bad(seq, f"entry {seq} records {want} erased bodies at {when}, but "
                                f"{got} bodies carry that erasure time")

    def records(self) -> tuple[tuple[int, ErasureRecord], ...]:
        return tuple(sorted(x for recs in self.by_time.values() for x in recs))


class _DeferredErasures:
    """What a part of the parallel verification gathers instead of judging erasures as it
    goes (a record may follow, or lie in the other part): the erasure records it read and
    verified, and its erased entries; :meth:`judge` then applies exactly the checks of
    :class:`_Erasures` (the sequential scan's, on the records it loads first)."""

    def __init__(self) -> None:
        self.found: list[tuple[int, bytes]] = []
        self.erased: list[tuple[int, int, int]] = []

    def accept(self, seq: int, time_ms: int, erased_ms: int) -> None:
        self.erased.append((seq, time_ms, erased_ms))

    def check_record(self, seq: int, body: bytes) -> None:
        """Nothing to compare: the records are these very bodies, read in this pass."""

    @staticmethod
    def judge(parts: Sequence[_DeferredErasures]) -> _Erasures:
        """Every erased entry covered and counted against the records of all ``parts`` (in
        seq order); raises :class:`_Bad` as :class:`_Erasures` would."""
        erasures = _Erasures(sorted(r for p in parts for r in p.found))
        for part in parts:
            for seq, time_ms, erased_ms in part.erased:
                erasures.accept(seq, time_ms, erased_ms)
        erasures.check_counts(erasures.counted)
        return erasures


# --- values -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifyReport:
    ok: bool
    entries: int
    head: str
    first_bad_seq: int | None = None
    problem: str = ""
    checkpoints: int = 0
    erased: int = 0
    checkpoint_size: int = 0
    #: The erasures recorded in the log, ``(seq of the recording entry, record)``.
    erasures: tuple[tuple[int, ErasureRecord], ...] = ()
    #: Roots of the recomputed tree at the sizes asked for (``roots_at``).
    roots: dict[int, bytes] = field(default_factory=dict)

    @property
    def unsealed(self) -> int:
        """Entries after the last signed checkpoint (no signature covers them yet)."""
        return max(0, self.entries - self.checkpoint_size)


@dataclass(frozen=True, slots=True)
class AuditQuery:
    peer: str | None = None
    purpose: str | None = None
    outcome: str | None = None
    operator: str | None = None
    case_ref: str | None = None
    event: str | None = None
    from_ms: int | None = None
    to_ms: int | None = None
    limit: int = 1000


@dataclass(frozen=True, slots=True)
class SignedHead:
    """A stored signed checkpoint and the cosignature lines collected for it."""

    size: int
    root: bytes
    time_ms: int
    note: bytes
    cosignatures: tuple[str, ...] = field(default=())


class AuditLog(Protocol):
    def append(self, event: dict[str, Any], *, time_ms: int) -> int:
        """Append within the caller's transaction; returns the entry's sequence number."""
        ...

    def verify(self) -> VerifyReport: ...

    def search(self, q: AuditQuery) -> Iterator[dict[str, Any]]: ...


# --- hash store ---------------------------------------------------------------------------


class SqlHashStore:
    """:class:`node.audit.merkle.HashStore` over the ``audit_hashes`` table."""

    def __init__(self, store: Database | AuditLogTables) -> None:
        self._tables = store if isinstance(store, AuditLogTables) else AuditLogTables(store)

    def get_many(self, coords: Sequence[tuple[int, int]], /) -> list[bytes]:
        if not coords:
            return []
        found = self._tables.get_hashes(coords)
        try:
            return [found[c] for c in coords]
        except KeyError as exc:
            raise StoreCorrupt(f"missing audit hash at {exc.args[0]}") from None

    def put_many(self, entries: Sequence[tuple[int, int, bytes]], /) -> None:
        if any(len(h) != HASH_SIZE for _, _, h in entries):
            raise StoreCorrupt("malformed hash store entry")
        inserted = self._tables.put_hashes(entries)
        if inserted != len(entries):  # some existed: they must hold the same hash
            have = self.get_many([(lv, ix) for lv, ix, _ in entries])
            for (lv, ix, h), old in zip(entries, have, strict=True):
                if old != h:
                    raise StoreCorrupt(f"audit hash at level {lv} index {ix} would change")


# --- the log ------------------------------------------------------------------------------


class MerkleAuditLog:
    """The audit log of one node over its :class:`~node.store.db.Database`.

    ``signing_key`` signs checkpoints; a log opened without one (read-only tools) still
    appends, and its entries are sealed by the next commit of a log that has a key.
    """

    def __init__(self, *, store: Database, node_id: str | None = None,
                 signing_key: SigningKeyLike | None = None) -> None:
        self._tables = AuditLogTables(store)
        self._tables.ensure_schema()
        self._store = store
        self.node_id = node_id
        self.origin = log_origin(node_id) if node_id else None
        self._signer: Ed25519NoteSigner | None = None
        if signing_key is not None:
            if self.origin is None:
                raise ConfigError("a signing audit log needs its node id", reason="bad_config")
            self._signer = Ed25519NoteSigner(name=self.origin, signer=as_signer(signing_key))
        self.hashes = SqlHashStore(self._tables)

    @property
    def store(self) -> Database:
        return self._store

    def current_origin(self) -> str:
        """The origin of the checkpoints this log signs now (its epoch's)."""
        if self.node_id is None:
            raise ConfigError("this audit log has no node id", reason="bad_config")
        return log_origin(self.node_id, log_state(self._store)[0])

    @property
    def verifier(self) -> Ed25519NoteVerifier | None:
        return None if self._signer is None else self._signer.verifier

    # --- writing ----------------------------------------------------------------------------

    def next_seq(self) -> int:
        return self._tables.next_seq()

    def append(self, event: dict[str, Any], *, time_ms: int, seq: int | None = None) -> int:
        """Append one entry in the caller's transaction (or its own); return its seq.

        ``seq``: the number the caller read with :meth:`next_seq` in this transaction under
        the append lock (the pipeline reserves it first), so it is not read again; a wrong
        one fails (a duplicate key, or a gap the next seal refuses to sign).  Inside the
        caller's transaction no savepoint is opened: the entry is one INSERT."""
        if self._store.in_transaction:
            return self._append(event, time_ms, seq)
        with self._store.transaction():
            return self._append(event, time_ms, seq)

    def _append(self, event: dict[str, Any], time_ms: int, seq: int | None) -> int:
        self._tables.append_lock()  # one total order across replicas (no-op on SQLCipher)
        if self._signer is None:  # a log with a key checks the hold when it seals
            hold = log_state(self._store)[1]
            if hold is not None:
                raise hold.error()
        if seq is None:
            seq = self.next_seq()
        body = canonical_json({**event, "seq": seq, "time_ms": time_ms, "v": 2})
        salt = os.urandom(SALT_SIZE)
        leaf = encode_leaf(seq, time_ms, body_commitment(salt, body))
        peer = event.get("requester") or event.get("peer")
        self._tables.insert_entry(NewAuditEntry(
            seq=seq, time_ms=time_ms, salt=salt, body=body, leaf=leaf,
            event=_s(event.get("event")), requester=_s(peer),
            operator=_s(event.get("operator")), purpose=_s(event.get("purpose")),
            case_ref=_s(event.get("case_ref")), outcome=_s(event.get("outcome")),
            request_digest=_s(event.get("request_digest"))))
        if self._signer is not None:
            self._store.before_commit(_SEAL_KEY, lambda: self._seal_hook(time_ms))
        return seq

    def _seal_hook(self, time_ms: int) -> None:
        self.seal(time_ms=time_ms)

    def seal(self, *, time_ms: int) -> SignedHead | None:
        """Add unsealed entries to the tree and sign one checkpoint (in the open transaction).

        Refuses (raises :class:`StoreCorrupt`) to sign a tree that is not consistent with
        the last checkpoint this log signed, and (:mod:`node.audit.hold`) to sign at all
        while a restored log is on hold.  The checkpoint's origin is the log's current
        epoch's (:mod:`node.audit.origins`).
        """
        if self._signer is None or self.node_id is None:
            raise ConfigError("this audit log has no signing key", reason="no_signing_key")
        epoch, hold = log_state(self._store)
        if hold is not None:
            raise hold.error()
        last = self._tables.latest_checkpoint()  # (its cosignatures are not needed here)
        old_size = 0 if last is None else last.size
        tree = MerkleTree.open(self.hashes, old_size)
        leaves = self._tables.leaves_after(old_size)
        if not leaves:
            return None
        # every entry after the last checkpoint, numbered on from it without a gap: so the
        # tree's new size is also the log's largest seq (no second read of it)
        if leaves[0][0] != old_size + 1 or leaves[-1][0] != old_size + len(leaves):
            raise StoreCorrupt("audit entries are not numbered 1..n")
        tree.append(hash_leaf(leaf) for _, leaf in leaves)
        root = tree.root()
        if last is not None:
            # RFC 9162 2.1.4: prove, from stored hashes, that the new tree extends the one
            # we signed last, against the root in that *signed* note, before signing again.
            old_root = Checkpoint.parse(parse_note(last.note).text).root_hash
            try:
                verify_consistency(old_size=old_size, new_size=tree.size, old_root=old_root,
                                   new_root=root, proof=tree.consistency_proof(old_size))
            except ProofError as exc:
                raise StoreCorrupt(
                    "refusing to sign a checkpoint inconsistent with the last one signed "
                    f"(size {old_size}): {exc.message}", reason="inconsistent_log") from exc
        checkpoint = Checkpoint(origin=log_origin(self.node_id, epoch), size=tree.size,
                                root_hash=root)
        note = sign_checkpoint(checkpoint, [self._signer])
        self._tables.insert_checkpoint(CheckpointRow(tree.size, root, time_ms, note))
        return SignedHead(tree.size, root, time_ms, note)

    def add_cosignature(self, size: int, witness: str, line: str, *, time_ms: int) -> None:
        self._tables.put_cosignature(size, witness, line, time_ms=time_ms)

    def erase_expired(self, *, now_ms: int, retention_ms: int,
                      facts: dict[str, Any] | None = None) -> int:
        """Delete body, salt and search fields of entries older than ``retention_ms`` and
        record it: one ``audit_erasure`` entry (with ``facts``) carrying the
        :class:`ErasureRecord`, in the same transaction, at ``now_ms``."""
        with self._store.transaction():
            self._tables.append_lock()
            cutoff = now_ms - retention_ms
            count, first, last = self._tables.erasable_range(cutoff)
            erased = self._tables.erase_before(cutoff, now_ms=now_ms)
            if erased != count:
                raise StoreCorrupt("audit erasure changed underneath")
            record = ErasureRecord(now_ms, retention_ms, erased, first, last)
            self.append({**(facts or {}), "event": ERASURE_EVENT,
                         ERASURE_KEY: record.to_json()}, time_ms=now_ms)
            return erased

    def erasure_records(self) -> tuple[tuple[int, ErasureRecord], ...]:
        """Every recorded erasure, ``(seq of its entry, record)`` in seq order."""
        return _Erasures.load(self._tables).records()

    # --- reading ----------------------------------------------------------------------------

    def latest_head(self) -> SignedHead | None:
        row = self._tables.latest_checkpoint()
        return None if row is None else self._head(row)

    def head_at_least(self, size: int) -> SignedHead | None:
        row = self._tables.checkpoint_at_least(size)
        return None if row is None else self._head(row)

    def latest_cosigned_head(self, at_least: int = 1) -> SignedHead | None:
        """The latest checkpoint with stored cosignatures covering entry ``at_least``."""
        size = self._tables.latest_cosigned_size(at_least)
        return None if size is None else self.head(size)

    def head(self, size: int) -> SignedHead | None:
        row = self._tables.checkpoint(size)
        return None if row is None else self._head(row)

    def _head(self, row: CheckpointRow) -> SignedHead:
        return SignedHead(row.size, row.root, row.time_ms, row.note,
                          self._tables.cosignature_lines(row.size))

    def heads(self) -> list[SignedHead]:
        return [self._head(r) for r in self._tables.checkpoints()]

    def cosignature_rows(self) -> list[tuple[int, str, str]]:
        """Every stored cosignature ``(checkpoint size, witness name, line)``."""
        return self._tables.cosignatures()

    def entry(self, seq: int) -> AuditEntry | None:
        return self._tables.entry(seq)

    def entry_for_request(self, digest_hex: str) -> AuditEntry | None:
        """This node's entry for a request it *received* with this digest (not one it sent)."""
        return self._tables.entry_for_request(digest_hex)

    def tree(self, size: int) -> MerkleTree:
        return MerkleTree.open(self.hashes, size)

    def inclusion_proof(self, seq: int, size: int) -> list[bytes]:
        return self.tree(size).inclusion_proof(seq - 1, size)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        if old_size == 0 or old_size == new_size:
            return []
        return self.tree(new_size).consistency_proof(old_size, new_size)

    def entries(self, *, from_ms: int | None = None,
                to_ms: int | None = None) -> Iterator[AuditEntry]:
        yield from self._tables.entries(from_ms=from_ms, to_ms=to_ms)

    def bodies(self, *, from_ms: int | None = None,
               to_ms: int | None = None) -> Iterator[dict[str, Any]]:
        """Entry bodies in seq order; an erased entry appears as ``{seq, time_ms, erased}``."""
        for e in self.entries(from_ms=from_ms, to_ms=to_ms):
            yield _body_dict(e)

    def search(self, q: AuditQuery) -> Iterator[dict[str, Any]]:
        for e in self._tables.search(
                limit=q.limit, event=q.event, requester=q.peer, operator=q.operator,
                purpose=q.purpose, case_ref=q.case_ref, outcome=q.outcome,
                from_ms=q.from_ms, to_ms=q.to_ms):
            yield _body_dict(e)

    # --- verification -----------------------------------------------------------------------

    def verify(self, *, verifiers: Sequence[NoteVerifier] | None = None,
               roots_at: Sequence[int] = ()) -> VerifyReport:
        """Recompute the whole tree from the stored leaves; check every entry and checkpoint.

        Names the first bad entry: a changed body or leaf, a missing, inserted or
        reordered entry, a body erased with no recorded erasure covering it (or more
        bodies erased than recorded), or a checkpoint whose signature or root does not
        match the recomputed tree.  ``roots_at``: sizes whose recomputed roots the report
        carries (``roots``), e.g. the sizes witnesses hold.
        """
        if verifiers is None:
            verifiers = [self.verifier] if self.verifier is not None else []
        return _verify(self._store, list(verifiers), sorted(set(roots_at)))


def _s(value: object) -> str | None:
    return None if value is None else str(value)


def _body_dict(e: AuditEntry) -> dict[str, Any]:
    if e.body is None:
        return {"seq": e.seq, "time_ms": e.time_ms, "erased": True}
    out: dict[str, Any] = json.loads(e.body)
    return out


class _Bad(Exception):
    def __init__(self, seq: int, problem: str) -> None:
        super().__init__(problem)
        self.seq = seq
        self.problem = problem


def _check_entry(expected: int, seq: int, time_ms: int, salt: Any, body: Any, leaf: Any,
                 erased_ms: int | None,
                 erasures: _Erasures | _DeferredErasures) -> tuple[bytes, int]:
    """One stored entry against its leaf: ``(leaf hash, 1 if erased else 0)``, or raise."""
    if seq != expected:
        if seq > expected:
            raise _Bad(expected, f"entry {expected} is missing (next stored entry is {seq})")
        raise _Bad(seq, f"entry {seq} is out of order")
    leaf = bytes(leaf)
    if len(leaf) != LEAF_SIZE or leaf[:5] != _LEAF_MAGIC:
        raise _Bad(seq, f"entry {seq} leaf is malformed")
    _, lseq, ltime, commitment = _LEAF.unpack(leaf)
    if lseq != seq:
        raise _Bad(seq, f"entry {seq} holds the leaf of entry {lseq} (reordered or copied)")
    if ltime != time_ms:
        raise _Bad(seq, f"entry {seq} time was changed")
    if body is None:
        if erased_ms is None:
            raise _Bad(seq, f"entry {seq} body was deleted")
        erasures.accept(seq, time_ms, int(erased_ms))
        return hashlib.sha256(b"\x00" + leaf).digest(), 1
    if salt is None or hashlib.sha256(bytes(salt) + bytes(body)).digest() != commitment:
        raise _Bad(seq, f"entry {seq} was changed after it was written")
    erasures.check_record(seq, bytes(body))
    return hashlib.sha256(b"\x00" + leaf).digest(), 0


#: Below this many entries one process verifies; above, two (see :func:`_verify_parallel`).
PARALLEL_VERIFY_MIN = 200_000


_ScanResult = tuple[dict[int, list[bytes]], list[bytes], int]


def _scan(store: Database, first: int, last: int, sizes: Sequence[int],
          erasures: _DeferredErasures) -> _ScanResult:
    """Check entries ``first..last`` and build the Merkle stack of that range alone (RFC 9162
    2.1.1: complete subtrees, left to right).  Returns the stack at each size in ``sizes``,
    the final stack and the erased count; raises :class:`_Bad` on the first problem.  The
    erasure records read and the erased entries go to ``erasures``, judged afterwards."""
    sha = hashlib.sha256
    pack = _LEAF.pack
    stack: list[bytes] = []
    states: dict[int, list[bytes]] = {}
    want = set(sizes)
    record_events = frozenset(ERASURE_RECORD_EVENTS)
    found = erasures.found
    n = first - 1
    erased = 0
    for seq, time_ms, salt, body, leaf, erased_ms, event in \
            AuditLogTables(store).scan_with_events(first, last):
        n += 1
        try:  # the common case in one comparison: the stored leaf is the one this row encodes
            same = (body is not None and salt is not None and seq == n
                    and leaf == pack(_LEAF_MAGIC, seq, time_ms, sha(salt + body).digest()))
        except (TypeError, struct.error):
            same = False
        if same:
            h = sha(b"\x00" + leaf).digest()
        else:  # every check one by one (raises on the first that fails)
            h, was_erased = _check_entry(n, seq, time_ms, salt, body, leaf, erased_ms,
                                         erasures)
            erased += was_erased
        if event in record_events and body is not None:
            found.append((seq, bytes(body)))
        stack.append(h)
        k = n - first + 1
        while not k & 1:
            r = stack.pop()
            stack[-1] = sha(b"\x01" + stack[-1] + r).digest()
            k >>= 1
        if n in want:
            states[n] = list(stack)
    if n != last:
        raise _Bad(n + 1, f"entry {n + 1} is missing")
    return states, stack, erased


def _scan_in_child(spec: tuple[Path, bytes], first: int, last: int,
                   sizes: list[int]) -> tuple[_ScanResult, _DeferredErasures] | None:
    """Run :func:`_scan` in a worker process (``python -m node.audit.log``); the database
    key travels over the worker's stdin, never the command line.  None on any problem."""
    import json as _json
    import subprocess
    import sys

    job = {"path": str(spec[0]), "key": spec[1].hex(), "first": first, "last": last,
           "sizes": sizes}
    try:
        proc = subprocess.run([sys.executable, "-m", "node.audit.log"], input=_json.dumps(job),
                              capture_output=True, text=True, timeout=3600, check=False)
        if proc.returncode != 0:
            return None
        out = _json.loads(proc.stdout)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    if not out.get("ok"):
        return None
    states = {int(k): [bytes.fromhex(h) for h in v] for k, v in out["states"].items()}
    erasures = _DeferredErasures()
    erasures.found = [(int(s), bytes.fromhex(b)) for s, b in out["records"]]
    erasures.erased = [(int(s), int(t), int(e)) for s, t, e in out["erased_entries"]]
    return (states, [bytes.fromhex(h) for h in out["stack"]], int(out["erased"])), erasures


def _worker_main() -> int:
    """Entry of the verification worker: one JSON job on stdin, one JSON result on stdout."""
    import json as _json
    import sys

    from node.store.sqlcipher import Store

    job = _json.loads(sys.stdin.read())
    store = Store.open(Path(job["path"]), bytes.fromhex(job["key"]))
    erasures = _DeferredErasures()
    try:
        states, stack, erased = _scan(store, job["first"], job["last"], job["sizes"],
                                      erasures)
    except _Bad:
        print(_json.dumps({"ok": False}))
        return 0
    finally:
        store.close()
    print(_json.dumps({"ok": True, "erased": erased, "stack": [h.hex() for h in stack],
                       "records": [(s, b.hex()) for s, b in erasures.found],
                       "erased_entries": erasures.erased,
                       "states": {str(k): [h.hex() for h in v] for k, v in states.items()}}))
    return 0


def _verify_parallel(store: Database, verifiers: list[NoteVerifier],
                     roots_at: list[int]) -> VerifyReport | None:
    """Verify a large log on two cores; None when anything is off (the caller then runs the
    sequential verification, which names the first bad entry).

    Only for the embedded store (``dialect == "sqlite"``): the worker process opens the
    same SQLCipher file read-only through :meth:`Store.reader_spec`.  Other backends
    verify sequentially.

    RFC 9162 2.1.1 splits a tree of n leaves at k, the largest power of two below n; the
    left part is one complete subtree, so its root followed by the right part's complete
    subtrees is exactly the stack the sequential scan would hold.  Each checkpoint's root
    is recomputed from that stack and compared with its signed note.  Erased bodies are
    judged once both parts are read, against the erasure records the two parts found.
    """
    reader_spec = getattr(store, "reader_spec", None)
    if store.dialect != "sqlite" or reader_spec is None:
        return None
    tables = AuditLogTables(store)
    count, top = tables.count_and_max()
    if top is None or count != top or count < PARALLEL_VERIFY_MIN:
        return None
    n = count
    heads = [(c.size, c.root, c.note) for c in tables.checkpoints()]
    if any(size > n or size < 1 for size, _, _ in heads) or not verifiers:
        return None
    sizes = sorted({s for s, _, _ in heads} | {s for s in roots_at if 1 <= s <= n})
    k = 1 << ((n - 1).bit_length() - 1)
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:  # waits on the worker
        right = pool.submit(_scan_in_child, reader_spec(), k + 1, n,
                            [s for s in sizes if s > k])
        left_erasures = _DeferredErasures()
        try:
            left_states, left, erased_left = _scan(
                store, 1, k, [s for s in sizes if s <= k], left_erasures)
        except _Bad:
            return None
        result = right.result()
    if result is None or len(left) != 1:
        return None
    (right_states, right_stack, erased_right), right_erasures = result
    try:
        erasures = _DeferredErasures.judge([left_erasures, right_erasures])
    except _Bad:
        return None

    def stack_at(size: int) -> list[bytes]:
        return left_states[size] if size <= k else [left[0], *right_states[size]]

    for size, root_col, note in heads:
        try:
            signed = open_checkpoint(note, log_verifiers=verifiers).checkpoint
        except BxError:
            return None
        if (signed.size != size or signed.root_hash != root_col
                or _fold(stack_at(size)) != root_col):
            return None
    full = _fold([left[0], *right_stack])
    roots = {s: (full if s == n else _fold(stack_at(s))) for s in roots_at if 1 <= s <= n}
    return VerifyReport(True, n, full.hex(),
                        checkpoints=len(heads), erased=erased_left + erased_right,
                        checkpoint_size=heads[-1][0] if heads else 0,
                        erasures=erasures.records(), roots=roots)


def _verify(store: Database, verifiers: list[NoteVerifier],
            roots_at: list[int]) -> VerifyReport:
    fast = _verify_parallel(store, verifiers, roots_at)
    if fast is not None:
        return fast
    return _verify_sequential(store, verifiers, roots_at,
                              _Erasures.load(AuditLogTables(store)))


def _verify_sequential(store: Database, verifiers: list[NoteVerifier], roots_at: list[int],
                       erasures: _Erasures) -> VerifyReport:
    tables = AuditLogTables(store)
    heads = [(c.size, c.root, c.note) for c in tables.checkpoints()]
    want_roots = set(roots_at)
    roots: dict[int, bytes] = {}
    sha = hashlib.sha256
    stack: list[bytes] = []
    window: list[bytes] = []  # leaf hashes since the last checked checkpoint
    n = 0
    erased = 0
    hi = 0  # index into heads
    last_ok = 0
    try:
        for seq, time_ms, salt, body, leaf, erased_ms in tables.scan():
            h, was_erased = _check_entry(n + 1, seq, time_ms, salt, body, leaf, erased_ms,
                                         erasures)
            erased += was_erased
            window.append(h)
            stack.append(h)
            n = seq
            k = n
            while not k & 1:
                r = stack.pop()
                stack[-1] = sha(b"\x01" + stack[-1] + r).digest()
                k >>= 1
            if n in want_roots:
                roots[n] = _fold(stack)
            while hi < len(heads) and heads[hi][0] == n:
                _check_head(tables, heads[hi], stack, verifiers, window, last_ok)
                last_ok = n
                window = []
                hi += 1
        if hi < len(heads):
            size = heads[-1][0]
            raise _Bad(n + 1, f"entries {n + 1}..{size} are missing: checkpoint of size "
                              f"{size} covers them")
        erasures.check_counts(erasures.counted)
    except _Bad as bad:
        bad = _earlier_bad_leaf(tables, window, n - len(window)) or bad
        return VerifyReport(False, n, _fold(stack).hex(), bad.seq, bad.problem,
                            checkpoints=hi, erased=erased,
                            checkpoint_size=heads[hi - 1][0] if hi else 0,
                            erasures=erasures.records(), roots=roots)
    return VerifyReport(True, n, _fold(stack).hex(), checkpoints=len(heads), erased=erased,
                        checkpoint_size=heads[-1][0] if heads else 0,
                        erasures=erasures.records(), roots=roots)


def _earlier_bad_leaf(tables: AuditLogTables, window: list[bytes], start: int) -> _Bad | None:
    """A leaf accepted since the last checkpoint that differs from the stored leaf hash."""
    stored = tables.leaf_hashes(start, start + len(window))
    for i, (h, s) in enumerate(zip(window, stored, strict=False)):
        if h != s:
            seq = start + i + 1
            return _Bad(seq, f"entry {seq} was changed or inserted after it was written (its "
                             "leaf is not the one stored when it was sealed)")
    return None


def _fold(stack: list[bytes]) -> bytes:
    if not stack:
        return EMPTY_ROOT
    acc = stack[-1]
    for h in reversed(stack[:-1]):
        acc = hash_children(h, acc)
    return acc


def _check_head(tables: AuditLogTables, head: tuple[int, bytes, bytes], stack: list[bytes],
                verifiers: list[NoteVerifier], window: list[bytes], last_ok: int) -> None:
    size, root_col, note = head
    try:
        if not verifiers:
            raise NoteVerificationError("no key to verify checkpoints with")
        signed = open_checkpoint(note, log_verifiers=verifiers).checkpoint
    except BxError as exc:
        raise _Bad(size, f"checkpoint of size {size} does not verify: {exc.message}") from None
    if signed.size != size or signed.root_hash != root_col:
        raise _Bad(size, f"checkpoint of size {size} was rewritten (stored size or root "
                         "differs from the signed note)")
    if _fold(stack) == signed.root_hash:
        return
    # The recomputed tree differs from the signed one: find the leaf using the stored
    # (write-once) leaf hashes of this checkpoint's batch.
    first = last_ok + 1
    stored = tables.leaf_hashes(last_ok, size)
    for i, h in enumerate(window):
        if i >= len(stored) or stored[i] != h:
            seq = first + i
            raise _Bad(seq, f"entry {seq} was changed after it was written (its leaf is not "
                            f"the one signed in checkpoint {size})")
    raise _Bad(first, f"an entry in {first}..{size} was changed after it was written "
                      f"(checkpoint {size} does not match)")


if __name__ == "__main__":
    raise SystemExit(_worker_main())
