"""Command line: `dfrobust trace` answers "where does this Table I cell come from";
`dfrobust schema BLOCK` prints what a config block may hold (its JSON schema, as YAML)."""

from __future__ import annotations

import argparse
import json
import sys

from dfrobust.core.errors import InputError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dfrobust", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    trace = sub.add_parser("trace", help="value, provenance and inputs of one Table I cell")
    trace.add_argument("method", help="detector (row), e.g. xception")
    trace.add_argument("quality", help="training quality (row), e.g. c23")
    trace.add_argument("operation", help="operation (column), e.g. c40")
    trace.add_argument("--test-set", default=None, help="test set (default: the only one with that operation, Table I's)")
    trace.add_argument("--results", default="results", help="results directory (default: results)")
    trace.add_argument("--json", action="store_true", help="print JSON instead of text")
    schema = sub.add_parser("schema", help="the schema of one config block (defaults and descriptions)")
    schema.add_argument("block", help="a top-level config key, e.g. detectors, faces, operations")
    args = parser.parse_args(argv)
    if args.command == "schema":
        return print_schema(args.block)

    from dfrobust.reporting.trace import format_trace, trace_cell

    try:
        info = trace_cell(args.results, args.method, args.quality, args.operation, args.test_set)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(info, indent=2, default=str) if args.json else format_trace(info))
    return 0


def print_schema(block: str) -> int:
    import yaml

    from dfrobust.config import generated_schemas
    from dfrobust.core.config import load_schemas

    blocks = {**load_schemas()[1], **generated_schemas()}
    if block not in blocks:
        print(f"error: no config block {block!r} (blocks: {', '.join(sorted(blocks))})", file=sys.stderr)
        return 2
    schema = {k: v for k, v in blocks[block].items() if k != "$defs"}
    print(yaml.safe_dump(schema, sort_keys=False, width=100))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
