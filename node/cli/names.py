"""``bxnode names compare`` and ``bxnode query mrz``: person matching from the console."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.cli.main import CliError, _run_query, add_command, add_group, get_group, query_args
from node.core.errors import BxError

if TYPE_CHECKING:
    from node.matching.compare import CompareReport

__all__ = ["register"]


def _print_report(report: CompareReport) -> None:
    """The summary on stderr: counts, then figures overall and per kind for labelled input."""
    print(f"compared {report.pairs} pair(s)"
          + (f"; {report.bad_count} bad line(s) skipped" if report.bad_count else ""),
          file=sys.stderr)
    if not report.labelled:
        return
    print(f"labelled {report.labelled}: precision {report.precision:.4f}, recall "
          f"{report.recall:.4f}, F1 {report.f1:.4f} (tp {report.tp}, fp {report.fp}, "
          f"fn {report.fn}, tn {report.tn})", file=sys.stderr)
    for key in sorted(report.kinds):
        k = report.kinds[key]
        what = "recall" if k.label else "rejected"
        print(f"  {key:<40} {k.correct:>5}/{k.pairs:<5} {what} {k.correct / k.pairs:.4f}",
              file=sys.stderr)


def cmd_names_compare(args: argparse.Namespace) -> int:
    """Exit 0 when every line was scored; 1 when any line was bad (the others are still
    scored and written, unless ``--strict``, which stops at the first)."""
    import json

    from node.matching import compare_stream

    path = Path(args.file)
    if args.file != "-" and not path.is_file():
        raise CliError(f"{path} is not a readable file")
    try:
        if args.file == "-":
            report = compare_stream(sys.stdin, sys.stdout, strict=args.strict)
        else:
            with path.open(encoding="utf-8") as f:
                report = compare_stream(f, sys.stdout, strict=args.strict)
    except UnicodeDecodeError:
        raise CliError(f"{path.name} is not UTF-8 text") from None
    except BxError as exc:
        raise CliError(f"{exc} ({exc.reason}); stopped there (--strict)") from None
    for bad in report.bad_lines:
        print(f"bxnode: {bad}", file=sys.stderr)
    if report.bad_count > len(report.bad_lines):
        print(f"bxnode: ... and {report.bad_count - len(report.bad_lines)} more bad line(s)",
              file=sys.stderr)
    _print_report(report)
    if args.report:
        Path(args.report).write_text(json.dumps(report.as_dict(), indent=1) + "\n",
                                     encoding="utf-8")
    return 1 if report.bad_count else 0


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
    sp.add_argument("--strict", action="store_true",
                    help="stop at the first bad line (default: report it and carry on; "
                         "either way a bad line makes the exit status 1)")
    sp.add_argument("--report", metavar="FILE",
                    help="also write the summary as JSON: counts, bad lines and, for "
                         "labelled pairs, precision, recall, F1 and figures per kind")

    query = get_group(sub, "query")
    sp = add_command(query, "mrz", cmd_query_mrz,
                     "check a machine-readable zone (TD1 or TD3): its document and its holder",
                     common)
    sp.add_argument("file", nargs="?", help="file holding the MRZ lines (default: stdin)")
    sp.add_argument("--document-only", action="store_true",
                    help="ask about the document only, not the holder")
    query_args(sp)
