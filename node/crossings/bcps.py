"""The border crossing points (BCPs) file: which BCPs exist and which face which.

One JSON file can describe a whole region (``deployments/demo/bcps.json``); each
node imports it with ``bxnode crossings bcps FILE`` and keeps all of it, so it
knows its own BCPs and its neighbours' BCPs facing them::

    {"version": 1,
     "bcps": [{"code": "KAZ-KORDAI", "country": "KAZ", "name": "Kordai",
               "modes": ["road"]}, ...],
     "pairs": [{"a": "KAZ-KORDAI", "b": "KGZ-AKZHOL", "section": "KAZ-KGZ"}, ...]}

A pair says the two BCPs face each other across the border; ``section`` names the
stretch of border they are on (a question may name a section instead of one BCP).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.core.errors import BxError, InvalidInput
from node.core.model import validate_state
from node.crossings.model import TravelMode, validate_bcp_code

__all__ = ["MAX_BCPS", "Bcp", "BcpMap", "Facing", "parse_bcp_file"]

MAX_BCPS = 2000
_MAX_FILE_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Bcp:
    code: str
    country: str
    name: str
    modes: tuple[TravelMode, ...]


@dataclass(frozen=True, slots=True)
class Facing:
    """``own`` (this side) faces ``other`` (the neighbour's BCP) on ``section``."""

    own: str
    other: str
    section: str


@dataclass(frozen=True, slots=True)
class BcpMap:
    bcps: dict[str, Bcp]
    pairs: tuple[tuple[str, str, str], ...]

    def country_of(self, code: str) -> str | None:
        b = self.bcps.get(code)
        return None if b is None else b.country

    def facing(self, country: str) -> list[Facing]:
        """Every pair with one side in ``country``, seen from that side."""
        out = []
        for a, b, section in self.pairs:
            if self.bcps[a].country == country:
                out.append(Facing(a, b, section))
            if self.bcps[b].country == country:
                out.append(Facing(b, a, section))
        return out


def _bad(message: str) -> InvalidInput:
    return InvalidInput(message, reason="bad_bcp_file")


def parse_bcp_file(path: Path) -> BcpMap:
    """Read and validate the whole file; raise InvalidInput(bad_bcp_file) naming the defect."""
    if path.stat().st_size > _MAX_FILE_BYTES:
        raise _bad(f"{path.name} is larger than {_MAX_FILE_BYTES} bytes")
    try:
        doc: Any = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad(f"{path.name} is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("version") != 1:
        raise _bad(f"{path.name} must be an object with \"version\": 1")
    raw_bcps, raw_pairs = doc.get("bcps"), doc.get("pairs")
    if not isinstance(raw_bcps, list) or not isinstance(raw_pairs, list):
        raise _bad(f"{path.name} needs lists \"bcps\" and \"pairs\"")
    if len(raw_bcps) > MAX_BCPS or len(raw_pairs) > MAX_BCPS:
        raise _bad(f"{path.name} lists more than {MAX_BCPS} BCPs or pairs")
    bcps: dict[str, Bcp] = {}
    for i, b in enumerate(raw_bcps, start=1):
        try:
            if not isinstance(b, dict):
                raise _bad("not an object")
            code = validate_bcp_code(str(b.get("code", "")))
            country = validate_state(str(b.get("country", "")), "country")
            if not code.startswith(country + "-"):
                raise _bad(f"code {code} does not start with its country {country}")
            name = str(b.get("name", "")).strip()
            if not 0 < len(name) <= 100:
                raise _bad("name must be 1-100 characters")
            modes = tuple(TravelMode(m) for m in b.get("modes", []))
            if not modes:
                raise _bad("modes must list road, rail, air or foot")
            if code in bcps:
                raise _bad(f"{code} is listed twice")
        except (BxError, ValueError) as exc:
            raise _bad(f"{path.name}: bcps[{i}]: {exc}") from None
        bcps[code] = Bcp(code, country, name, modes)
    pairs: list[tuple[str, str, str]] = []
    seen: set[frozenset[str]] = set()
    for i, p in enumerate(raw_pairs, start=1):
        try:
            if not isinstance(p, dict):
                raise _bad("not an object")
            a, b = str(p.get("a", "")), str(p.get("b", ""))
            section = validate_bcp_code(str(p.get("section", "")), "border section")
            for code in (a, b):
                if code not in bcps:
                    raise _bad(f"{code or '(empty)'} is not in bcps")
            if bcps[a].country == bcps[b].country:
                raise _bad(f"{a} and {b} are in the same country")
            if frozenset((a, b)) in seen:
                raise _bad(f"{a} / {b} is listed twice")
        except BxError as exc:
            raise _bad(f"{path.name}: pairs[{i}]: {exc}") from None
        seen.add(frozenset((a, b)))
        pairs.append((a, b, section))
    return BcpMap(bcps=bcps, pairs=tuple(pairs))
