"""Benchmark the in-memory Merkle tree: append, roots, proofs.  Reports; asserts nothing.

Run: ``python -m benchmarks.merkle [--leaves N] [--batch B]``.

1. Append N leaf hashes in batches of B (one ``put_many`` per batch), keeping a
   checkpoint (size, root) after every batch — as a log would per signed
   checkpoint.
2. Recompute every checkpoint's root from the stored hashes.
3. Generate and verify a consistency proof between consecutive checkpoints
   and from every checkpoint to the final tree; and inclusion proofs for a
   sample of leaves.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import random
import time

from node.audit.merkle import (
    InMemoryHashStore,
    MerkleTree,
    hash_leaf,
    verify_consistency,
    verify_inclusion,
)


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}/s" if seconds > 0 else "inf"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--inclusion-samples", type=int, default=10_000)
    args = parser.parse_args(argv)
    n, batch = args.leaves, args.batch

    print(f"leaves={n:,} batch={batch:,}")
    t0 = time.perf_counter()
    leaves = [hash_leaf(hashlib.sha256(i.to_bytes(8, "big")).digest()) for i in range(n)]
    print(f"hash {n:,} leaves (outside the tree): {time.perf_counter() - t0:.2f} s")

    store = InMemoryHashStore()
    tree = MerkleTree.empty(store)
    checkpoints: list[tuple[int, bytes]] = []
    append_s = root_s = 0.0
    for start in range(0, n, batch):
        t = time.perf_counter()
        size = tree.append(leaves[start : start + batch])
        append_s += time.perf_counter() - t
        t = time.perf_counter()
        checkpoints.append((size, tree.root()))
        root_s += time.perf_counter() - t
    print(f"append {n:,} leaves: {append_s:.2f} s ({_rate(n, append_s)} leaves)")
    print(
        f"root after each of {len(checkpoints):,} batches: {root_s:.3f} s "
        f"({root_s / len(checkpoints) * 1e6:.1f} us each)"
    )
    stored = sum(store.count(level) for level in range(64))
    print(f"stored hashes: {stored:,} ({stored * 32 / 2**20:.0f} MiB packed)")

    t = time.perf_counter()
    for size, root in checkpoints:
        if tree.root(size) != root:
            print(f"MISMATCH: root at size {size}")
    dt = time.perf_counter() - t
    print(f"recompute {len(checkpoints):,} checkpoint roots from store: {dt:.3f} s")

    final_size, final_root = checkpoints[-1]
    gen_s = ver_s = 0.0
    proofs = 0
    longest = 0
    pairs = list(itertools.pairwise(checkpoints))
    pairs += [(cp, checkpoints[-1]) for cp in checkpoints[:-1]]
    for (old, old_root), (new, new_root) in pairs:
        t = time.perf_counter()
        proof = tree.consistency_proof(old, new)
        gen_s += time.perf_counter() - t
        t = time.perf_counter()
        verify_consistency(
            old_size=old, new_size=new, old_root=old_root, new_root=new_root, proof=proof
        )
        ver_s += time.perf_counter() - t
        proofs += 1
        longest = max(longest, len(proof))
    print(
        f"consistency proofs for {proofs:,} checkpoint pairs: generate {gen_s:.3f} s "
        f"({_rate(proofs, gen_s)}), verify {ver_s:.3f} s ({_rate(proofs, ver_s)}), "
        f"longest {longest} hashes"
    )

    rng = random.Random(0)
    samples = [rng.randrange(final_size) for _ in range(args.inclusion_samples)]
    gen_s = ver_s = 0.0
    longest = 0
    for i in samples:
        t = time.perf_counter()
        proof = tree.inclusion_proof(i, final_size)
        gen_s += time.perf_counter() - t
        t = time.perf_counter()
        verify_inclusion(
            leaf_hash=leaves[i], index=i, size=final_size, proof=proof, root=final_root
        )
        ver_s += time.perf_counter() - t
        longest = max(longest, len(proof))
    print(
        f"inclusion proofs for {len(samples):,} random leaves: generate {gen_s:.3f} s "
        f"({_rate(len(samples), gen_s)}), verify {ver_s:.3f} s "
        f"({_rate(len(samples), ver_s)}), longest {longest} hashes"
    )


if __name__ == "__main__":
    main()
