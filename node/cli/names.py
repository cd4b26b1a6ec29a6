"""``bxnode names compare`` and ``bxnode query mrz``: person matching from the console."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from node.cli.main import CliError, _run_query, add_command, add_group, get_group, query_args
from node.core.errors import BxError

__all__ = ["register"]


def cmd_names_compare(args: argparse.Namespace) -> int:
    from node.matching import compare_stream

    path = Path(args.file)
    if args.file != "-" and not path.is_file():
        raise CliError(f"{path} is not a readable file")
    try:
        if args.file == "-":
            n = compare_stream(sys.stdin, sys.stdout)
        else:
            with path.open(encoding="utf-8") as f:
                n = compare_stream(f, sys.stdout)
    except UnicodeDecodeError:
        raise CliError(f"{path.name} is not UTF-8 text") from None
    except BxError as exc:
        raise CliError(str(exc)) from None
    print(f"compared {n} pair(s)", file=sys.stderr)
    return 0


def cmd_query_mrz(args: argparse.Namespace) -> int:
    from node.core.model import QueryKind
    from node.matching import parse_mrz

    text = Path(args.file).read_text() if args.file else sys.stdin.read()
    try:
        mrz = parse_mrz(text)
    except BxError as exc:
        raise CliError(f"the MRZ is not valid: {exc}") from None
    items: list[Any] = [mrz.document] if args.document_only else [mrz.document, mrz.person]
    return _run_query(args, QueryKind.BATCH if len(items) > 1 else QueryKind.DOCUMENT, items)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    names = add_group(sub, "names", "person-name matching tools")
    sp = add_command(names, "compare", cmd_names_compare,
                     "score JSON Lines of person pairs: one {score, match} line per pair",
                     common)
    sp.add_argument("file", help="JSON Lines of {\"a\": PERSON, \"b\": PERSON}, or - for stdin")

    query = get_group(sub, "query")
    sp = add_command(query, "mrz", cmd_query_mrz,
                     "check a machine-readable zone (TD1 or TD3): its document and its holder",
                     common)
    sp.add_argument("file", nargs="?", help="file holding the MRZ lines (default: stdin)")
    sp.add_argument("--document-only", action="store_true",
                    help="ask about the document only, not the holder")
    query_args(sp)
