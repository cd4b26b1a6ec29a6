"""Person matching benchmark (issue 6): quality on the labelled sets, then speed.

    python -m benchmarks.matching              # 1,000,000 persons
    python -m benchmarks.matching --smoke      # 20,000 persons, seconds
    python -m benchmarks.matching --persons 200000 --queries 2000

Quality: precision, recall, F1 and recall per kind at the default threshold on
tests/data/names/dev.jsonl (used for tuning), heldout.jsonl (a disjoint name
stock and seed) and independent.jsonl (spellings from the iuliia schemes and
hand-written pairs, not from our tables; issue 14), through ``compare_stream``.

Speed: builds a PersonIndex of synthetic Central Asian persons (national
Cyrillic, Russified Cyrillic and Latin spellings; family names derived from
given names as they are in the region: Нурланов, Нурланбаев, Нурланұлы),
then times single lookups (half of them people in the index, re-spelt in
another script, every other one of those with its second letter dropped from
one name; half absent) and reports p50/p99 and the index build time.  Timing is of the calling
thread only, in-process.  No figure here is asserted by any test.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NAMES = ROOT / "tests" / "data" / "names"
sys.path.insert(0, str(NAMES))

from stock import DEV, HELDOUT  # type: ignore[import-not-found]  # noqa: E402

from node.core.model import PartialDate, PersonQuery, Sex  # noqa: E402
from node.matching import DEFAULT_THRESHOLD, PersonIndex, compare_stream  # noqa: E402
from node.matching.transliterate import transliterate  # noqa: E402

SEED = 99
QUALITY_SETS = ("dev.jsonl", "heldout.jsonl", "independent.jsonl")
SYSTEMS = ["ICAO", "BGN/PCGN", "English", "French", "German", "Kazakh Latin", "Uzbek Latin",
           "Turkmen Latin"]


def quality(name: str) -> dict[str, Any]:
    """Precision, recall, F1 and the figures per kind, through ``compare_stream``."""
    lines = (NAMES / name).read_text(encoding="utf-8").splitlines()
    report = compare_stream(lines, io.StringIO(), strict=True)
    d = report.as_dict()
    errors = {k: v["pairs"] - v["correct"] for k, v in d["kinds"].items()
              if v["pairs"] != v["correct"]}
    return {"set": name, "pairs": report.pairs, "precision": d["precision"],
            "recall": d["recall"], "f1": d["f1"], "errors_by_kind": errors,
            "kinds": d["kinds"]}


class Population:
    """Deterministic synthetic persons from both name stocks."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)
        self.by_nat: dict[str, dict[str, list[str]]] = {}
        for stock in (DEV, HELDOUT):
            for nat, s in stock.items():
                d = self.by_nat.setdefault(nat, {"family": [], "male": [], "female": []})
                for k in d:
                    d[k].extend(s[k])
        for nat, d in self.by_nat.items():
            derived = [g + suffix for g in d["male"] for suffix in ("ов", "баев", "беков")]
            if nat == "KAZ":
                derived += [g + "ұлы" for g in d["male"]]
            d["family"].extend(f for f in derived if f[-1] != "ы" or nat == "KAZ")
        self.nats = sorted(self.by_nat)

    def person(self) -> tuple[str, str, str, tuple[int, int | None, int | None], str, str]:
        r = self.r
        nat = r.choice(self.nats)
        d = self.by_nat[nat]
        sex = r.choice("MF")
        family = r.choice(d["family"])
        if sex == "F" and family.endswith(("ов", "ев")):
            family += "а"
        given = r.choice(d["male" if sex == "M" else "female"])
        y = r.randint(1940, 2008)
        roll = r.random()
        dob = (y, None, None) if roll < 0.05 else (y, r.randint(1, 12), r.randint(1, 28))
        return family, given, nat, dob, sex, "CYR" if r.random() < 0.6 else r.choice(SYSTEMS)

    @staticmethod
    def render(family: str, given: str, nat: str, dob: tuple[int, int | None, int | None],
               sex: str, system: str) -> PersonQuery:
        if system != "CYR":
            family = transliterate(family, system)
            given = transliterate(given, system)
        return PersonQuery(family_name=family, given_names=given,
                           date_of_birth=PartialDate(*dob), nationality=nat, sex=Sex(sex))

    def stream(self, n: int) -> Iterator[tuple[str, PersonQuery]]:
        for i in range(n):
            yield f"p{i}", self.render(*self.person())


def speed(persons: int, queries: int) -> dict[str, Any]:
    pop = Population(SEED)
    t0 = time.perf_counter()
    records = list(pop.stream(persons))
    t_construct = time.perf_counter() - t0
    index = PersonIndex()
    t0, c0 = time.perf_counter(), time.process_time()
    index.add_many(records)
    t_build, c_build = time.perf_counter() - t0, time.process_time() - c0

    r = random.Random(SEED + 1)
    qpop = Population(SEED + 2)
    latencies: list[float] = []
    cpu: list[float] = []  # CPU time of the calling thread: less noisy on a shared machine
    hits = slipped = slipped_hits = 0
    for i in range(queries):
        if i % 2 == 0:
            ref, p = records[r.randrange(len(records))]
            system = r.choice(SYSTEMS)
            family = transliterate(p.family_name, system)
            given = transliterate(p.given_names, system)
            if i % 4 == 2:  # a slip in the first letters: the second letter dropped
                slipped += 1
                if r.random() < 0.5:
                    family = family[:1] + family[2:]
                else:
                    given = given[:1] + given[2:]
            q = PersonQuery(family_name=family, given_names=given,
                            date_of_birth=p.date_of_birth, nationality=p.nationality, sex=p.sex)
        else:
            ref, q = "", qpop.render(*qpop.person())
        t0, c0 = time.perf_counter(), time.thread_time()
        found = index.search(q, threshold=DEFAULT_THRESHOLD, max_candidates=10)
        latencies.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
        if ref and any(c.ref == ref for c in found):
            hits += 1
            slipped_hits += i % 4 == 2
    latencies.sort()
    cpu.sort()
    ms = [x * 1000 for x in latencies]
    return {
        "persons": persons,
        "construct_person_queries_s": round(t_construct, 2),
        "index_build_s": round(t_build, 2),
        "index_build_cpu_s": round(c_build, 2),
        "queries": queries,
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(ms[int(0.99 * (len(ms) - 1))], 3),
        "max_ms": round(ms[-1], 3),
        "p99_cpu_ms": round(cpu[int(0.99 * (len(cpu) - 1))] * 1000, 3),
        "present_found": f"{hits}/{(queries + 1) // 2}",
        "slipped_found": f"{slipped_hits}/{slipped}",
        "blocks": len(index._blocks),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--persons", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--smoke", action="store_true", help="20,000 persons, 500 queries")
    ap.add_argument("--json", action="store_true", help="print JSON only")
    args = ap.parse_args(argv)
    persons, queries = (20_000, 500) if args.smoke else (args.persons, args.queries)
    result: dict[str, Any] = {
        "machine": f"{platform.python_implementation()} {platform.python_version()}, "
                   f"{platform.machine()}",
        "threshold": DEFAULT_THRESHOLD,
        "quality": [quality(n) for n in QUALITY_SETS],
        "speed": speed(persons, queries),
    }
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    print(f"person matching at threshold {DEFAULT_THRESHOLD} ({result['machine']})")
    for q in result["quality"]:
        print(f"  {q['set']:<14} pairs {q['pairs']:>5}  P {q['precision']:.4f}  "
              f"R {q['recall']:.4f}  F1 {q['f1']:.4f}  errors {q['errors_by_kind']}")
    s = result["speed"]
    print(f"  index build of {s['persons']:,} persons: {s['index_build_s']} s "
          f"({s['index_build_cpu_s']} s CPU; +{s['construct_person_queries_s']} s "
          "constructing PersonQuery values)")
    print(f"  person lookup among {s['persons']:,}: {s['queries']} lookups, "
          f"p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms (CPU {s['p99_cpu_ms']} ms), "
          f"max {s['max_ms']} ms; present and "
          f"found {s['present_found']}, of them with a slip in the first letters "
          f"{s['slipped_found']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
