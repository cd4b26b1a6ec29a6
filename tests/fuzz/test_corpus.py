"""Replay the committed fuzz corpus through its harnesses (every ``make test``).

Each file in ``corpus/<target>/`` goes through ``harnesses.TARGETS[target]``: only the
errors that parser documents may come out, and what parses must survive serialise and
parse again unchanged.  The corpus is seeded by ``seeds.py`` and grown by ``make fuzz``.
"""

from __future__ import annotations

import traceback

import pytest

from tests.fuzz.harnesses import TARGETS
from tests.fuzz.keys import CORPUS

#: Issue 12 §3: "a corpus of at least 10,000 cases is kept in the repository".
MIN_CASES = 10_000
#: Kept small enough to live in git: no case over 64 KiB, the whole a few MB.
MAX_CASE_BYTES = 64 * 1024
MAX_CORPUS_BYTES = 6 * 1024 * 1024


def _cases(target: str) -> list[tuple[str, bytes]]:
    folder = CORPUS / target
    return [(p.name, p.read_bytes()) for p in sorted(folder.iterdir())] if folder.is_dir() else []


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_corpus_replays_without_undocumented_errors(target: str) -> None:
    cases = _cases(target)
    assert cases, f"corpus/{target} is empty: run python -m tests.fuzz.seeds"
    failures = []
    for name, data in cases:
        try:
            TARGETS[target](data)
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            failures.append(f"{target}/{name}: {type(exc).__name__}: {str(exc)[:120]} "
                            f"(at {where.filename.rsplit('/', 1)[-1]}:{where.lineno})")
    assert not failures, f"{len(failures)} of {len(cases)} cases failed:\n" + "\n".join(
        failures[:20])


def test_corpus_is_large_enough_and_small_enough() -> None:
    folders = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())
    assert folders == sorted(TARGETS), "a corpus folder per target, and no other"
    sizes = [p.stat().st_size for p in CORPUS.rglob("*") if p.is_file()]
    assert len(sizes) >= MIN_CASES
    assert max(sizes) <= MAX_CASE_BYTES and sum(sizes) <= MAX_CORPUS_BYTES
