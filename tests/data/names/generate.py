"""Generate the labelled name-pair sets (deterministic).

    python tests/data/names/generate.py          # writes dev.jsonl and heldout.jsonl

See README.md beside this file for how pairs are built.  The dev set uses the
``DEV`` stock and seed 20261101; the held-out set uses the disjoint
``HELDOUT`` stock and seed 7340033, and was not used to tune the scorer.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from node.matching.transliterate import transliterate  # noqa: E402
from tests.data.names.stock import (  # noqa: E402
    DEV,
    FAMILY_LOOKALIKES,
    FEMALE_LOOKALIKES,
    HELDOUT,
    LOOKALIKES,
    VARIANTS,
    Stock,
)

Person = dict[str, Any]
DEV_SEED = 20261101
HELDOUT_SEED = 7340033
PAIRS_PER_SET = 1500

_RUSSIFY = str.maketrans({
    "қ": "к", "ғ": "г", "ң": "н", "ө": "о", "ұ": "у", "ү": "у", "һ": "х", "і": "и", "ә": "а",
    "ҳ": "х", "ӣ": "и", "ӯ": "у", "ў": "у",
    "Қ": "К", "Ғ": "Г", "Ң": "Н", "Ө": "О", "Ұ": "У", "Ү": "У", "Һ": "Х", "І": "И", "Ә": "А",
    "Ҳ": "Х", "Ӣ": "И", "Ӯ": "У", "Ў": "У",
})

LATIN_SYSTEMS = {
    "KAZ": ["ICAO", "BGN/PCGN", "English", "Kazakh Latin", "French", "German"],
    "UZB": ["ICAO", "BGN/PCGN", "English", "Uzbek Latin", "French", "German"],
    "KGZ": ["ICAO", "BGN/PCGN", "English", "French", "German"],
    "TJK": ["ICAO", "BGN/PCGN", "English", "French", "German"],
    "TKM": ["ICAO", "English", "Turkmen Latin", "Turkmen Latin", "German", "French"],
}


def russify(text: str) -> str:
    """National Cyrillic letters to their Russian-alphabet spelling (Ҷ, Җ → Дж)."""
    return text.translate(_RUSSIFY).replace("ҷ", "дж").replace("Ҷ", "Дж").replace(
        "җ", "дж").replace("Җ", "Дж")


def feminine(family: str) -> str:
    if family.endswith(("ов", "ев", "ёв", "ин")):
        return family + "а"
    if family.endswith("ұлы"):
        return family[:-3] + "қызы"
    return family


def patronymic(father: str, sex: str, nat: str, style: str) -> str:
    if style == "national" and nat == "KAZ":
        return father + ("ұлы" if sex == "M" else "қызы")
    if style == "national" and nat == "KGZ":
        return father + (" уулу" if sex == "M" else " кызы")
    if style == "national" and nat == "UZB":
        return father + (" ўғли" if sex == "M" else " қизи")
    base = russify(father)
    if base[-1] in "й":
        base = base[:-1] + "е"
        suffix = "вич" if sex == "M" else "вна"
    elif base[-1] in "аеёиоуыэюяь":
        suffix = "евич" if sex == "M" else "евна"
    else:
        suffix = "ович" if sex == "M" else "овна"
    return base + suffix


def cap(text: str) -> str:
    return " ".join("-".join(w[:1].upper() + w[1:] for w in word.split("-"))
                    for word in text.split(" "))


def render_text(text: str, system: str, upper: bool) -> str:
    if system == "CYR":
        return text
    if system == "CYR_RU":
        return russify(text)
    out = transliterate(text, system)
    return out.upper() if upper and system == "ICAO" else cap(out.lower()) if not upper else (
        out.upper())


class Gen:
    def __init__(self, stock: Stock, seed: int, lookalikes: list[tuple[str, str]],
                 family_lookalikes: list[tuple[str, str]]) -> None:
        self.r = random.Random(seed)
        self.stock = stock
        self.lookalikes = lookalikes
        self.family_lookalikes = family_lookalikes

    # -- people -----------------------------------------------------------------------
    def dob(self) -> tuple[int, int, int]:
        r = self.r
        return r.randint(1950, 2006), r.randint(1, 12), r.randint(1, 28)

    def person(self, nat: str | None = None, sex: str | None = None) -> Person:
        r = self.r
        nat = nat or r.choice(sorted(self.stock))
        s = self.stock[nat]
        sex = sex or r.choice("MF")
        return {
            "nat": nat, "sex": sex, "family": r.choice(s["family"]),
            "given": r.choice(s["male" if sex == "M" else "female"]),
            "father": r.choice(s["male"]), "dob": self.dob(),
        }

    def system(self, nat: str) -> str:
        r = self.r
        roll = r.random()
        if roll < 0.3:
            return "CYR"
        if roll < 0.4:
            return "CYR_RU"
        return r.choice(LATIN_SYSTEMS[nat])

    def render(self, p: Person, system: str, *, pat: str = "field", dob: str = "full",
               swap: bool = False, sex_known: bool = True, family: str | None = None,
               given: str | None = None) -> dict[str, Any]:
        r = self.r
        upper = system == "ICAO" or r.random() < 0.3
        fam = family if family is not None else (
            p["family"] if p["sex"] == "M" else feminine(p["family"]))
        giv = given if given is not None else p["given"]
        fam_s = render_text(fam, system, upper)
        giv_s = render_text(giv, system, upper)
        pat_s = None
        if pat in ("field", "given"):
            style = r.choice(["national", "russian"])
            pat_s = render_text(patronymic(p["father"], p["sex"], p["nat"], style), system,
                                upper)
            if pat == "given":
                giv_s, pat_s = f"{giv_s} {pat_s}", None
        if swap:
            fam_s, giv_s = giv_s, fam_s
        return {"given": giv_s, "family": fam_s, "patronymic": pat_s,
                "dob": self.dob_text(p["dob"], dob), "nationality": p["nat"],
                "sex": p["sex"] if sex_known else "X"}

    @staticmethod
    def dob_text(d: tuple[int, int, int], style: str) -> str:
        y, m, day = d
        return {
            "full": f"{y:04d}-{m:02d}-{day:02d}",
            "year": f"{y:04d}",
            "month": f"{y:04d}-{m:02d}",
            "zeros": f"{y:04d}-00-00",
            "ones": f"{y:04d}-01-01",
            "day01": f"{y:04d}-{m:02d}-01",
            "day00": f"{y:04d}-{m:02d}-00",
            "swap": f"{y:04d}-{day:02d}-{m:02d}",
        }[style]

    def pat_pair(self) -> tuple[str, str]:
        return self.r.choice([("none", "none"), ("field", "none"), ("none", "field"),
                              ("field", "field"), ("given", "none"), ("none", "given")])

    def two_systems(self, nat: str) -> tuple[str, str]:
        a = self.system(nat)
        b = self.system(nat)
        while b == a == "CYR":
            b = self.system(nat)
        return a, b

    # -- positives ----------------------------------------------------------------------
    def pos_cross_script(self) -> tuple[Any, Any, str]:
        p = self.person()
        a_sys, b_sys = self.two_systems(p["nat"])
        pa, pb = self.pat_pair()
        return (self.render(p, a_sys, pat=pa), self.render(p, b_sys, pat=pb),
                "cross_script" if "CYR" in (a_sys[:3], b_sys[:3]) else "latin_variants")

    def pos_swap(self) -> tuple[Any, Any, str]:
        p = self.person()
        a_sys, b_sys = self.two_systems(p["nat"])
        return (self.render(p, a_sys, pat="none"), self.render(p, b_sys, pat="none", swap=True),
                "name_swap")

    def pos_patronymic(self) -> tuple[Any, Any, str]:
        p = self.person()
        a_sys, b_sys = self.two_systems(p["nat"])
        return (self.render(p, a_sys, pat="field"), self.render(p, b_sys, pat="none"),
                "patronymic_one_side")

    def pos_partial_dob(self) -> tuple[Any, Any, str]:
        p = self.person()
        a_sys, b_sys = self.two_systems(p["nat"])
        style = self.r.choice(["year", "month", "zeros", "ones", "day01", "day00"])
        return (self.render(p, a_sys, pat="none"), self.render(p, b_sys, pat="none", dob=style),
                "partial_dob")

    def pos_dm_swap(self) -> tuple[Any, Any, str]:
        p = self.person()
        y, m, _ = p["dob"]
        p["dob"] = (y, m, self.r.randint(1, 12))
        while p["dob"][1] == p["dob"][2]:
            p["dob"] = (y, m, self.r.randint(1, 12))
        a_sys, b_sys = self.two_systems(p["nat"])
        return (self.render(p, a_sys, pat="none"), self.render(p, b_sys, pat="none", dob="swap"),
                "dob_day_month_swap")

    def pos_ending(self) -> tuple[Any, Any, str]:
        """De-Russified family names: Раҳмонов / Rahmon, Ахметов / Ахметұлы, -zoda."""
        r = self.r
        p = self.person(sex="M")
        fam = p["family"]
        stem = fam[:-2] if fam.endswith(("ов", "ев")) else fam
        alt = r.choice([stem, stem + "ұлы" if p["nat"] == "KAZ" else stem + "зода", stem])
        a_sys, b_sys = self.two_systems(p["nat"])
        return (self.render(p, a_sys, pat="none"),
                self.render(p, b_sys, pat="none", family=alt), "russified_ending")

    def pos_patronymic_styles(self) -> tuple[Any, Any, str]:
        """Кайрат Нурланович / Қайрат Нұрланұлы: the same father, two styles."""
        p = self.person(nat=self.r.choice(["KAZ", "KGZ", "UZB"]))
        a_sys, b_sys = self.two_systems(p["nat"])
        a = self.render(p, a_sys, pat="none")
        b = self.render(p, b_sys, pat="none")
        a["patronymic"] = render_text(patronymic(p["father"], p["sex"], p["nat"], "national"),
                                      a_sys, a["family"].isupper())
        b["patronymic"] = render_text(patronymic(p["father"], p["sex"], p["nat"], "russian"),
                                      b_sys, b["family"].isupper())
        return a, b, "patronymic_styles"

    def pos_real_variant(self) -> tuple[Any, Any, str]:
        r = self.r
        names = [n for n in VARIANTS if any(
            n in s[k] for s in self.stock.values() for k in ("family", "male", "female"))]
        name = r.choice(names)
        nat, role = next((nat, k) for nat, s in self.stock.items()
                         for k in ("family", "male", "female") if name in s[k])
        sex = "F" if role == "female" else "M"
        p = self.person(nat=nat, sex=sex)
        variant = r.choice(VARIANTS[name])
        if role == "family":
            p["family"] = name
            b = self.render(p, "English", pat="none", family=variant)
        else:
            p["given"] = name
            b = self.render(p, "English", pat="none", given=variant)
        return self.render(p, r.choice(["CYR", "CYR_RU", "ICAO"]), pat="none"), b, "real_variant"

    def pos_typo(self) -> tuple[Any, Any, str]:
        p = self.person()
        a_sys, b_sys = self.two_systems(p["nat"])
        a = self.render(p, a_sys, pat="none")
        b = self.render(p, b_sys, pat="none")
        field = self.r.choice(["family", "given"])
        b[field] = self.typo(b[field])
        return a, b, "typo"

    def pos_sex_unknown(self) -> tuple[Any, Any, str]:
        p = self.person()
        a_sys, b_sys = self.two_systems(p["nat"])
        return (self.render(p, a_sys, pat="none"),
                self.render(p, b_sys, pat="none", sex_known=False), "sex_unknown")

    def typo(self, text: str) -> str:
        r = self.r
        letters = [i for i, c in enumerate(text) if c.isalpha()]
        if len(letters) < 4:
            return text
        i = r.choice(letters[1:])
        op = r.choice(["double", "drop_double", "vowel", "transpose", "drop_h"])
        if op == "double":
            return text[:i] + text[i] + text[i:]
        if op == "drop_double":
            for j in range(1, len(text)):
                if text[j] == text[j - 1]:
                    return text[:j] + text[j + 1:]
            return text[:i] + text[i] + text[i:]
        if op == "vowel":
            vowels = "aeiouAEIOU" if text.isascii() else "аеиоуАЕИОУ"
            js = [j for j in letters[1:] if text[j] in vowels]
            if js:
                j = r.choice(js)
                v = r.choice([c for c in vowels if c != text[j] and c.isupper() == text[j]
                              .isupper()])
                return text[:j] + v + text[j + 1:]
            return text
        if op == "transpose" and i + 1 < len(text) and text[i + 1].isalpha():
            return text[:i] + text[i + 1] + text[i] + text[i + 2:]
        if "h" in text[1:] or "H" in text[1:]:
            j = max(text.rfind("h"), text.rfind("H"))
            if j > 0:
                return text[:j] + text[j + 1:]
        return text[:i] + text[i] + text[i:]

    # -- negatives ----------------------------------------------------------------------
    def other_dob(self, d: tuple[int, int, int], *, min_years: int, max_years: int
                  ) -> tuple[int, int, int]:
        r = self.r
        y = d[0] + r.choice([-1, 1]) * r.randint(min_years, max_years)
        return max(1930, min(2012, y)), r.randint(1, 12), r.randint(1, 28)

    def neg_sibling(self) -> tuple[Any, Any, str]:
        r = self.r
        p = self.person()
        q = dict(p)
        q["sex"] = r.choice("MF")
        choices = self.stock[p["nat"]]["male" if q["sex"] == "M" else "female"]
        q["given"] = r.choice([g for g in choices if g != p["given"]])
        q["dob"] = self.other_dob(p["dob"], min_years=1, max_years=12)
        a_sys, b_sys = self.two_systems(p["nat"])
        pa, pb = self.pat_pair()
        return self.render(p, a_sys, pat=pa), self.render(q, b_sys, pat=pb), "sibling"

    def neg_namesake(self) -> tuple[Any, Any, str]:
        """Same names, another person: the date of birth differs."""
        r = self.r
        p = self.person()
        q = dict(p)
        q["father"] = r.choice(self.stock[p["nat"]]["male"])
        q["dob"] = r.choice([self.other_dob(p["dob"], min_years=1, max_years=30),
                             (p["dob"][0], r.randint(1, 12), r.randint(2, 28))])
        if q["dob"][1:] == p["dob"][1:] or q["dob"][1:] == (p["dob"][2], p["dob"][1]):
            q["dob"] = (q["dob"][0] + 3, q["dob"][1], q["dob"][2])
        a_sys, b_sys = self.two_systems(p["nat"])
        return self.render(p, a_sys, pat="none"), self.render(q, b_sys, pat="none"), "namesake"

    def neg_parent_child(self) -> tuple[Any, Any, str]:
        r = self.r
        parent = self.person(sex="M")
        child = self.person(nat=parent["nat"])
        child["family"] = parent["family"]
        child["father"] = parent["given"]
        if r.random() < 0.4 and child["sex"] == "M":
            child["given"] = parent["given"]  # named after the father
        child["dob"] = self.other_dob(parent["dob"], min_years=20, max_years=35)
        a_sys, b_sys = self.two_systems(parent["nat"])
        pa, pb = self.pat_pair()
        return (self.render(parent, a_sys, pat=pa), self.render(child, b_sys, pat=pb),
                "parent_child")

    def neg_spouse(self) -> tuple[Any, Any, str]:
        h = self.person(sex="M")
        w = self.person(nat=h["nat"], sex="F")
        w["family"] = h["family"]
        w["dob"] = self.other_dob(h["dob"], min_years=0, max_years=8)
        if w["dob"][1:] == h["dob"][1:]:
            w["dob"] = (w["dob"][0], w["dob"][1], w["dob"][2] % 28 + 1)
        a_sys, b_sys = self.two_systems(h["nat"])
        return self.render(h, a_sys, pat="none"), self.render(w, b_sys, pat="none"), "spouse"

    def neg_twin(self) -> tuple[Any, Any, str]:
        """Same family and date of birth, another given name (often a look-alike)."""
        r = self.r
        p = self.person()
        q = dict(p)
        if r.random() < 0.5:
            x, y = r.choice(self.lookalikes)
            p["given"], q["given"] = x, y
            p["sex"] = "F" if x in FEMALE_LOOKALIKES else "M"
            q["sex"] = "F" if y in FEMALE_LOOKALIKES else "M"
        else:
            q["sex"] = r.choice("MF")
            choices = self.stock[p["nat"]]["male" if q["sex"] == "M" else "female"]
            q["given"] = r.choice([g for g in choices if g != p["given"]])
        a_sys, b_sys = self.two_systems(p["nat"])
        return self.render(p, a_sys, pat="none"), self.render(q, b_sys, pat="none"), "twin"

    def neg_same_given_dob(self) -> tuple[Any, Any, str]:
        """Same given name and date of birth, another family (often a look-alike)."""
        r = self.r
        p = self.person()
        q = dict(p)
        if r.random() < 0.5:
            # Look-alike families (Каримов / Керимов) with the same given name are
            # the same person misspelt as often as not; as a hard non-match they
            # also differ in date of birth within the same year.
            x, y = r.choice(self.family_lookalikes)
            p["family"], q["family"] = x, y
            q["dob"] = (p["dob"][0], r.randint(1, 12), r.randint(2, 28))
            if q["dob"][1:] in (p["dob"][1:], (p["dob"][2], p["dob"][1])):
                q["dob"] = (q["dob"][0], q["dob"][1] % 12 + 1, q["dob"][2])
        else:
            q["family"] = r.choice([f for f in self.stock[p["nat"]]["family"]
                                    if f != p["family"]])
        a_sys, b_sys = self.two_systems(p["nat"])
        return (self.render(p, a_sys, pat="none"), self.render(q, b_sys, pat="none"),
                "other_family_same_dob")

    def neg_random(self) -> tuple[Any, Any, str]:
        p = self.person()
        q = self.person()
        if self.r.random() < 0.5:
            q["dob"] = p["dob"]
        a_sys, _ = self.two_systems(p["nat"])
        return self.render(p, a_sys, pat="none"), self.render(q, self.system(q["nat"]),
                                                               pat="none"), "unrelated"

    def build(self, n: int) -> list[dict[str, Any]]:
        pos: list[tuple[float, Callable[[], tuple[Any, Any, str]]]] = [
            (0.25, self.pos_cross_script), (0.09, self.pos_swap), (0.1, self.pos_patronymic),
            (0.12, self.pos_partial_dob), (0.08, self.pos_dm_swap), (0.08, self.pos_ending),
            (0.08, self.pos_patronymic_styles), (0.08, self.pos_real_variant),
            (0.07, self.pos_typo), (0.05, self.pos_sex_unknown),
        ]
        neg: list[tuple[float, Callable[[], tuple[Any, Any, str]]]] = [
            (0.2, self.neg_sibling), (0.2, self.neg_namesake), (0.12, self.neg_parent_child),
            (0.1, self.neg_spouse), (0.18, self.neg_twin), (0.12, self.neg_same_given_dob),
            (0.08, self.neg_random),
        ]
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        while len(out) < n:
            label = len(out) % 2 == 0
            table = pos if label else neg
            fn = self.r.choices([f for _, f in table], weights=[w for w, _ in table])[0]
            a, b, kind = fn()
            if self.r.random() < 0.5:
                a, b = b, a
            line = {"a": a, "b": b, "match": label, "kind": kind}
            key = json.dumps(line, ensure_ascii=False, sort_keys=True)
            if key in seen:
                continue
            seen.add(key)
            out.append(line)
        return out


def write(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main() -> None:
    half = len(LOOKALIKES) // 2
    fhalf = len(FAMILY_LOOKALIKES) // 2
    dev = Gen(DEV, DEV_SEED, LOOKALIKES[:half], FAMILY_LOOKALIKES[:fhalf])
    write(HERE / "dev.jsonl", dev.build(PAIRS_PER_SET))
    held = Gen(HELDOUT, HELDOUT_SEED, LOOKALIKES[half:], FAMILY_LOOKALIKES[fhalf:])
    write(HERE / "heldout.jsonl", held.build(PAIRS_PER_SET))


if __name__ == "__main__":
    main()
