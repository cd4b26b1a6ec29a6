"""Phonetic forms ("skeletons") that collapse transliteration variants.

A name token, Cyrillic or Latin, becomes a small set of lower-case phonetic
strings over one alphabet: vowels ``a e i o u``, consonants as in English,
plus ``c`` for Ч, ``w`` for Ш/Щ, ``j`` for Ж/Ҷ/Җ/Дж and ``h`` for Х/Ҳ/Һ.

* Cyrillic is read letter by letter (no ambiguity, a few alternates for
  Ё, Ў and Ә whose romanisations disagree).
* Latin is read with every plausible system in mind: CH may be Ч (English,
  ICAO), Ш (French) or Х (German); SCH is Ш or Ж (German); J before a vowel
  is Ж (Uzbek, Kazakh, French) or Й (German); X is Х (Uzbek) or KS.

Then both go through the same normalisation: glides (Y/I/J in YU, IA, YE)
are unified, doubled letters collapse, Z and S merge (German S = З).
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata

from node.matching import _tables as t
from node.matching.transliterate import fold_latin, is_cyrillic

__all__ = ["block_code", "coarse", "consonants", "skeletons", "slip_codes", "stems"]

#: Cyrillic letter → phonetic form; tuples give alternates (first is preferred).
_CYR: dict[str, tuple[str, ...]] = {
    "а": ("a",), "б": ("b",), "в": ("v",), "г": ("g",), "д": ("d",), "е": ("e",),
    "ё": ("io", "e"), "ж": ("j",), "з": ("s",), "и": ("i",), "й": ("i",), "к": ("k",),
    "л": ("l",), "м": ("m",), "н": ("n",), "о": ("o",), "п": ("p",), "р": ("r",),
    "с": ("s",), "т": ("t",), "у": ("u",), "ф": ("f",), "х": ("h",), "ц": ("s",),
    "ч": ("c",), "ш": ("w",), "щ": ("w",), "ъ": ("",), "ы": ("i",), "ь": ("",),
    "э": ("e",), "ю": ("iu",), "я": ("ia",),
    "ә": ("a", "e"), "ғ": ("g",), "қ": ("k",), "ң": ("n",), "ө": ("o",), "ұ": ("u",),
    "ү": ("u",), "һ": ("h",), "і": ("i",), "ӣ": ("i",), "ӯ": ("u",), "ҳ": ("h",),
    "ҷ": ("j",), "ў": ("u", "o"), "җ": ("j",),
}
assert set(_CYR) == set(t.ALL_CYRILLIC), "phonetic table must cover every Cyrillic letter"

_MAX_VARIANTS = 8

# Latin: deterministic digraphs first (longest first), ambiguous ones become
# markers \x01..\x04 expanded into readings below.
_LATIN_STEPS: tuple[tuple[str, str], ...] = (
    ("SCHTSCH", "w"), ("SHCH", "w"), ("TSCH", "\x05"), ("TCH", "c"), ("SCH", "\x02"),
    ("ZH", "j"), ("KH", "h"), ("SH", "w"), ("GH", "g"), ("PH", "f"), ("CH", "\x01"),
    ("DJ", "j"), ("CK", "k"),
)
_READINGS: dict[str, tuple[str, ...]] = {
    "\x01": ("c", "w", "h"),  # CH: Ч (English/ICAO), Ш (French), Х (German)
    "\x02": ("w", "j"),  # SCH: Ш, or Ж (German)
    "\x03": ("h", "ks"),  # X: Х (Uzbek), or KS
    "\x05": ("c", "tj"),  # TSCH: Ч (German), or Т + Ж (German Bakytschan = Бақытжан)
    "\x04": ("j", "i"),  # J next to a vowel: Ж, or Й (German Jussupow, Kajrat)
}
_UNAMBIGUOUS_CH = re.compile("[\u00e7\u00c7\u010d\u010c]")  # Turkmen Ç, Č: always Ч
_J_VOWEL = re.compile(r"J(?=[AEIOUY])|(?<=[AEIOUY])J")
_GU_FRONT = re.compile(r"GU(?=[EI])")
_FINAL_FF = re.compile(r"FF$")
_SIMPLE = str.maketrans({"Q": "k", "C": "k", "W": "v", "Z": "s", "Y": "i", "X": "\x03",
                         "J": "j", "H": "h"})
_VOWELS = "aeiou"
_DOUBLE = re.compile(r"(.)\1+")
_GLIDE_E = re.compile(r"(?<=[aeiou])ie")
_OU = re.compile(r"ou")
_TS = re.compile(r"ts(?!od)")  # Ц; but not the Tajik ending -zoda after T (Mamytzoda)


def _normalise(s: str) -> str:
    """Shared normalisation of a lower-case phonetic string."""
    s = _DOUBLE.sub(r"\1", s)  # first, so that ҢГ (NGG) and Ң (NG) meet
    s = _TS.sub("s", s.replace("dj", "j").replace("ng", "n"))
    s = _OU.sub("u", s)
    s = _DOUBLE.sub(r"\1", s)
    if s.startswith("ie"):
        s = s[1:]
    s = _GLIDE_E.sub("e", s)
    return _DOUBLE.sub(r"\1", s)


def _cyrillic_forms(token: str) -> list[str]:
    parts = [_CYR.get(ch, ("",)) for ch in token.lower()]
    forms: list[str] = []
    for combo in itertools.islice(itertools.product(*parts), _MAX_VARIANTS):
        forms.append("".join(combo))
    return forms


#: The apostrophe family, folded to U+02BB before anything else: keyboards type the
#: Uzbek oʻ and gʻ with any of them (REFERENCE.md "Uzbek Latin"), and ʼ for ʻ.
_APOSTROPHES = re.compile("[\u02bb\u02bc\u02bd\u02b9\u2018\u2019\u201b'`\u00b4\u2032\uff07]")
_UZBEK_O = re.compile("[oO]\u02bb")
#: Ё romanised YO / IO / JO / Ë, where ICAO 9303 and most registers write E.
_YO = re.compile("[YyIiJj][Oo]|[\u00cb\u00eb]")


def _latin_forms(token: str) -> list[str]:
    s = _APOSTROPHES.sub("\u02bb", token)
    sources = [s]
    # Uzbek Oʻ is Ў (Russian-style У); keep both readings.
    if _UZBEK_O.search(s):
        sources.append(_UZBEK_O.sub("ŭ", s))
    # Ё may have been written E on the other document (Семёнов / SEMENOV, PYOTR / PETR).
    if _YO.search(s):
        sources.append(_YO.sub(lambda m: "E" if m.group()[0].isupper() else "e", s))
    out: list[str] = []
    for src in sources:
        src = _UNAMBIGUOUS_CH.sub("tch", src)
        up = fold_latin(src).replace(" ", "").replace("-", "")
        for a, b in _LATIN_STEPS:
            up = up.replace(a, b)
        up = _J_VOWEL.sub("\x04", up)
        up = _GU_FRONT.sub("G", up)
        up = _FINAL_FF.sub("V", up)
        up = up.translate(_SIMPLE).lower()
        markers = [m for m in _READINGS if m in up]
        if not markers:
            out.append(up)
            continue
        choices = [_READINGS[m] for m in markers]
        for combo in itertools.islice(itertools.product(*choices), _MAX_VARIANTS):
            v = up
            for m, r in zip(markers, combo, strict=True):
                v = v.replace(m, r)
            out.append(v)
    return out


@functools.lru_cache(maxsize=200_000)
def skeletons(token: str) -> tuple[str, ...]:
    """Phonetic forms of one name token (no spaces), preferred reading first."""
    raw = _cyrillic_forms(token) if is_cyrillic(token) else _latin_forms(token)
    seen: dict[str, None] = {}
    for form in raw:
        n = _normalise(form)
        if n:
            seen[n] = None
    if not seen:
        # A script with no table here (Arabic, Georgian, Han, ...): the letters as
        # written, so that a name written the same way still meets itself.
        own = "".join(ch for ch in unicodedata.normalize("NFKC", token).casefold()
                      if ch.isalpha())
        return (own,) if own else ()
    return tuple(seen)


_COARSE_VOWELS = re.compile(r"[aeo]+")


def coarse(skeleton: str) -> str:
    """A coarser form: A/O/E merged (Uzbek O for Russian A; Ә as A or E), H dropped, final D/T.

    U and I stay apart: twins are often Hasan and Husan.
    """
    c = _COARSE_VOWELS.sub("a", skeleton.replace("h", ""))
    if c.endswith("d"):
        c = c[:-1] + "t"
    return c


def stems(skeleton: str, endings: tuple[tuple[str, str], ...]) -> tuple[tuple[str, ...], str]:
    """Stems of ``skeleton`` with up to two endings stripped (each keeping 3+ letters),
    and the sex the outer ending implies ("" if none): Габдуллинұлы → габдуллин, габдул."""
    found: list[str] = []
    sex = ""
    current = skeleton
    for level in range(2):
        for ending, ending_sex in endings:
            if current.endswith(ending) and len(current) - len(ending) >= 3:
                current = current[: -len(ending)]
                found.append(current)
                if level == 0:
                    sex = ending_sex
                break
        else:
            break
    return tuple(found), sex


def consonants(skeleton: str) -> str:
    """The consonants of ``skeleton`` in order, vowels and H dropped, repeats collapsed."""
    out: list[str] = []
    for ch in skeleton:
        if ch not in _VOWELS and ch != "h" and (not out or out[-1] != ch):
            out.append(ch)
    return "".join(out)


def block_code(skeleton: str) -> str:
    """A blocking code: the first four consonants (vowels and H dropped)."""
    return consonants(skeleton)[:4] or skeleton[:2]


def slip_codes(skeleton: str) -> tuple[str, ...]:
    """Blocking codes of ``skeleton`` with its first or second consonant dropped.

    Symmetric deletion: a slip that substitutes, drops, adds or swaps one of the
    first two consonants leaves one of these equal to a code of the other spelling.
    """
    cons = consonants(skeleton)
    if len(cons) < 3:
        return ()
    return cons[1:5], cons[0] + cons[2:5]
