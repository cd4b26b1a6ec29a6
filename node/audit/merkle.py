"""RFC 9162 Merkle tree: hashing, proof verification and proof generation.

Sans-I/O.  Hashes live behind :class:`HashStore`, a two-method batched
protocol; :class:`InMemoryHashStore` is the reference implementation and the
one the tests and benchmark use.

Layout of the store (the "compact range / tile" layout of Trillian and
Tessera): the hash at ``(level, index)`` is the root of the *perfect* subtree
over leaves ``[index * 2**level, (index + 1) * 2**level)``.  Level 0 holds the
leaf hashes.  Only complete subtrees are ever stored, so a stored hash never
changes once written: appending leaves only adds entries.  Every RFC 9162
subtree (including the ragged right edge of a tree whose size is not a power
of two) is a fold of at most ⌈log₂ n⌉ such perfect subtrees, so any root,
inclusion proof or consistency proof for any past size is computed from
O(log n) stored hashes fetched in one batch, never by rebuilding the tree.

Verification follows RFC 9162 section 2.1.3.2 (inclusion) and 2.1.4.2
(consistency) step by step, and raises :class:`ProofError` instead of
returning a boolean.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Final, Protocol

from node.core.errors import ConfigError, PeerError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MAX_PROOF_HASHES",
    "MAX_TREE_SIZE",
    "ConsistencyProofError",
    "HashStore",
    "InMemoryHashStore",
    "MerkleTree",
    "ProofError",
    "StoreCorrupt",
    "consistency_proof_length",
    "hash_children",
    "hash_leaf",
    "inclusion_proof_length",
    "perfect_subtrees",
    "verify_consistency",
    "verify_inclusion",
]

#: SHA-256 output size; every leaf, node and root hash has this length.
HASH_SIZE: Final = 32
#: Largest tree size accepted anywhere (tlog-checkpoint sizes are uint64; we
#: stay inside the signed 63-bit range so sizes fit an SQLite INTEGER).
MAX_TREE_SIZE: Final = 2**63 - 1
#: Longest proof accepted: ⌈log₂ MAX_TREE_SIZE⌉ + 1 (consistency) = 64.
#: tlog-witness caps consistency proofs at 63 lines, which is below this.
MAX_PROOF_HASHES: Final = 64

#: RFC 9162 section 2.1.1: MTH({}) = SHA-256() (the hash of the empty string).
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()

_LEAF_PREFIX: Final = b"\x00"
_NODE_PREFIX: Final = b"\x01"


class ProofError(PeerError):
    """A Merkle proof, or the sizes and hashes it is checked against, is wrong.

    Reasons: ``bad_inclusion_proof``, ``bad_consistency_proof``, ``bad_proof_input``
    (sizes out of range, wrong hash lengths, oversized proof).
    """

    status = "INVALID_ARGUMENT"
    default_reason = "bad_proof"


class ConsistencyProofError(ProofError):
    """A consistency proof that does not show the old tree is a prefix of the new one
    (``bad_consistency_proof``, FAILED_PRECONDITION as the registry has it: the proof is
    well formed, the logs' states do not agree)."""

    status = "FAILED_PRECONDITION"
    default_reason = "bad_consistency_proof"


class StoreCorrupt(ConfigError):
    """The hash store disagrees with itself (a write-once hash changed, or is missing).

    Not the peer's fault: our own storage is broken or was tampered with.
    """

    status = "DATA_LOSS"
    default_reason = "hash_store_corrupt"


# --- RFC 9162 section 2.1.1: Merkle Tree Hash --------------------------------


def hash_leaf(data: bytes) -> bytes:
    """RFC 9162 2.1.1: MTH({d(0)}) = SHA-256(0x00 || d(0))."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def hash_children(left: bytes, right: bytes) -> bytes:
    """RFC 9162 2.1.1: MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """RFC 9162 2.1.1: k, the largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def perfect_subtrees(start: int, end: int) -> list[tuple[int, int]]:
    """The perfect subtrees ``(level, index)`` whose fold is MTH(D[start:end]).

    ``start`` must be a multiple of the largest power of two not exceeding
    ``end - start`` (true of every subtree RFC 9162's recursion visits).  The
    list runs left to right with strictly decreasing sizes: one subtree per set
    bit of ``end - start``.
    """
    out: list[tuple[int, int]] = []
    width = end - start
    offset = start
    for level in range(width.bit_length() - 1, -1, -1):
        if width >> level & 1:
            out.append((level, offset >> level))
            offset += 1 << level
    return out


def _fold(hashes: Sequence[bytes]) -> bytes:
    """Fold perfect-subtree roots (left to right, decreasing size) into MTH.

    RFC 9162 2.1.1 splits at the largest power of two, which is always the
    leftmost perfect subtree, so the fold runs right to left.
    """
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = hash_children(h, acc)
    return acc


# --- Proof shape (pure arithmetic, no hashes) ---------------------------------


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """RFC 9162 2.1.3.1 PATH(m, D[n]) as subtree ranges, leaf to root."""
    ranges: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        k = _largest_power_of_two_below(end - start)
        if index < start + k:
            # PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])
            ranges.append((start + k, end))
            end = start + k
        else:
            # PATH(m, D[n]) = PATH(m - k, D[k:n]) : MTH(D[0:k])
            ranges.append((start, start + k))
            start += k
    ranges.reverse()
    return ranges


def _consistency_ranges(old: int, new: int) -> list[tuple[int, int]]:
    """RFC 9162 2.1.4.1 PROOF(m, D[n]) = SUBPROOF(m, D[n], true) as ranges."""
    ranges: list[tuple[int, int]] = []
    start, end, m, complete = 0, new, old, True
    while True:
        if m == end - start:
            # SUBPROOF(m, D[m], true) = {};  SUBPROOF(m, D[m], false) = {MTH(D[m])}
            if not complete:
                ranges.append((start, end))
            break
        k = _largest_power_of_two_below(end - start)
        if m <= k:
            # SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
            ranges.append((start + k, end))
            end = start + k
        else:
            # SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
            ranges.append((start, start + k))
            start += k
            m -= k
            complete = False
    ranges.reverse()
    return ranges


def _check_size(size: int, what: str) -> None:
    if not 0 <= size <= MAX_TREE_SIZE:
        raise ProofError(f"{what} {size} out of range", reason="bad_proof_input")


def inclusion_proof_length(index: int, size: int) -> int:
    """Number of hashes in the inclusion proof for ``index`` in a tree of ``size``."""
    _check_size(size, "tree size")
    if not 0 <= index < size:
        raise ProofError("leaf index not in tree", reason="bad_proof_input")
    return len(_inclusion_ranges(index, size))


def consistency_proof_length(old: int, new: int) -> int:
    """Number of hashes in the consistency proof from ``old`` to ``new`` (0 < old <= new)."""
    _check_size(new, "tree size")
    if not 0 < old <= new:
        raise ProofError("need 0 < old size <= new size", reason="bad_proof_input")
    return len(_consistency_ranges(old, new))


# --- RFC 9162 section 2.1.3.2: verifying an inclusion proof ------------------


def _check_proof_hashes(proof: Sequence[bytes]) -> None:
    if len(proof) > MAX_PROOF_HASHES:
        raise ProofError("proof too long", reason="bad_proof_input")
    for p in proof:
        if len(p) != HASH_SIZE:
            raise ProofError("proof hash has wrong length", reason="bad_proof_input")


def verify_inclusion(
    *,
    leaf_hash: bytes,
    index: int,
    size: int,
    proof: Sequence[bytes],
    root: bytes,
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` with ``root``.

    Implements RFC 9162 2.1.3.2 literally.  Raises :class:`ProofError`.
    """
    _check_size(size, "tree size")
    if len(leaf_hash) != HASH_SIZE or len(root) != HASH_SIZE:
        raise ProofError("leaf or root hash has wrong length", reason="bad_proof_input")
    _check_proof_hashes(proof)
    # Step 1: compare leaf_index against tree_size; fail if leaf_index >= tree_size.
    if not 0 <= index < size:
        raise ProofError("leaf index not in tree", reason="bad_inclusion_proof")
    # Step 2: fn = leaf_index, sn = tree_size - 1.
    fn, sn = index, size - 1
    # Step 3: r = hash.
    r = leaf_hash
    # Step 4: for each value p in the inclusion_path array:
    for p in proof:
        # 4a. If sn is 0, stop the iteration and fail the proof verification.
        if sn == 0:
            raise ProofError("inclusion proof too long", reason="bad_inclusion_proof")
        # 4b. If LSB(fn) is set, or if fn is equal to sn, then:
        if fn & 1 or fn == sn:
            r = hash_children(p, r)
            # If LSB(fn) is not set, right-shift fn and sn equally until
            # either LSB(fn) is set or fn is 0.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = hash_children(r, p)
        # 4c. Finally, right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    # Step 5: compare sn to 0 and r against the root hash.
    if sn != 0:
        raise ProofError("inclusion proof too short", reason="bad_inclusion_proof")
    if r != root:
        raise ProofError("inclusion proof does not match root", reason="bad_inclusion_proof")


# --- RFC 9162 section 2.1.4.2: verifying a consistency proof -----------------


def verify_consistency(
    *,
    old_size: int,
    new_size: int,
    old_root: bytes,
    new_root: bytes,
    proof: Sequence[bytes],
) -> None:
    """Check that the tree of ``new_size`` / ``new_root`` extends ``old_size`` / ``old_root``.

    RFC 9162 2.1.4.2 is defined for ``0 < first < second``.  Outside it:

    * ``old_size == new_size``: the proof must be empty and the roots equal;
    * ``old_size == 0``: rejected.  An empty tree is trivially consistent with
      every tree, so there is nothing to verify; callers that accept "no
      previous state" (a witness's first checkpoint) handle it themselves.
      This matches the transparency-dev reference vectors.

    Raises :class:`ProofError`.
    """
    _check_size(old_size, "old size")
    _check_size(new_size, "new size")
    _check_proof_hashes(proof)
    if old_size > new_size:
        raise ConsistencyProofError("old size larger than new size")
    if old_size == 0:
        raise ConsistencyProofError("consistency from the empty tree proves nothing")
    if old_size == new_size:
        if proof:
            raise ConsistencyProofError("sizes equal but proof not empty")
        if old_root != new_root:
            raise ConsistencyProofError("sizes equal but roots differ")
        return
    if len(old_root) != HASH_SIZE or len(new_root) != HASH_SIZE:
        raise ProofError("root hash has wrong length", reason="bad_proof_input")
    if not proof:
        raise ConsistencyProofError("empty consistency proof")

    path = list(proof)
    # Step 1: if first is an exact power of 2, prepend first_hash to the path.
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    # Step 2: fn = first - 1, sn = second - 1.
    fn, sn = old_size - 1, new_size - 1
    # Step 3: if LSB(fn) is set, right-shift fn and sn equally until it is not.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # Step 4: set both fr and sr to the first value in the path.
    fr = sr = path[0]
    # Step 5: for each subsequent value c in the path:
    for c in path[1:]:
        # 5a. If sn is 0, stop the iteration and fail the proof verification.
        if sn == 0:
            raise ConsistencyProofError("consistency proof too long")
        # 5b. If LSB(fn) is set, or if fn is equal to sn, then:
        if fn & 1 or fn == sn:
            fr = hash_children(c, fr)
            sr = hash_children(c, sr)
            # If LSB(fn) is not set, right-shift fn and sn equally until
            # either LSB(fn) is set or fn is 0.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = hash_children(sr, c)
        # 5c. Finally, right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    # Step 6: verify fr == first_hash, sr == second_hash and sn == 0.
    if sn != 0:
        raise ConsistencyProofError("consistency proof too short")
    if fr != old_root:
        raise ConsistencyProofError("proof does not match old root")
    if sr != new_root:
        raise ConsistencyProofError("proof does not match new root")


# --- Storage ------------------------------------------------------------------


class HashStore(Protocol):
    """Write-once storage of perfect-subtree hashes, batched in both directions.

    Coordinates: ``(level, index)`` is the root of leaves
    ``[index * 2**level, (index + 1) * 2**level)``; level 0 holds leaf hashes.

    Contract for implementations (the SQLCipher one included):

    * ``get_many`` returns the hashes in the order asked for and raises
      :class:`StoreCorrupt` if any is missing.  :class:`MerkleTree` only asks
      for coordinates of subtrees that are complete at its current size.
    * ``put_many`` stores every entry of one call atomically (one
      transaction).  Hashes are write-once: rewriting an entry with the same
      value is a no-op (so replaying an interrupted append is safe), rewriting
      it with a different value must raise :class:`StoreCorrupt`.
    * The tree size is *not* kept here.  The caller persists it in the same
      transaction as the ``put_many`` of the append that produced it (e.g.
      beside the signed checkpoint), and passes it to :meth:`MerkleTree.open`.
    """

    def get_many(self, coords: Sequence[tuple[int, int]], /) -> list[bytes]:
        """The hashes at ``coords`` (``(level, index)`` pairs), in that order."""
        ...

    def put_many(self, entries: Sequence[tuple[int, int, bytes]], /) -> None:
        """Store ``(level, index, hash)`` entries atomically."""
        ...


class InMemoryHashStore:
    """A :class:`HashStore` holding one packed ``bytearray`` per level.

    32 bytes per stored hash and no per-entry objects, so a million-leaf tree
    (about two million hashes) takes about 64 MB.  Per level, entries are
    append-only: a put must target the next free index or rewrite an existing
    index with the identical hash.
    """

    def __init__(self) -> None:
        self._levels: list[bytearray] = []

    def count(self, level: int) -> int:
        """How many hashes are stored at ``level`` (for tests and metrics)."""
        return len(self._levels[level]) // HASH_SIZE if level < len(self._levels) else 0

    def get_many(self, coords: Sequence[tuple[int, int]], /) -> list[bytes]:
        out: list[bytes] = []
        for level, index in coords:
            if level >= len(self._levels) or not 0 <= index < self.count(level):
                raise StoreCorrupt(f"missing hash at level {level} index {index}")
            pos = index * HASH_SIZE
            out.append(bytes(self._levels[level][pos : pos + HASH_SIZE]))
        return out

    def put_many(self, entries: Sequence[tuple[int, int, bytes]], /) -> None:
        # Validate the whole batch first so a failing batch changes nothing.
        pending: dict[int, int] = {}
        for level, index, value in entries:
            if len(value) != HASH_SIZE or level < 0 or index < 0:
                raise StoreCorrupt("malformed hash store entry")
            have = self.count(level) + pending.get(level, 0)
            if index == have:
                pending[level] = pending.get(level, 0) + 1
            elif index < self.count(level):
                pos = index * HASH_SIZE
                if self._levels[level][pos : pos + HASH_SIZE] != value:
                    raise StoreCorrupt(f"hash at level {level} index {index} would change")
            else:
                raise StoreCorrupt(f"non-contiguous write at level {level} index {index}")
        for level, index, value in entries:
            while len(self._levels) <= level:
                self._levels.append(bytearray())
            if index == self.count(level):
                self._levels[level] += value


# --- The tree -----------------------------------------------------------------


class MerkleTree:
    """An append-only RFC 9162 tree over a :class:`HashStore`.

    Keeps only the right frontier (at most 63 hashes) in memory: the current root is
    folded from it.  Every other read goes to the store in a single ``get_many`` batch;
    every append writes in a single ``put_many`` batch.  Not thread-safe: one writer per
    log, as the caller must serialise appends with persisting the size anyway.
    """

    #: Largest number of leaves accepted by one :meth:`append` call.
    MAX_APPEND_BATCH: Final = 1 << 20

    def __init__(self, *, store: HashStore, size: int, frontier: dict[int, bytes]) -> None:
        self._store = store
        self._size = size
        self._frontier = frontier

    @classmethod
    def empty(cls, store: HashStore) -> MerkleTree:
        """A tree with no leaves over an (empty) store."""
        return cls(store=store, size=0, frontier={})

    @classmethod
    def open(cls, store: HashStore, size: int) -> MerkleTree:
        """Reopen a tree of ``size`` leaves whose hashes are already in ``store``."""
        if not 0 <= size <= MAX_TREE_SIZE:
            raise StoreCorrupt(f"tree size {size} out of range")
        coords = perfect_subtrees(0, size)
        hashes = store.get_many(coords) if coords else []
        frontier = {level: h for (level, _), h in zip(coords, hashes, strict=True)}
        return cls(store=store, size=size, frontier=frontier)

    @property
    def size(self) -> int:
        return self._size

    def append(self, leaf_hashes: Iterable[bytes]) -> int:
        """Append leaf hashes (already ``hash_leaf``-ed); return the new size.

        Computes only the perfect subtrees the new leaves complete: each leaf
        costs one stored hash plus, amortised, one interior hash (RFC 9162 2.1.1
        applied incrementally, like Trillian's compact range).
        """
        frontier = dict(self._frontier)
        size = self._size
        writes: list[tuple[int, int, bytes]] = []
        for count, leaf in enumerate(leaf_hashes, start=1):
            if count > self.MAX_APPEND_BATCH:
                raise ProofError("append batch too large", reason="bad_proof_input")
            if len(leaf) != HASH_SIZE:
                raise ProofError("leaf hash has wrong length", reason="bad_proof_input")
            if size >= MAX_TREE_SIZE:
                raise ProofError("tree is full", reason="bad_proof_input")
            level, index, h = 0, size, leaf
            writes.append((0, index, h))
            # While this subtree is a right child, merge it with its left sibling
            # (the frontier entry at the same level) into the parent.
            while index & 1:
                h = hash_children(frontier.pop(level), h)
                level += 1
                index >>= 1
                writes.append((level, index, h))
            frontier[level] = h
            size += 1
        if writes:
            self._store.put_many(writes)
        self._frontier = frontier
        self._size = size
        return size

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self._size:
            raise ProofError(
                f"size {size} outside tree of {self._size} leaves", reason="bad_proof_input"
            )

    def _range_hashes(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        """MTH of each RFC 9162 subtree range, reading every needed hash in one batch."""
        plans = [perfect_subtrees(a, b) for a, b in ranges]
        flat = [c for plan in plans for c in plan]
        fetched = self._store.get_many(flat) if flat else []
        out: list[bytes] = []
        pos = 0
        for plan in plans:
            out.append(_fold(fetched[pos : pos + len(plan)]))
            pos += len(plan)
        return out

    def root(self, size: int | None = None) -> bytes:
        """MTH(D[0:size]) for the current or any past size (RFC 9162 2.1.1)."""
        size = self._size if size is None else size
        self._check_size(size)
        if size == 0:
            return EMPTY_ROOT
        if size == self._size:  # the frontier is exactly its perfect subtrees: no read
            return _fold([self._frontier[level] for level, _ in perfect_subtrees(0, size)])
        return self._range_hashes([(0, size)])[0]

    def leaf_hash(self, index: int) -> bytes:
        """The stored hash of leaf ``index``."""
        if not 0 <= index < self._size:
            raise ProofError("leaf index not in tree", reason="bad_proof_input")
        return self._store.get_many([(0, index)])[0]

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 2.1.3.1 PATH(index, D[0:size]), leaf-side first."""
        size = self._size if size is None else size
        self._check_size(size)
        if not 0 <= index < size:
            raise ProofError("leaf index not in tree", reason="bad_proof_input")
        return self._range_hashes(_inclusion_ranges(index, size))

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """RFC 9162 2.1.4.1 PROOF(old_size, D[0:new_size]); needs 0 < old <= new."""
        new_size = self._size if new_size is None else new_size
        self._check_size(new_size)
        if not 0 < old_size <= new_size:
            raise ProofError("need 0 < old size <= new size", reason="bad_proof_input")
        return self._range_hashes(_consistency_ranges(old_size, new_size))
