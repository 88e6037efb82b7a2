"""Answer "where does this cell of a table come from?".

A cell (model, training set, test set, operation) is the video_auc of its
metrics file (dfrobust.plan.LAYOUT.metrics); that file's provenance
names the config, code and tool versions, seed and the checksums of the score
file it was computed from. The trace re-hashes those inputs now, so a score
file changed after the metrics were computed shows up as 'changed'.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dfrobust.core.io import read_json
from dfrobust.core.provenance import hash_input


def _resolve(recorded: str, results_dir: Path) -> Path | None:
    """A recorded input path: as given (relative to the working directory), or
    relative to the directory holding results/ (the workflow's working directory)."""
    path = Path(recorded)
    candidates = [path] if path.is_absolute() else [path, results_dir.parent / path]
    return next((p for p in candidates if p.exists()), None)


def _check_input(entry: dict, results_dir: Path) -> dict:
    found = _resolve(entry["path"], results_dir)
    if found is None:
        return {**entry, "status": "missing"}
    now = hash_input(found)["sha256"]
    return {**entry, "resolved": str(found), "status": "ok" if now == entry.get("sha256") else "changed"}


def _table_value(table_csv: Path | None, method: str, quality: str, operation: str) -> dict | None:
    """The cell's value in the table's .csv (Table I's: its columns are the operations)."""
    if table_csv is None or not table_csv.is_file():
        return None
    from dfrobust.reporting.tables import read_table

    table = read_table(table_csv)
    if (method, quality) not in table.index or operation not in table.columns:
        return {"file": str(table_csv), "value": None}
    value = float(table.loc[(method, quality), operation])
    return {"file": str(table_csv), "value": None if not np.isfinite(value) else value}


def trace_cell(metrics_file: str | os.PathLike, table_csv: str | os.PathLike | None = None) -> dict:
    """Value, provenance and source files of one table cell: its metrics file (and the
    table's .csv, to say whether the table shows that value). Inputs are re-hashed
    against the files on disk, relative to the folder holding results/."""
    path = Path(metrics_file)
    results_dir = next((p for p in path.parents if p.name == "results"), path.parents[-1])
    record = read_json(path)
    prov = record["provenance"]
    auc = record.get("video_auc")  # absent where no video was scored
    method, quality = record["method"], record["train_quality"]
    table = _table_value(Path(table_csv) if table_csv else None, method, quality, record["operation"])
    if table is not None and table["value"] is not None and auc is not None:
        table["matches"] = bool(abs(table["value"] - 100 * auc) <= 0.005 + 1e-9)
    return {
        "cell": {"method": method, "train_quality": quality, "test_set": record["test_set"],
                 "operation": record["operation"], "category": record.get("category")},
        "metrics_file": str(path),
        "video_auc": auc,
        "video_auc_percent": None if auc is None else round(100 * auc, 2),
        "ci": [record.get("ci_low"), record.get("ci_high")],
        "ci_level": record.get("ci_level"),
        "bootstrap": record.get("bootstrap"),
        "table1": table,
        "seed": prov["seed"],
        "code_version": prov["code_version"],
        "python": prov["python"],
        "libraries": prov["libraries"],
        "ffmpeg": prov["ffmpeg"],
        "hostname": prov["hostname"],
        "timestamp": prov["timestamp"],
        "config": prov["config"],
        "extra": prov.get("extra"),
        "inputs": [_check_input(entry, results_dir) for entry in prov["inputs"]],
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
        lines.append(f"  [{entry['status']}] {entry['path']}  sha256 {entry['sha256'][:16]}…")
    return "\n".join(lines) + "\n"
