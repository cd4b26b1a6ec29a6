"""``bxnode names compare``: score JSON Lines of person pairs (the CLI wires I/O).

Input, one JSON object a line: ``{"a": PERSON, "b": PERSON}`` (other top-level
keys such as ``match`` and ``kind`` of the labelled set are ignored), where
PERSON is ``{"given", "family", "patronymic" (or null), "dob", "nationality",
"sex"}``.  Output, one line per pair in order: ``{"score": s, "match": m}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TextIO

from node.core.errors import InvalidInput
from node.core.model import PartialDate, PersonQuery, Sex
from node.matching.scoring import score

__all__ = ["MAX_LINE_LEN", "compare_stream", "parse_person"]

#: Longest input line accepted, in characters.
MAX_LINE_LEN = 4096
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


def parse_pair(line: str) -> tuple[PersonQuery, PersonQuery]:
    if len(line) > MAX_LINE_LEN:
        raise InvalidInput(f"longer than {MAX_LINE_LEN} characters", reason="bad_pair")
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise InvalidInput(f"not JSON ({e.msg})", reason="bad_pair") from None
    if not isinstance(obj, dict) or "a" not in obj or "b" not in obj:
        raise InvalidInput("expected an object with 'a' and 'b'", reason="bad_pair")
    return parse_person(obj["a"]), parse_person(obj["b"])


def compare_stream(lines: Iterable[str], out: TextIO) -> int:
    """Score each pair in ``lines``, write one JSON line each; return how many.

    Blank lines are skipped.  A bad line raises :class:`InvalidInput` whose
    message starts with ``line N:`` (1-based) and keeps the original reason.
    """
    count = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            a, b = parse_pair(line)
        except InvalidInput as e:
            raise InvalidInput(f"line {number}: {e.message}", reason=e.reason) from None
        result = score(a, b)
        out.write(json.dumps({"score": result.score, "match": result.match}) + "\n")
        count += 1
    return count
