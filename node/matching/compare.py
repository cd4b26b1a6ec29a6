"""``bxnode names compare``: score JSON Lines of person pairs (the CLI wires I/O).

Input, one JSON object a line: ``{"a": PERSON, "b": PERSON}``, where PERSON is
``{"given", "family", "patronymic" (or null), "dob", "nationality", "sex"}``.
A line may carry the labels of the sets in ``tests/data/names/``: ``match``
(true or false) and ``kind``; they are not used for scoring, only tallied.
Output, one line per good pair in order: ``{"score": s, "match": m}``.

A bad line (not JSON, a person the model refuses, ...) is recorded and the
stream carries on, so one odd record cannot hide the rest; ``strict=True``
raises at the first instead.  :class:`CompareReport` holds the count, the bad
lines and, for labelled lines, precision, recall, F1 and recall per kind.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from node.core.errors import InvalidInput
from node.core.model import PartialDate, PersonQuery, Sex
from node.matching.scoring import score

__all__ = ["MAX_BAD_LINES_KEPT", "MAX_KIND_LEN", "MAX_LINE_LEN", "BadLine", "CompareReport",
           "KindTally", "compare_stream", "parse_person"]

#: Longest input line accepted, in characters.
MAX_LINE_LEN = 4096
#: Longest ``kind`` label tallied; longer labels count under ``"(other)"``.
MAX_KIND_LEN = 64
#: Bad lines kept in a report (all are counted); bounds memory on hostile input.
MAX_BAD_LINES_KEPT = 1000
_SEXES = {s.value: s for s in Sex}


def _str(obj: Mapping[str, object], key: str, *, required: bool = True) -> str:
    value = obj.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"{key!r} must be a string", reason="bad_person")
    return value


def parse_person(obj: object) -> PersonQuery:
    """A PERSON dict as a validated :class:`PersonQuery` (unknown keys are ignored)."""
    if not isinstance(obj, Mapping):
        raise InvalidInput("a person must be a JSON object", reason="bad_person")
    sex = _str(obj, "sex")
    if sex not in _SEXES:
        raise InvalidInput("'sex' must be M, F or X", reason="bad_person")
    return PersonQuery(
        family_name=_str(obj, "family"),
        given_names=_str(obj, "given"),
        patronymic=_str(obj, "patronymic", required=False),
        date_of_birth=PartialDate.parse(_str(obj, "dob")),
        nationality=_str(obj, "nationality"),
        sex=_SEXES[sex],
    )


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that could not be scored: its 1-based number, why, and the reason code."""

    line: int
    message: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message} ({self.reason})"


@dataclass(slots=True)
class KindTally:
    """Labelled pairs of one kind: how many, how many the matcher called a match."""

    label: bool
    pairs: int = 0
    matched: int = 0

    @property
    def correct(self) -> int:
        return self.matched if self.label else self.pairs - self.matched

    def as_dict(self) -> dict[str, Any]:
        rate = round(self.correct / self.pairs, 4) if self.pairs else 0.0
        key = "recall" if self.label else "rejected"
        return {"match": self.label, "pairs": self.pairs, "correct": self.correct, key: rate}


@dataclass(slots=True)
class CompareReport:
    """What :func:`compare_stream` saw: scored pairs, bad lines, and labelled figures."""

    pairs: int = 0
    bad_count: int = 0
    bad_lines: list[BadLine] = field(default_factory=list)
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    kinds: dict[str, KindTally] = field(default_factory=dict)

    @property
    def labelled(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def _add_bad(self, bad: BadLine) -> None:
        self.bad_count += 1
        if len(self.bad_lines) < MAX_BAD_LINES_KEPT:
            self.bad_lines.append(bad)

    def _tally(self, label: bool, kind: str, predicted: bool) -> None:
        if label and predicted:
            self.tp += 1
        elif label:
            self.fn += 1
        elif predicted:
            self.fp += 1
        else:
            self.tn += 1
        key = f"{kind}/{'match' if label else 'non-match'}"
        tally = self.kinds.get(key)
        if tally is None:
            tally = self.kinds[key] = KindTally(label=label)
        tally.pairs += 1
        tally.matched += predicted

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"pairs": self.pairs, "bad_lines": self.bad_count,
                               "bad": [str(b) for b in self.bad_lines]}
        if self.labelled:
            out.update({
                "labelled": self.labelled, "tp": self.tp, "fp": self.fp, "fn": self.fn,
                "tn": self.tn, "precision": round(self.precision, 4),
                "recall": round(self.recall, 4), "f1": round(self.f1, 4),
                "kinds": {k: self.kinds[k].as_dict() for k in sorted(self.kinds)},
            })
        return out


def _labels(obj: Mapping[str, object]) -> tuple[bool, str] | None:
    label = obj.get("match")
    if not isinstance(label, bool):
        return None
    kind = obj.get("kind")
    if not isinstance(kind, str) or not kind:
        kind = "(none)"
    elif len(kind) > MAX_KIND_LEN:
        kind = "(other)"
    return label, kind


def parse_pair(line: str) -> tuple[PersonQuery, PersonQuery, tuple[bool, str] | None]:
    """One input line: both persons, and the ``(match, kind)`` labels if it has them."""
    if len(line) > MAX_LINE_LEN:
        raise InvalidInput(f"longer than {MAX_LINE_LEN} characters", reason="bad_pair")
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise InvalidInput(f"not JSON ({e.msg})", reason="bad_pair") from None
    except RecursionError:
        raise InvalidInput("nested too deeply", reason="bad_pair") from None
    if not isinstance(obj, dict) or "a" not in obj or "b" not in obj:
        raise InvalidInput("expected an object with 'a' and 'b'", reason="bad_pair")
    return parse_person(obj["a"]), parse_person(obj["b"]), _labels(obj)


def compare_stream(lines: Iterable[str], out: TextIO, *, strict: bool = False) -> CompareReport:
    """Score each pair in ``lines``, write one JSON line per good pair; return the report.

    Blank lines are skipped.  A bad line is recorded in the report (its 1-based
    number, message and reason) and skipped; with ``strict`` it raises
    :class:`InvalidInput` instead, the message starting ``line N:``.
    """
    report = CompareReport()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            a, b, labels = parse_pair(line)
        except InvalidInput as e:
            if strict:
                raise InvalidInput(f"line {number}: {e.message}", reason=e.reason) from None
            report._add_bad(BadLine(number, e.message, e.reason))
            continue
        result = score(a, b)
        out.write(json.dumps({"score": result.score, "match": result.match}) + "\n")
        report.pairs += 1
        if labels is not None:
            report._tally(labels[0], labels[1], result.match)
    return report
