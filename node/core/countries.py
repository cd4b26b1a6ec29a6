"""ICAO 9303 issuing-state and nationality codes.

ICAO Doc 9303 Part 3 section 5 uses ISO 3166-1 alpha-3 codes, plus a few of
its own (Germany is ``D``; ``XXA``..``XXX`` for stateless and unspecified
persons; UN and EU organisations; British nationality categories).
"""

from __future__ import annotations

import functools

import pycountry

__all__ = ["NATIONALITY_ONLY", "is_icao_code", "is_icao_issuer"]

ICAO_SPECIAL_CODES = frozenset(
    {
        "D",  # Germany (Doc 9303 Part 3, 5.1)
        "GBD", "GBN", "GBO", "GBP", "GBS",  # British nationality categories
        "UNO", "UNA", "UNK",  # United Nations
        "EUE",  # European Union
        "XBA", "XIM", "XCC", "XCO", "XEC", "XPO", "XES", "XMP", "XOM", "XDC",
        "XXA", "XXB", "XXC", "XXX",  # stateless, refugee, unspecified
        "RKS",  # Kosovo
    }
)


@functools.cache
def _iso_codes() -> frozenset[str]:
    return frozenset(c.alpha_3 for c in pycountry.countries)


#: Codes for a person's nationality only (Doc 9303 Part 3, 5.1): a stateless person
#: (XXA), a refugee (XXB, XXC) or an unspecified nationality (XXX).  No state issues
#: documents under them: a stateless person's or a refugee's travel document carries the
#: code of the state that issued it.
NATIONALITY_ONLY = frozenset({"XXA", "XXB", "XXC", "XXX"})


def is_icao_code(code: str) -> bool:
    """True when ``code`` is an ICAO 9303 three-letter code for a nationality (or ``D``)."""
    return code in ICAO_SPECIAL_CODES or code in _iso_codes()


def is_icao_issuer(code: str) -> bool:
    """True when ``code`` may name the issuing state or organisation of a document."""
    return code not in NATIONALITY_ONLY and is_icao_code(code)
