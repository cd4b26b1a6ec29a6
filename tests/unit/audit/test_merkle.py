"""RFC 9162 Merkle tree: reference vectors, naive recomputation, proof shapes."""

from __future__ import annotations

import base64
import json
import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from node.audit.merkle import (
    EMPTY_ROOT,
    MAX_PROOF_HASHES,
    HashStore,
    InMemoryHashStore,
    MerkleTree,
    ProofError,
    StoreCorrupt,
    consistency_proof_length,
    hash_children,
    hash_leaf,
    inclusion_proof_length,
    verify_consistency,
    verify_inclusion,
)
from node.core.errors import PeerError

DATA = Path(__file__).resolve().parents[2] / "data" / "rfc6962"


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def _cases(kind: str) -> list[Any]:
    files = sorted((DATA / kind).rglob("*.json"))
    assert files, f"no {kind} vectors found under {DATA}"
    return [pytest.param(json.loads(f.read_text()), id=str(f.relative_to(DATA))) for f in files]


# --- Reference vectors (transparency-dev/merkle testdata) ---------------------


@pytest.mark.parametrize("case", _cases("inclusion"))
def test_inclusion_vectors(case: dict[str, Any]) -> None:
    def run() -> None:
        verify_inclusion(
            leaf_hash=_b64(case["leafHash"]),
            index=case["leafIdx"],
            size=case["treeSize"],
            proof=[_b64(p) for p in case["proof"] or []],
            root=_b64(case["root"]),
        )

    if case["wantErr"]:
        with pytest.raises(ProofError) as exc:
            run()
        assert exc.value.reason in {"bad_inclusion_proof", "bad_proof_input"}
        assert isinstance(exc.value, PeerError)
    else:
        run()


@pytest.mark.parametrize("case", _cases("consistency"))
def test_consistency_vectors(case: dict[str, Any]) -> None:
    def run() -> None:
        verify_consistency(
            old_size=case["size1"],
            new_size=case["size2"],
            old_root=_b64(case["root1"]),
            new_root=_b64(case["root2"]),
            proof=[_b64(p) for p in case["proof"] or []],
        )

    if case["wantErr"]:
        with pytest.raises(ProofError) as exc:
            run()
        assert exc.value.reason in {"bad_consistency_proof", "bad_proof_input"}
    else:
        run()


def test_vector_counts() -> None:
    # Guard against the glob silently finding fewer files (e.g. a moved folder).
    assert len(list((DATA / "inclusion").rglob("*.json"))) >= 90
    assert len(list((DATA / "consistency").rglob("*.json"))) >= 90
    assert list((DATA / "inclusion" / "single-entry").glob("*.json"))
    assert list((DATA / "consistency" / "additional").glob("*.json"))


# --- Naive RFC 9162 definitions, written straight from the text ---------------


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def naive_mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 2.1.1 MTH over raw leaf data."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return hash_leaf(leaves[0])
    k = _k(n)
    return hash_children(naive_mth(leaves[:k]), naive_mth(leaves[k:]))


def naive_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 9162 2.1.3.1 PATH(m, D[n])."""
    n = len(leaves)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*naive_path(m, leaves[:k]), naive_mth(leaves[k:])]
    return [*naive_path(m - k, leaves[k:]), naive_mth(leaves[:k])]


def naive_subproof(m: int, leaves: list[bytes], b: bool) -> list[bytes]:
    """RFC 9162 2.1.4.1 SUBPROOF(m, D[n], b)."""
    n = len(leaves)
    if m == n:
        return [] if b else [naive_mth(leaves)]
    k = _k(n)
    if m <= k:
        return [*naive_subproof(m, leaves[:k], b), naive_mth(leaves[k:])]
    return [*naive_subproof(m - k, leaves[k:], False), naive_mth(leaves[:k])]


def naive_proof(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 9162 2.1.4.1 PROOF(m, D[n])."""
    return naive_subproof(m, leaves, True)


N_MAX = 70
LEAVES = [f"leaf-{i}".encode() for i in range(N_MAX)]


@pytest.fixture(scope="module")
def tree() -> MerkleTree:
    t = MerkleTree.empty(InMemoryHashStore())
    # Uneven batches, so append() crosses frontier states in many ways.
    pos = 0
    for step in [1, 2, 3, 1, 5, 8, 13, 21, 16]:
        t.append(hash_leaf(d) for d in LEAVES[pos : pos + step])
        pos += step
    assert pos == N_MAX == t.size
    return t


def test_roots_for_every_past_size(tree: MerkleTree) -> None:
    assert tree.root(0) == EMPTY_ROOT
    for n in range(N_MAX + 1):
        assert tree.root(n) == naive_mth(LEAVES[:n]), n


def test_inclusion_generation_matches_naive_and_verifies(tree: MerkleTree) -> None:
    for n in range(1, N_MAX + 1):
        root = naive_mth(LEAVES[:n])
        for m in range(n):
            proof = tree.inclusion_proof(m, n)
            assert proof == naive_path(m, LEAVES[:n]), (m, n)
            assert len(proof) == inclusion_proof_length(m, n) <= math.ceil(math.log2(n))
            verify_inclusion(
                leaf_hash=hash_leaf(LEAVES[m]), index=m, size=n, proof=proof, root=root
            )


def test_consistency_generation_matches_naive_and_verifies(tree: MerkleTree) -> None:
    for n in range(1, N_MAX + 1):
        root_n = naive_mth(LEAVES[:n])
        for m in range(1, n + 1):
            proof = tree.consistency_proof(m, n)
            assert proof == naive_proof(m, LEAVES[:n]), (m, n)
            assert len(proof) == consistency_proof_length(m, n)
            assert len(proof) <= math.ceil(math.log2(n)) + 1
            verify_consistency(
                old_size=m,
                new_size=n,
                old_root=naive_mth(LEAVES[:m]),
                new_root=root_n,
                proof=proof,
            )


def test_generated_proofs_reject_tampering(tree: MerkleTree) -> None:
    rng = random.Random(7)
    for _ in range(200):
        n = rng.randint(2, N_MAX)
        m = rng.randrange(n)
        proof = tree.inclusion_proof(m, n)
        if not proof:
            continue
        i = rng.randrange(len(proof))
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 1]) + bad[i][1:]
        with pytest.raises(ProofError):
            verify_inclusion(
                leaf_hash=hash_leaf(LEAVES[m]), index=m, size=n, proof=bad, root=tree.root(n)
            )
        old = rng.randint(1, n - 1)
        cproof = tree.consistency_proof(old, n)
        with pytest.raises(ProofError):
            verify_consistency(
                old_size=old,
                new_size=n,
                old_root=tree.root(old),
                new_root=tree.root(n),
                proof=cproof[:-1],
            )


def test_reopen_from_store_continues_identically() -> None:
    store = InMemoryHashStore()
    t = MerkleTree.empty(store)
    t.append(hash_leaf(d) for d in LEAVES[:37])
    again = MerkleTree.open(store, 37)
    again.append(hash_leaf(d) for d in LEAVES[37:])
    assert again.root() == naive_mth(LEAVES)
    # Replaying an append that was stored but whose size was not persisted is a no-op.
    replay = MerkleTree.open(store, 37)
    replay.append(hash_leaf(d) for d in LEAVES[37:])
    assert replay.root() == naive_mth(LEAVES)


def test_store_is_write_once_and_only_complete_subtrees() -> None:
    store = InMemoryHashStore()
    as_protocol: HashStore = store  # mypy checks InMemoryHashStore satisfies the protocol
    assert as_protocol is store
    t = MerkleTree.empty(store)
    t.append(hash_leaf(d) for d in LEAVES[:11])  # 11 = 8 + 2 + 1
    assert [store.count(lv) for lv in range(5)] == [11, 5, 2, 1, 0]
    with pytest.raises(StoreCorrupt):
        store.put_many([(0, 3, b"\x00" * 32)])
    with pytest.raises(StoreCorrupt):
        store.put_many([(0, 20, b"\x00" * 32)])
    with pytest.raises(StoreCorrupt):
        store.get_many([(3, 1)])
    with pytest.raises(StoreCorrupt):
        MerkleTree.open(store, 16)


def test_append_is_logarithmic_in_hash_reads_and_writes() -> None:
    class CountingStore(InMemoryHashStore):
        def __init__(self) -> None:
            super().__init__()
            self.gets = 0
            self.get_calls = 0
            self.put_calls = 0

        def get_many(self, coords: Sequence[tuple[int, int]], /) -> list[bytes]:
            self.gets += len(coords)
            self.get_calls += 1
            return super().get_many(coords)

        def put_many(self, entries: Sequence[tuple[int, int, bytes]], /) -> None:
            self.put_calls += 1
            super().put_many(entries)

    store = CountingStore()
    t = MerkleTree.empty(store)
    for i in range(1000):
        t.append([hash_leaf(i.to_bytes(4, "big"))])
    assert store.gets == 0 and store.put_calls == 1000
    store.gets = store.get_calls = 0
    t.inclusion_proof(777)
    t.consistency_proof(333)
    t.root(999)
    # Each call is one batch of O(log n) reads.
    assert store.get_calls == 3 and store.gets <= 3 * 2 * math.ceil(math.log2(1000))
    # The current root is folded from the frontier in memory: no read at all, the same
    # hash as folding the stored subtrees.
    store.get_calls = 0
    assert t.root() == t.root(1000) and store.get_calls == 0
    assert t.root() == t._range_hashes([(0, 1000)])[0] and store.get_calls == 1


def test_input_bounds() -> None:
    t = MerkleTree.empty(InMemoryHashStore())
    t.append([hash_leaf(b"x")])
    with pytest.raises(ProofError):
        t.append([b"short"])
    with pytest.raises(ProofError):
        t.root(2)
    with pytest.raises(ProofError):
        t.inclusion_proof(1, 1)
    with pytest.raises(ProofError):
        t.consistency_proof(0, 1)
    h = hash_leaf(b"x")
    with pytest.raises(ProofError, match="too long"):
        verify_inclusion(leaf_hash=h, index=0, size=2, proof=[h] * (MAX_PROOF_HASHES + 1), root=h)
    with pytest.raises(ProofError):
        verify_inclusion(leaf_hash=h, index=0, size=2**63, proof=[h], root=h)
    with pytest.raises(ProofError):
        verify_consistency(old_size=1, new_size=2, old_root=h, new_root=h, proof=[b"x" * 31])


# --- Proof lengths for ten million entries, by shape only ---------------------


def test_proof_length_bounds_for_ten_million() -> None:
    n = 10_000_000
    assert math.ceil(math.log2(n)) == 24
    rng = random.Random(1)
    indices = {0, 1, n // 2, n - 2, n - 1, (1 << 23) - 1, 1 << 23} | {
        rng.randrange(n) for _ in range(20_000)
    }
    lengths = [inclusion_proof_length(i, n) for i in indices]
    assert max(lengths) == 24
    olds = {1, 2, 3, n - 1, n, 1 << 23, (1 << 23) + 1} | {
        rng.randrange(1, n + 1) for _ in range(20_000)
    }
    clen = [consistency_proof_length(m, n) for m in olds]
    assert max(clen) <= 25
    assert consistency_proof_length(n, n) == 0
    # The bound also holds exhaustively for every shape up to 1024 leaves.
    for size in range(1, 1025):
        bound = math.ceil(math.log2(size)) if size > 1 else 0
        assert max(inclusion_proof_length(i, size) for i in range(size)) <= bound
        assert max(consistency_proof_length(m, size) for m in range(1, size + 1)) <= bound + 1
