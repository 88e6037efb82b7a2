"""Answer "where does this cell of Table I come from?".

A cell (model, training set, test set, operation) is the video_auc of
results/metrics/{model}/{trainset}/{test_set}/{operation}.json; that file's provenance
names the config, code and tool versions, seed and the checksums of the score
file it was computed from. The trace re-hashes those inputs now, so a score
file changed after the metrics were computed shows up as 'changed'.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dfrobust.core.errors import InputError
from dfrobust.core.io import read_json
from dfrobust.core.provenance import hash_input


def _resolve(recorded: str, results_dir: Path) -> Path | None:
    """A recorded input path: as given (relative to the working directory), or
    relative to the directory holding results/ (the workflow's working directory)."""
    path = Path(recorded)
    candidates = [path] if path.is_absolute() else [path, results_dir.parent / path]
    return next((p for p in candidates if p.exists()), None)


def _check_input(entry: dict, results_dir: Path) -> dict:
    found = _resolve(entry.get("path", ""), results_dir)
    if found is None:
        return {**entry, "status": "missing"}
    now = hash_input(found)["sha256"]
    return {**entry, "resolved": str(found), "status": "ok" if now == entry.get("sha256") else "changed"}


def _table_value(results_dir: Path, method: str, quality: str, operation: str) -> dict | None:
    path = results_dir / "table1.csv"
    if not path.is_file():
        return None
    from dfrobust.reporting.tables import read_table1

    table = read_table1(path)
    if (method, quality) not in table.index or operation not in table.columns:
        return {"file": str(path), "value": None}
    value = float(table.loc[(method, quality), operation])
    return {"file": str(path), "value": None if not np.isfinite(value) else value}


def metrics_path(results_dir: Path, method: str, train_quality: str, operation: str, test_set: str | None) -> Path:
    """results/metrics/{model}/{trainset}/{test_set}/{operation}.json; without a
    test set, the only one computed for that operation (Table I's, usually)."""
    model_dir = results_dir / "metrics" / method / train_quality
    if test_set is not None:
        path = model_dir / test_set / f"{operation}.json"
        if path.is_file():
            return path
        found = []
    else:
        found = sorted(model_dir.glob(f"*/{operation}.json"))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise InputError(f"{model_dir}: {operation} was computed on several test sets "
                             f"({', '.join(p.parent.name for p in found)}); name one with --test-set")
    available = sorted(f"{p.parent.name}/{p.stem}" for p in model_dir.glob("*/*.json"))
    hint = f"; computed for {method}/{train_quality}: {', '.join(available)}" if available else ""
    raise InputError(f"{model_dir}: no metrics for cell {method}/{train_quality}/{test_set or '*'}/{operation}{hint}")


def trace_cell(results_dir: str | os.PathLike, method: str, train_quality: str, operation: str,
               test_set: str | None = None) -> dict:
    """Value, provenance and source files of one table cell (Table I's by default).

    Raises InputError naming the expected metrics file (and what exists
    instead) when the cell has not been computed.
    """
    results_dir = Path(results_dir)
    path = metrics_path(results_dir, method, train_quality, operation, test_set)
    record = read_json(path)
    prov = record.get("provenance", {})
    auc = record.get("video_auc")
    table = _table_value(results_dir, method, train_quality, operation)
    if table is not None and table["value"] is not None and auc is not None:
        table["matches"] = bool(abs(table["value"] - 100 * auc) <= 0.005 + 1e-9)
    return {
        "cell": {"method": method, "train_quality": train_quality, "test_set": record.get("test_set"),
                 "operation": operation, "category": record.get("category")},
        "metrics_file": str(path),
        "video_auc": auc,
        "video_auc_percent": None if auc is None else round(100 * auc, 2),
        "ci": [record.get("ci_low"), record.get("ci_high")],
        "ci_level": record.get("ci_level"),
        "bootstrap": record.get("bootstrap"),
        "table1": table,
        "seed": prov.get("seed"),
        "code_version": prov.get("code_version"),
        "python": prov.get("python"),
        "libraries": prov.get("libraries"),
        "ffmpeg": prov.get("ffmpeg"),
        "hostname": prov.get("hostname"),
        "timestamp": prov.get("timestamp"),
        "config": prov.get("config"),
        "extra": prov.get("extra"),
        "inputs": [_check_input(entry, results_dir) for entry in prov.get("inputs", [])],
    }


def format_trace(trace: dict) -> str:
    """The trace as readable text for the command line."""
    cell = trace["cell"]
    percent = trace["video_auc_percent"]
    lines = [
        f"cell       {cell['method']} / {cell['train_quality']} / {cell['operation']}"
        + (f"  (category {cell['category']})" if cell.get("category") else ""),
        f"value      video AUC {percent:.2f} %" if percent is not None else "value      (none)",
    ]
    low, high = trace["ci"]
    if low is not None and high is not None:
        lines.append(f"interval   {100 * low:.2f}–{100 * high:.2f} % ({trace['ci_level']:.0%}, "
                     f"{trace['bootstrap']} bootstrap resamples)")
    table = trace.get("table1")
    if table:
        shown = "absent" if table["value"] is None else f"{table['value']:.2f}"
        agree = "" if "matches" not in table else ("  (matches)" if table["matches"] else "  (DIFFERS: table is stale)")
        lines.append(f"table      {table['file']}: {shown}{agree}")
    lines += [
        f"metrics    {trace['metrics_file']}",
        f"code       {trace['code_version']}",
        f"seed       {trace['seed']}",
        f"computed   {trace['timestamp']} on {trace['hostname']}, python {trace['python']}",
    ]
    ffmpeg = trace.get("ffmpeg") or {}
    if ffmpeg:
        lines.append(f"ffmpeg     {ffmpeg.get('version')}")
    libs = trace.get("libraries") or {}
    lines.append("libraries  " + ", ".join(f"{k} {v}" for k, v in libs.items() if v))
    lines.append(f"config     {trace['config']}")
    lines.append("inputs")
    for entry in trace["inputs"]:
        lines.append(f"  [{entry['status']}] {entry['path']}  sha256 {entry.get('sha256', '')[:16]}…")
    return "\n".join(lines) + "\n"
