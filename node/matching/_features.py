"""Precomputed comparison features of a person: built once, at index time.

Features are cached by the text of each name field, so a watchlist of a
million persons, which repeats a few thousand names, builds quickly.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from node.core.model import PersonQuery
from node.matching import _tables as t
from node.matching._lexicon import GIVEN_NAMES
from node.matching._phonetic import block_code, coarse, skeletons, slip_codes, stems
from node.matching.transliterate import fold_latin, is_cyrillic, name_keys

__all__ = ["FieldFeat", "PersonFeat", "TokenFeat", "field_feat", "person_feat"]

_SPLIT = re.compile(r"[\s\-<]+")
#: Tokens that are a detached patronymic suffix ("Нурлан ұлы", "Alisher o'g'li").
_SUFFIX_TOKENS = frozenset({"uli", "ulu", "kisi", "ugli", "ogli", "ogl", "kis"})
_PATRONYMIC_ENDS = tuple(e for e, _ in t.PATRONYMIC_ENDINGS)


@dataclass(frozen=True, slots=True)
class TokenFeat:
    text: str
    cyrillic: bool
    fine: frozenset[str]
    fine_t: tuple[str, ...]
    coarse: frozenset[str]
    stems: frozenset[str]
    ending_sex: str
    plain: str  # lower-case letters as written (Latin folded to ASCII): for typing slips
    keys: frozenset[str]  # Latin spellings, lower case (Cyrillic: every system's): for slips
    known: bool  # a given name people are given, or a family name made of one + an ending


@dataclass(frozen=True, slots=True)
class FieldFeat:
    text: str
    tokens: tuple[TokenFeat, ...]
    joined: TokenFeat | None
    codes: frozenset[str]
    slip_codes: frozenset[str]  # from each token's preferred reading: indexed
    slip_codes_all: frozenset[str]  # from every reading: looked up by a query


@dataclass(frozen=True, slots=True)
class PersonFeat:
    family: FieldFeat
    given: FieldFeat
    patronymic: FieldFeat | None
    year: int
    month: int | None
    day: int | None
    nationality: str
    sex: str


@functools.lru_cache(maxsize=500_000)
def _token(text: str, role: str) -> TokenFeat:
    fine_t = skeletons(text)
    endings = (t.FAMILY_ENDINGS if role == "family" else
               t.PATRONYMIC_ENDINGS if role == "patronymic" else ())
    stem_set: set[str] = set()
    sex = ""
    for i, sk in enumerate(fine_t):
        found, ending_sex = stems(sk, endings)
        stem_set.update(found or (sk,))
        if i == 0:
            sex = ending_sex
    return TokenFeat(
        text=text,
        cyrillic=is_cyrillic(text),
        fine=frozenset(fine_t),
        fine_t=fine_t,
        coarse=frozenset(coarse(s) for s in fine_t),
        stems=frozenset(stem_set),
        ending_sex=sex,
        plain=_plain(text),
        keys=_slip_keys(text),
        known=not _known_skeletons().isdisjoint(fine_t) if role == "given" else (
            role == "family" and bool(stem_set - set(fine_t))
            and not _known_skeletons().isdisjoint(stem_set)),
    )


@functools.cache
def _known_skeletons() -> frozenset[str]:
    return frozenset(sk for name in GIVEN_NAMES for sk in skeletons(name))


_DOUBLED = re.compile(r"(.)\1+")


def _plain(text: str) -> str:
    if is_cyrillic(text):
        return "".join(ch for ch in text.lower() if ch.isalpha())
    return fold_latin(text).lower().replace(" ", "").replace("-", "")


def _slip_keys(text: str) -> frozenset[str]:
    """The token's Latin spellings, to find a slip made in one of them (Rasvhan for
    RAVSHAN, Fayzullayfv for FAYZULLAYEV), which phonetic forms can blur; with
    doubled letters also collapsed when it has any (ЮЮлдуз)."""
    plain = _plain(text)
    forms = {plain, _DOUBLED.sub(r"\1", plain)}
    if not is_cyrillic(text):
        return frozenset(forms)
    return frozenset(k.lower().replace(" ", "").replace("-", "")
                     for form in forms for k in name_keys(form))


def _split(text: str) -> list[str]:
    raw = [p for p in _SPLIT.split(text) if p]
    out: list[str] = []
    for part in raw:
        sk = skeletons(part)
        if out and sk and sk[0] in _SUFFIX_TOKENS:
            out[-1] = out[-1] + part
        else:
            out.append(part)
    return out


@functools.lru_cache(maxsize=500_000)
def field_feat(text: str, role: str) -> FieldFeat:
    """Features of one name field; ``role`` is ``family``, ``given`` or ``patronymic``."""
    parts = _split(text)
    tokens = tuple(_token(p, role) for p in parts)
    joined = _token("".join(parts), role) if len(parts) > 1 else None
    codes: set[str] = set()
    slips: set[str] = set()
    slips_all: set[str] = set()
    for tok in tokens + ((joined,) if joined else ()):
        for sk in tok.fine_t[:4]:
            codes.add(block_code(sk))
            slips_all.update(slip_codes(sk))
        slips.update(slip_codes(tok.fine_t[0]) if tok.fine_t else ())
        for st in tok.stems:
            codes.add(block_code(st))
    return FieldFeat(text=text, tokens=tokens, joined=joined, codes=frozenset(codes),
                     slip_codes=frozenset(slips - codes),
                     slip_codes_all=frozenset(slips_all - codes))


def _looks_patronymic(token: str) -> bool:
    return any(sk.endswith(_PATRONYMIC_ENDS) for sk in skeletons(token)[:2])


def person_feat(p: PersonQuery) -> PersonFeat:
    """Features of ``p``; a patronymic written among the given names is moved out."""
    given = p.given_names
    patronymic = p.patronymic
    if not patronymic:
        parts = _split(given)
        if len(parts) >= 2 and _looks_patronymic(parts[-1]):
            patronymic = parts[-1]
            given = " ".join(parts[:-1])
    dob = p.date_of_birth
    return PersonFeat(
        family=field_feat(p.family_name, "family"),
        given=field_feat(given, "given"),
        patronymic=field_feat(patronymic, "patronymic") if patronymic else None,
        year=dob.year,
        month=dob.month,
        day=dob.day,
        nationality=p.nationality,
        sex=p.sex.value,
    )
