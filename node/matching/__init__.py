"""Person matching across scripts and spellings (issue 6); sans-I/O.

* :mod:`~node.matching.transliterate`: names as written → Latin keys.
* :mod:`~node.matching.mrz`: TD1/TD3 machine-readable zones → queries.
* :mod:`~node.matching.scoring`: two persons → score and explanation.
* :mod:`~node.matching.index`: an in-memory watchlist index.
* :mod:`~node.matching.compare`: JSON Lines of pairs → scores (for the CLI).
"""

from node.matching.compare import BadLine, CompareReport, compare_stream, parse_person
from node.matching.index import Candidate, PersonIndex
from node.matching.mrz import MrzFields, MrzResult, check_digit, parse_mrz, read_mrz_fields
from node.matching.scoring import DEFAULT_THRESHOLD, MatchResult, score
from node.matching.transliterate import (
    SYSTEMS,
    fold_latin,
    is_cyrillic,
    name_keys,
    transliterate,
    transliterate_all,
)

__all__ = [
    "DEFAULT_THRESHOLD",
    "SYSTEMS",
    "BadLine",
    "Candidate",
    "CompareReport",
    "MatchResult",
    "MrzFields",
    "MrzResult",
    "PersonIndex",
    "check_digit",
    "compare_stream",
    "fold_latin",
    "is_cyrillic",
    "name_keys",
    "parse_mrz",
    "parse_person",
    "read_mrz_fields",
    "score",
    "transliterate",
    "transliterate_all",
]
