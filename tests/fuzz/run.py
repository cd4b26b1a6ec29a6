"""``make fuzz``: a time-bounded fuzzing run per target, growing ``corpus/<target>/``.

    python -m tests.fuzz.run [--seconds N] [--engine auto|atheris|mutate] [TARGET ...]
    python -m tests.fuzz.run --replay [TARGET ...]      # the corpus once, as make test does

With atheris installed (a dev dependency), each target runs in its own process under
libFuzzer, coverage-guided over the ``node`` package, for ``--seconds`` (``FUZZ_SECONDS``,
60 by default); inputs that reach new coverage are written into the corpus folder, and a
crashing input into ``tests/fuzz/crashes/<target>/`` (not committed: fix the parser, then
copy the input into the corpus as its regression case).  Without atheris, one line says
so and a random mutation loop over the corpus takes its place (no coverage feedback: it
keeps inputs whose outcome, an error class and reason, it has not seen before).

Nothing from ``node`` is imported at the top of this module, so atheris can instrument it.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import random
import subprocess
import sys
import time
import traceback
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
ROOT = FUZZ.parents[1]
CORPUS = FUZZ / "corpus"
CRASHES = FUZZ / "crashes"


def _targets(names: list[str]) -> list[str]:
    from tests.fuzz.harnesses import TARGETS

    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        raise SystemExit(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    return names or list(TARGETS)


def replay(names: list[str]) -> int:
    """Every corpus file through its harness; the failures, one line each (exit 1 if any)."""
    from tests.fuzz.harnesses import TARGETS

    failures = 0
    for target in _targets(names):
        files = sorted((CORPUS / target).iterdir())
        for path in files:
            try:
                TARGETS[target](path.read_bytes())
            except Exception as exc:
                failures += 1
                print(f"FAIL {target}/{path.name}: {type(exc).__name__}: {exc}"[:300])
        print(f"{target:20} {len(files)} cases")
    return 1 if failures else 0


def _atheris_child(target: str, seconds: int) -> None:
    import atheris

    with atheris.instrument_imports(include=["node"]):
        from tests.fuzz.harnesses import TARGETS
    check = TARGETS[target]
    crashes = CRASHES / target
    crashes.mkdir(parents=True, exist_ok=True)
    atheris.Setup([sys.argv[0], f"-max_total_time={seconds}", "-timeout=20",
                   "-rss_limit_mb=3072", f"-artifact_prefix={crashes}/", "-print_final_stats=1",
                   str(CORPUS / target)], check)
    atheris.Fuzz()


def _mutation_loop(target: str, seconds: int, seed: int) -> int:
    from tests.fuzz.harnesses import TARGETS
    from tests.fuzz.seeds import mutate_bytes

    check = TARGETS[target]
    rng = random.Random(seed)
    folder = CORPUS / target
    corpus = [p.read_bytes() for p in sorted(folder.iterdir())]
    seen: set[str] = set()
    runs = kept = crashed = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        data = mutate_bytes(rng.choice(corpus), rng, corpus)
        runs += 1
        try:
            check(data)
            outcome = "ok"
        except Exception as exc:
            crashed += 1
            out = CRASHES / target
            out.mkdir(parents=True, exist_ok=True)
            name = hashlib.sha1(data).hexdigest()
            (out / f"crash-{name}").write_bytes(data)
            print(f"{target}: crash-{name}: {type(exc).__name__}: {exc}"[:300])
            traceback.print_exc(limit=4)
            continue
        if outcome not in seen:
            seen.add(outcome)
        # Without coverage, keep a sample of new inputs so the corpus still grows a little.
        if rng.random() < 0.001 and len(data) <= 16_384:
            (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)
            kept += 1
    print(f"{target:20} {runs} runs, {kept} kept, {crashed} crashes")
    return 1 if crashed else 0


def fuzz(names: list[str], seconds: int, engine: str) -> int:
    targets = _targets(names)
    if engine == "auto":
        engine = "atheris" if importlib.util.find_spec("atheris") else "mutate"
        if engine == "mutate":
            print("make fuzz: atheris is not installed here; running the random mutation "
                  "loop instead (no coverage guidance)")
    status = 0
    for i, target in enumerate(targets):
        before = sum(1 for _ in (CORPUS / target).iterdir())
        if engine == "atheris":
            rc = subprocess.call([sys.executable, "-m", "tests.fuzz.run", "--atheris-child",
                                  target, "--seconds", str(seconds)], cwd=ROOT)
        else:
            rc = _mutation_loop(target, seconds, seed=i)
        after = sum(1 for _ in (CORPUS / target).iterdir())
        print(f"== {target}: {'crash (see tests/fuzz/crashes/' + target + ')' if rc else 'ok'}; "
              f"corpus {before} -> {after}", flush=True)
        status |= rc != 0
    return status


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="fuzz the node's parsers (issue 12 §3)")
    ap.add_argument("targets", nargs="*")
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("FUZZ_SECONDS", "60")))
    ap.add_argument("--engine", choices=("auto", "atheris", "mutate"), default="auto")
    ap.add_argument("--replay", action="store_true")
    ap.add_argument("--atheris-child", metavar="TARGET", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.atheris_child:
        _atheris_child(args.atheris_child, args.seconds)
        return 0
    if args.replay:
        return replay(args.targets)
    return fuzz(args.targets, args.seconds, args.engine)


if __name__ == "__main__":
    raise SystemExit(main())
