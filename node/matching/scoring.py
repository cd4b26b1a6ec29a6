"""Scoring two persons: names across scripts, date of birth, sex, nationality.

The score is a weighted sum of name evidence and date-of-birth evidence, less
penalties for conflicts, clamped to 0..1.  Names count most, but a date of
birth that conflicts keeps even identical names below the default threshold
(namesakes and relatives are not the same person).

Name evidence: each field (family, given) is compared as phonetic forms
(see :mod:`node.matching._phonetic`); family names and patronymics are also
compared on their stems without Russified or patronymic endings (-ov/-ova,
-ev/-eva, -uly/-kyzy, -ovich/-ovna).  Both name orders are tried.  The two
field similarities are turned into evidence and multiplied, so one field that
clearly differs (Ruslan and Rustam) sinks the name.
"""

from __future__ import annotations

from dataclasses import dataclass

from rapidfuzz.distance import OSA, Levenshtein

from node.core.model import PersonQuery
from node.matching._features import FieldFeat, PersonFeat, TokenFeat, person_feat
from node.matching._phonetic import coarse
from node.matching.transliterate import fold_latin, key_systems

__all__ = ["DEFAULT_THRESHOLD", "MatchResult", "score"]

#: Score at or above which two persons are taken to be the same.
DEFAULT_THRESHOLD = 0.73

# Weights and penalties, tuned on tests/data/names/dev.jsonl and checked on
# the held-out split (see tests/data/names/README.md).
W_NAME = 0.6
W_DOB = 0.4
COARSE_SIM = 0.92  # same consonants, vowel quality differs (Rahmon / Rakhman)
TRANSPOSITION_SIM = 0.9  # two adjacent letters swapped (Daelr / Daler)
SLIP_SIM = 0.9  # one letter typed wrong, dropped or added (Nurlan / Nurlam), not two names
SLIP_MIN_LEN = 4  # shorter tokens are too short to tell a slip from another name
SLIP_FLOOR = 0.5  # phonetic similarity below which Latin spellings are not searched for a slip
KNOWN_DISTINCT_SIM = 0.75  # two different given names people are given (Elvira / Elmira)
STEM_SIM = 0.95  # same stem, Russified or patronymic ending differs
SWAP_FACTOR = 0.98  # given and family names swapped
EXTRA_TOKEN_FACTOR = 0.97  # per name token present on one side only
EVIDENCE_FLOOR = 0.6  # field similarity at or below which a field is no evidence
SEX_CONFLICT = 0.40
ENDING_CONFLICT = 0.20  # Юсупов vs Юсупова: a relative, not the same person
DOB_CONFLICT = 0.10
NATIONALITY_DIFFERS = 0.05
PATRONYMIC_OK = 0.85
PATRONYMIC_PENALTY = 0.9

DOB_EXACT = 1.0
DOB_MONTH_ONLY = 0.85
DOB_PLACEHOLDER_DAY = 0.8  # day written 01: often means unknown
DOB_SWAPPED = 0.8
DOB_PLACEHOLDER_MONTH = 0.7  # month (and day) written 01
DOB_YEAR_ONLY = 0.7


@dataclass(frozen=True, slots=True)
class MatchResult:
    """Score 0..1, the decision at :data:`DEFAULT_THRESHOLD`, and why, in short phrases."""

    score: float
    match: bool
    explanation: tuple[str, ...]


Memo = dict[tuple[str, str, bool | str], float]


def _tok_sim(a: TokenFeat, b: TokenFeat, use_stems: bool) -> float:
    if not a.fine.isdisjoint(b.fine):
        return 1.0
    best = 0.0
    slip = False
    for x in a.fine_t:
        for y in b.fine_t:
            s = OSA.normalized_similarity(x, y)
            if s > best:
                best = s
                if OSA.distance(x, y) == 1 and Levenshtein.distance(x, y) == 2:
                    best = max(best, TRANSPOSITION_SIM)  # a typing slip, not another name
            if not slip and min(len(x), len(y)) >= SLIP_MIN_LEN and OSA.distance(
                    x, y, score_cutoff=1) == 1:
                slip = True
    if best < COARSE_SIM and not a.coarse.isdisjoint(b.coarse):
        best = COARSE_SIM
    if use_stems and best < STEM_SIM and not a.stems.isdisjoint(b.stems):
        best = STEM_SIM
    if best >= COARSE_SIM:
        return best
    if a.known and b.known:
        # Two names people are given, and not one name's spellings: two people.
        return min(best, KNOWN_DISTINCT_SIM)
    if not slip and a.cyrillic == b.cyrillic and min(len(a.plain), len(b.plain)) >= \
            SLIP_MIN_LEN:
        slip = OSA.distance(a.plain, b.plain, score_cutoff=1) == 1
    if not slip and best > SLIP_FLOOR:
        slip = any(min(len(x), len(y)) >= SLIP_MIN_LEN and OSA.distance(
            x, y, score_cutoff=1) == 1 for x in a.keys for y in b.keys)
    return max(best, SLIP_SIM) if slip else best


def _cores(stems: frozenset[str]) -> list[str]:
    """Stems with no shorter stem as a prefix: the readings whose ending came off
    (TIMUR, not TIMUROVIW read with CH as Ш)."""
    return [x for x in stems if not any(y != x and x.startswith(y) for y in stems)]


def _father_sim(a: TokenFeat, b: TokenFeat) -> float:
    """Patronymic tokens compared on their stems: the father's name, without -ovich /
    -ovna / -uly / oʻgʻli, whose shared ending says nothing (Ravshanovna / Zafarovna)."""
    if not a.fine.isdisjoint(b.fine) or not a.stems.isdisjoint(b.stems):
        return 1.0
    best = 0.0
    slip = False
    for x in _cores(a.stems):
        for y in _cores(b.stems):
            best = max(best, OSA.normalized_similarity(x, y))
            slip = slip or (min(len(x), len(y)) >= SLIP_MIN_LEN
                            and OSA.distance(x, y, score_cutoff=1) == 1)
    if best < COARSE_SIM and not {coarse(x) for x in _cores(a.stems)}.isdisjoint(
            {coarse(y) for y in _cores(b.stems)}):
        best = COARSE_SIM
    return max(best, SLIP_SIM) if slip else best


def _patronymic_sim(a: FieldFeat, b: FieldFeat, memo: Memo) -> float:
    key = (a.text, b.text, "father")
    cached = memo.get(key)
    if cached is not None:
        return cached
    toks_a = a.tokens + ((a.joined,) if a.joined else ())
    toks_b = b.tokens + ((b.joined,) if b.joined else ())
    result = max((_father_sim(x, y) for x in toks_a for y in toks_b), default=0.0)
    memo[key] = result
    return result


def _field_sim(a: FieldFeat, b: FieldFeat, use_stems: bool, memo: Memo) -> float:
    key = (a.text, b.text, use_stems)
    cached = memo.get(key)
    if cached is not None:
        return cached
    if not a.tokens or not b.tokens:
        result = 0.0
    elif len(a.tokens) == 1 and len(b.tokens) == 1:
        result = _tok_sim(a.tokens[0], b.tokens[0], use_stems)
    else:
        short, long_ = (a.tokens, b.tokens) if len(a.tokens) <= len(b.tokens) else (
            b.tokens, a.tokens)
        total = 0.0
        for tok in short:
            total += max(_tok_sim(tok, other, use_stems) for other in long_)
        result = total / len(short) * EXTRA_TOKEN_FACTOR ** (len(long_) - len(short))
        ja = a.joined or a.tokens[0]
        jb = b.joined or b.tokens[0]
        if a.joined or b.joined:
            result = max(result, _tok_sim(ja, jb, use_stems))
    memo[key] = result
    return result


def _evidence(sim: float) -> float:
    if sim <= EVIDENCE_FLOOR:
        return 0.0
    return (sim - EVIDENCE_FLOOR) / (1.0 - EVIDENCE_FLOOR)


def _dob(a: PersonFeat, b: PersonFeat) -> tuple[float, str]:
    if a.year != b.year:
        return 0.0, "dob: year differs"
    if a.month is None or b.month is None:
        return DOB_YEAR_ONLY, "dob: year only"
    if a.day is None or b.day is None:
        if a.month == b.month:
            return DOB_MONTH_ONLY, "dob: year and month"
        if a.month == 1 or b.month == 1:
            return DOB_PLACEHOLDER_MONTH, "dob: month 01 (unknown?)"
        return 0.0, "dob: month differs"
    if a.month == b.month and a.day == b.day:
        return DOB_EXACT, "dob: exact"
    if a.month == b.day and a.day == b.month:
        return DOB_SWAPPED, "dob: day/month swapped"
    if a.month == b.month and (a.day == 1 or b.day == 1):
        return DOB_PLACEHOLDER_DAY, "dob: day 01 (unknown?)"
    if (a.month == 1 and a.day == 1) or (b.month == 1 and b.day == 1):
        return DOB_PLACEHOLDER_MONTH, "dob: 01-01 (unknown?)"
    if a.day == b.day and (a.month == 1 or b.month == 1):
        return DOB_PLACEHOLDER_MONTH, "dob: month 01 (unknown?)"
    return 0.0, "dob: conflict"


def _name_evidence(a: PersonFeat, b: PersonFeat, memo: Memo) -> tuple[float, bool, float,
                                                                      float]:
    """(evidence 0..1, swapped?, family sim, given sim)."""
    f = _field_sim(a.family, b.family, True, memo)
    g = _field_sim(a.given, b.given, False, memo)
    straight = _evidence(f) * _evidence(g)
    if straight >= 1.0:
        return straight, False, f, g
    f2 = _field_sim(a.family, b.given, True, memo)
    g2 = _field_sim(a.given, b.family, True, memo)
    swapped = _evidence(f2 * SWAP_FACTOR) * _evidence(g2 * SWAP_FACTOR)
    if swapped > straight:
        return swapped, True, f2, g2
    return straight, False, f, g


def _ending_conflict(a: FieldFeat, b: FieldFeat) -> bool:
    for x in a.tokens:
        for y in b.tokens:
            if (x.ending_sex and y.ending_sex and x.ending_sex != y.ending_sex
                    and not x.stems.isdisjoint(y.stems)):
                return True
    return False


def compare_features(a: PersonFeat, b: PersonFeat, memo: Memo) -> float:
    """The score of two feature sets (hot path: no explanation)."""
    return _compare(a, b, memo, None)


def _compare(a: PersonFeat, b: PersonFeat, memo: Memo, why: list[str] | None) -> float:
    name, swapped, f, g = _name_evidence(a, b, memo)
    dob, dob_why = _dob(a, b)
    total = W_NAME * name + W_DOB * dob
    if dob == 0.0:
        total -= DOB_CONFLICT
    if a.sex != "X" and b.sex != "X" and a.sex != b.sex:
        total -= SEX_CONFLICT
        if why is not None:
            why.append("sex: conflict")
    fam_a, fam_b = (a.family, b.given) if swapped else (a.family, b.family)
    if _ending_conflict(fam_a, fam_b):
        total -= ENDING_CONFLICT
        if why is not None:
            why.append("family name: ending differs by sex")
    p = None
    if a.patronymic is not None and b.patronymic is not None:
        p = _patronymic_sim(a.patronymic, b.patronymic, memo)
        if p < PATRONYMIC_OK:
            total -= PATRONYMIC_PENALTY * (PATRONYMIC_OK - p)
    if a.nationality != b.nationality:
        total -= NATIONALITY_DIFFERS
    if why is not None:
        if swapped:
            why.append("names: given and family swapped")
        why.append(_describe("family name", fam_a, fam_b, f))
        why.append(_describe("given names", a.given, b.family if swapped else b.given, g))
        if p is not None:
            why.append("patronymic: " + ("match" if p >= PATRONYMIC_OK else "differs"))
        elif (a.patronymic is None) != (b.patronymic is None):
            why.append("patronymic: one side only")
        why.append(dob_why)
        if a.nationality != b.nationality:
            why.append("nationality: differs")
    return min(1.0, max(0.0, total))


def _describe(what: str, a: FieldFeat, b: FieldFeat, sim: float) -> str:
    if not a.text or not b.text:
        return f"{what}: missing"
    if a.text.casefold() == b.text.casefold():
        return f"{what}: exact"
    cyr_a = any(t.cyrillic for t in a.tokens)
    cyr_b = any(t.cyrillic for t in b.tokens)
    if cyr_a != cyr_b:
        cyr, lat = (a.text, b.text) if cyr_a else (b.text, a.text)
        systems = key_systems(cyr, fold_latin(lat))
        if systems:
            return f"{what}: cross-script match ({systems[0]})"
        if sim >= 1.0:
            return f"{what}: cross-script match (phonetic)"
        kind = "cross-script"
    else:
        folded = fold_latin(a.text)
        if folded and folded == fold_latin(b.text) and not cyr_a:
            return f"{what}: same letters"
        kind = "spelling"
    if sim >= 1.0:
        return f"{what}: {kind} variant"
    if sim >= STEM_SIM:
        return f"{what}: {kind} stem match (ending differs)"
    if sim >= COARSE_SIM:
        return f"{what}: {kind} near match (vowels differ)"
    if sim >= 0.75:
        return f"{what}: {kind} fuzzy match"
    return f"{what}: differs"


def score(a: PersonQuery, b: PersonQuery) -> MatchResult:
    """Compare two persons as written; symmetric up to the explanation's order."""
    why: list[str] = []
    s = round(_compare(person_feat(a), person_feat(b), {}, why), 4)
    return MatchResult(score=s, match=s >= DEFAULT_THRESHOLD, explanation=tuple(why))


def explain(a: PersonFeat, b: PersonFeat) -> tuple[float, tuple[str, ...]]:
    """Score and explanation of two feature sets (used for returned candidates only)."""
    why: list[str] = []
    s = _compare(a, b, {}, why)
    return s, tuple(why)
