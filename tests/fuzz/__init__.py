"""Fuzzing and property tests (issue 12 §3).

``harnesses.py`` holds one ``check(data: bytes) -> None`` per target; ``corpus/<target>/``
the committed cases that ``test_corpus.py`` replays on every ``make test``; ``seeds.py``
regenerates the seed part of the corpus; ``run.py`` is ``make fuzz`` (atheris, or a
hypothesis-driven mutation loop where atheris is missing).
"""
