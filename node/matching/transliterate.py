"""Transliteration of names as written into the Latin keys they are indexed under.

Tables are data in :mod:`node.matching._tables` (sources cited there).  This
module applies them letter by letter, with the few context rules those
systems define, and folds Latin diacritics to the ASCII used in MRZs.
"""

from __future__ import annotations

import functools
import unicodedata

from node.core.errors import InvalidInput
from node.matching import _tables as t

__all__ = [
    "SYSTEMS",
    "fold_latin",
    "is_cyrillic",
    "name_keys",
    "transliterate",
    "transliterate_all",
]

SYSTEMS: tuple[str, ...] = tuple(t.SYSTEMS)

_CYRILLIC = frozenset(t.ALL_CYRILLIC)
_FRONT = frozenset("еёиэіӣ")
_RULES: dict[tuple[str, str], dict[str, str]] = {}
for _system, _letter, _when, _repl in t.CONTEXT_RULES:
    _RULES.setdefault((_system, _letter), {})[_when] = _repl

#: Longest input accepted here; the model bounds names at 100 characters.
MAX_TEXT_LEN = 256


def is_cyrillic(text: str) -> bool:
    """True when ``text`` holds at least one Cyrillic letter we know."""
    return any(ch in _CYRILLIC for ch in text.lower())


def _context(word: str, i: int) -> tuple[str, ...]:
    prev = word[i - 1] if i > 0 else ""
    nxt = word[i + 1] if i + 1 < len(word) else ""
    found = []
    if not prev or not prev.isalpha():
        found.append("initial")
    elif prev in t.CYRILLIC_VOWELS:
        found.append("after_vowel")
        if nxt in t.CYRILLIC_VOWELS:
            found.append("between_vowels")
    if nxt in _FRONT:
        found.append("before_front_vowel")
    return tuple(found)


def transliterate(text: str, system: str = "ICAO") -> str:
    """Romanise Cyrillic ``text`` with one system; other characters pass through.

    ``system`` is one of :data:`SYSTEMS`.  Case follows the table (upper case
    for MRZ-style systems, lower case for national alphabets); the result keeps
    spaces and hyphens.
    """
    table = t.SYSTEMS.get(system)
    if table is None:
        raise InvalidInput(f"unknown transliteration system {system!r}", reason="bad_system")
    if len(text) > MAX_TEXT_LEN:
        raise InvalidInput(f"text longer than {MAX_TEXT_LEN} characters", reason="bad_name")
    word = unicodedata.normalize("NFC", text).lower()
    out: list[str] = []
    for i, ch in enumerate(word):
        repl = table.get(ch)
        if repl is None:
            out.append(ch)
            continue
        rules = _RULES.get((system, ch))
        if rules:
            for when in _context(word, i):
                if when in rules:
                    repl = rules[when]
                    break
        out.append(repl)
    return "".join(out)


def transliterate_all(text: str) -> dict[str, str]:
    """Every system's romanisation of ``text``, by system name."""
    return {name: transliterate(text, name) for name in SYSTEMS}


@functools.lru_cache(maxsize=65536)
def fold_latin(text: str) -> str:
    """Fold Latin ``text`` to upper-case ASCII letters, spaces and hyphens.

    Turkmen, Kazakh and Uzbek Latin letters and BGN/PCGN diacritics become
    their usual ASCII spellings (Ş→SH, Ç→CH, Ž→ZH, Ň→N, Ý→Y, Ä→A, Oʻ→O,
    Gʻ→G); apostrophes are dropped; anything else is decomposed and stripped
    of combining marks.
    """
    out: list[str] = []
    for ch in unicodedata.normalize("NFC", text).lower():
        if ch in t.LATIN_MARKS:
            continue
        mapped = t.LATIN_FOLD.get(ch)
        if mapped is not None:
            out.append(mapped)
            continue
        if "a" <= ch <= "z":
            out.append(ch.upper())
        elif ch in " -":
            out.append(ch)
        elif ch == "<":
            out.append(" ")
        else:
            base = "".join(
                c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c)
            )
            out.append("".join(c.upper() for c in base if "a" <= c <= "z"))
    return " ".join("".join(out).split())


@functools.lru_cache(maxsize=65536)
def name_keys(text: str) -> frozenset[str]:
    """All upper-case ASCII keys a name as written is indexed under.

    Cyrillic names yield one key per system in :data:`SYSTEMS` (ICAO 9303,
    BGN/PCGN, English, French, German, Kazakh, Uzbek and Turkmen Latin, the
    last three folded to ASCII).  Latin names yield their ASCII fold.
    """
    if len(text) > MAX_TEXT_LEN:
        raise InvalidInput(f"text longer than {MAX_TEXT_LEN} characters", reason="bad_name")
    if not is_cyrillic(text):
        folded = fold_latin(text)
        return frozenset({folded}) if folded else frozenset()
    keys = {fold_latin(transliterate(text, name)) for name in SYSTEMS}
    keys.discard("")
    return frozenset(keys)


def key_systems(text: str, latin_key: str) -> tuple[str, ...]:
    """The systems whose romanisation of Cyrillic ``text`` folds to ``latin_key``."""
    if not is_cyrillic(text):
        return ()
    return tuple(name for name in SYSTEMS if fold_latin(transliterate(text, name)) == latin_key)
