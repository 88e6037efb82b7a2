"""Command line: `dfrobust trace` answers "where does this table cell come from";
`dfrobust schema BLOCK` prints what a config block may hold (its JSON schema, as YAML);
`dfrobust inspect-weights FILE` says which weights format and detector a file fits."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dfrobust.core.errors import InputError
from dfrobust.plan import LAYOUT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dfrobust", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    trace = sub.add_parser("trace", help="value, provenance and inputs of one Table I cell")
    trace.add_argument("method", help="detector (row), e.g. xception")
    trace.add_argument("quality", help="training quality (row), e.g. c23")
    trace.add_argument("operation", help="operation (column), e.g. c40")
    trace.add_argument("--test-set", default=None, help="test set (default: the only one with that operation, Table I's)")
    trace.add_argument("--table", default="table1", help="the table whose .csv shows the cell (default: table1)")
    trace.add_argument("--results", default="results", help="results directory (default: results)")
    trace.add_argument("--json", action="store_true", help="print JSON instead of text")
    schema = sub.add_parser("schema", help="the schema of one config block (defaults and descriptions)")
    schema.add_argument("block", help="a top-level config key, e.g. detectors, faces, operations")
    inspect = sub.add_parser("inspect-weights", help="the weights format and detector a file fits, and the keys that do not")
    inspect.add_argument("file", help="a weights file (.pt, .pth, .tar, .safetensors)")
    inspect.add_argument("--method", default=None, help="only this detector")
    inspect.add_argument("--format", default=None, dest="fmt", help="only this format")
    inspect.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(argv)
    if args.command == "schema":
        return print_schema(args.block)
    if args.command == "inspect-weights":
        return inspect_weights(args.file, args.method, args.fmt, args.json)

    from dfrobust.reporting.trace import format_trace, trace_cell

    try:
        path = metrics_path(Path(args.results), args.method, args.quality, args.operation, args.test_set)
        info = trace_cell(path, in_results(Path(args.results), LAYOUT.table_csv.format(table=LAYOUT.table_stem(args.table))))
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(info, indent=2, default=str) if args.json else format_trace(info))
    return 0


def in_results(results: Path, path: str) -> Path:
    """A layout path (results/...) under another results folder."""
    return results / Path(path).relative_to("results")


def metrics_path(results: Path, method: str, train_quality: str, operation: str, test_set: str | None) -> Path:
    """The metrics file of a cell; without a test set, the only one computed for that
    operation (Table I's, usually). An InputError names what exists instead."""
    pattern = in_results(results, LAYOUT.metrics.format(model=method, trainset=train_quality, test_set=test_set or "*",
                                                        operation=operation))
    found = sorted(pattern.parent.parent.glob(f"{pattern.parent.name}/{pattern.name}"))
    if len(found) == 1:
        return found[0]
    model_dir = pattern.parent.parent
    if len(found) > 1:
        raise InputError(f"{model_dir}: {operation} was computed on several test sets "
                         f"({', '.join(p.parent.name for p in found)}); name one with --test-set")
    available = sorted(f"{p.parent.name}/{p.stem}" for p in model_dir.glob("*/*.json"))
    hint = f"; computed for {method}/{train_quality}: {', '.join(available)}" if available else ""
    raise InputError(f"{model_dir}: no metrics for cell {method}/{train_quality}/{test_set or '*'}/{operation}{hint}")


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


def inspect_weights(path: str, method: str | None, fmt: str | None, as_json: bool) -> int:
    """Print what a weights file fits (exit 0), or the nearest fits and their keys (exit 1);
    a file refused or unreadable: exit 2."""
    from dfrobust.detectors.inference import inspect_file

    try:
        found = inspect_file(path, method, fmt)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    fits = [c for c in found["candidates"] if c["fits"]]
    if as_json:
        print(json.dumps(found, indent=2, default=str))
        return 0 if fits else 1
    print(f"{found['file']}: {found['holds']}; read as tensors only (torch.load weights_only=True)")
    for c in fits:
        epoch = f", epoch {c['epoch']}" if c["epoch"] is not None else ""
        print(f"fits: format {c['format']}, detector {c['method']} ({c['tensors']} tensors{epoch})")
        print(f"  settings its rows take: {json.dumps(c['settings'])}")
        print(f"  model row: {{method: {c['method']}, weights: {found['file']}, format: {c['format']}, name: <a name>}}")
    if not fits:
        print("fits no detector in any format" + (f" (asked: {method or 'any detector'}, {fmt or 'any format'})"
                                                   if method or fmt else "") + "; nearest:")
        for c in found["candidates"][:3]:
            print(f"  format {c['format']}, detector {c['method']}: {c['problem']}")
    return 0 if fits else 1


if __name__ == "__main__":
    raise SystemExit(main())
