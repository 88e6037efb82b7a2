"""Command line: `dfrobust trace` answers "where does this Table I cell come from"."""

from __future__ import annotations

import argparse
import json
import sys

from dfrobust.errors import InputError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dfrobust", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    trace = sub.add_parser("trace", help="value, provenance and inputs of one Table I cell")
    trace.add_argument("method", help="detector (row), e.g. xception")
    trace.add_argument("quality", help="training quality (row), e.g. c23")
    trace.add_argument("operation", help="operation (column), e.g. c40")
    trace.add_argument("--results", default="results", help="results directory (default: results)")
    trace.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(argv)

    from dfrobust.reporting.trace import format_trace, trace_cell

    try:
        info = trace_cell(args.results, args.method, args.quality, args.operation)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(info, indent=2, default=str) if args.json else format_trace(info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
