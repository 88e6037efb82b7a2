"""Tables declared in the config (`tables`): rows are models, columns are
(test set, operation) pairs, and each column shows one or more metrics.

Files (results/tables/{name}.*), values in percent:
  .csv     one header row: method, train_quality, then "<column>" (one metric)
           or "<column> <metric>" (several); an empty field is a missing cell
  .md      GitHub markdown; with several metrics the columns are the header
           row and the metrics the row below it
  .tex     booktabs tabular; columns as \\multicolumn over their metrics
  _ci.csv  long format: every cell's video AUC with its bootstrap interval
"""

from __future__ import annotations

import itertools
import os
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from dfrobust.core.errors import InputError
from dfrobust.core.io import write_text
from dfrobust.reporting.tables import tex_escape

# how a metric is shown in a header
LABELS = {"video_auc": "AUC", "frame_auc": "frame AUC", "video_accuracy": "ACC", "frame_accuracy": "frame ACC",
          "eer": "EER", "average_precision": "AP"}


def metric_label(metric: str) -> str:
    """video_auc -> AUC; tar_at_far_0.1pct -> TAR@0.1%; frame_pauc_10pct -> frame pAUC@10%."""
    if metric in LABELS:
        return LABELS[metric]
    if metric.startswith("log_wp_at_recall_"):
        return f"log(wP)@R={metric.rpartition('_')[2]}"
    level = "frame " if metric.startswith("frame_") else ""
    name, _, far = metric.removeprefix("frame_").rpartition("_")
    return f"{level}{ {'tar_at_far': 'TAR', 'tauc': 'tAUC', 'pauc': 'pAUC'}[name]}@{far.removesuffix('pct')}%"


def build_table(records: Sequence[Mapping], spec: Mapping) -> pd.DataFrame:
    """The table as a DataFrame in percent: index (method, train_quality),
    columns (column label, metric). A metric a record lacks (e.g. a FAR not
    in evaluation.far_levels) is an error naming it."""
    by_cell = {}
    for r in records:
        key = (r["method"], r["train_quality"], r["test_set"], r["operation"])
        if key in by_cell:
            raise InputError(f"two metric records for the same cell {'/'.join(key)}")
        by_cell[key] = r
    rows = [(r["method"], r["train_quality"]) for r in spec["rows"]]
    columns = [(c["label"], m) for c in spec["columns"] for m in spec["metrics"]]
    data = []
    for method, quality in rows:
        line = []
        for column, metric in itertools.product(spec["columns"], spec["metrics"]):
            record = by_cell.get((method, quality, column["test_set"], column["operation"]))
            if record is not None and metric not in record:
                raise InputError(f"metric {metric!r} is not in the metrics of {method}/{quality} on "
                                 f"{column['test_set']} (is its FAR in evaluation.far_levels?)")
            value = None if record is None else record[metric]
            scale = 1 if metric.startswith("log_wp") else 100  # log(wP) is not a rate
            line.append(np.nan if value is None else scale * float(value))
        data.append(line)
    return pd.DataFrame(data, index=pd.MultiIndex.from_tuples(rows, names=["method", "train_quality"]),
                        columns=pd.MultiIndex.from_tuples(columns, names=["column", "metric"]), dtype=float)


def _fmt(value: float, decimals: int, missing: str) -> str:
    return missing if not np.isfinite(value) else f"{value:.{decimals}f}"


def _header(column: str, metric: str, single: bool) -> str:
    return column if single else f"{column} {metric_label(metric)}"


def table_csv(table: pd.DataFrame, decimals: int) -> str:
    single = table.columns.get_level_values("metric").nunique() == 1
    headers = [_header(c, m, single) for c, m in table.columns]
    lines = [",".join(["method", "train_quality", *(f'"{h}"' if "," in h else h for h in headers)])]
    for (method, quality), row in table.iterrows():
        lines.append(",".join([method, quality, *(_fmt(v, decimals, "") for v in row.to_numpy(dtype=float))]))
    return "\n".join(lines) + "\n"


def table_markdown(table: pd.DataFrame, decimals: int, title: str) -> str:
    single = table.columns.get_level_values("metric").nunique() == 1
    top, second, previous = ["Method", "Train"], ["", ""], None
    for column, metric in table.columns:
        top.append(column if column != previous or single else "")
        second.append(metric_label(metric))
        previous = column
    lines = ["| " + " | ".join(top) + " |", "|" + "|".join([":--", ":--"] + ["--:"] * len(table.columns)) + "|"]
    if not single:
        lines.append("| " + " | ".join(second) + " |")
    for (method, quality), row in table.iterrows():
        lines.append("| " + " | ".join([method, quality, *(_fmt(v, decimals, "–") for v in row.to_numpy(dtype=float))]) + " |")
    metrics = ", ".join(dict.fromkeys(metric_label(m) for m in table.columns.get_level_values("metric")))
    return f"**{title}**\n\n" + "\n".join(lines) + f"\n\n{metrics} in percent.\n"


def table_latex(table: pd.DataFrame, decimals: int, title: str) -> str:
    groups = [(c, len(list(g))) for c, g in itertools.groupby(c for c, _ in table.columns)]
    top, rules, start = ["", ""], [], 3
    for column, width in groups:
        top.append(rf"\multicolumn{{{width}}}{{c}}{{{tex_escape(column)}}}")
        rules.append(rf"\cmidrule(lr){{{start}-{start + width - 1}}}")
        start += width
    second = ["Method", "Train"] + [tex_escape(metric_label(m)) for _, m in table.columns]
    lines = [f"% {tex_escape(title)}", r"\begin{tabular}{ll" + "r" * len(table.columns) + "}", r"\toprule",
             " & ".join(top) + r" \\", "".join(rules), " & ".join(second) + r" \\", r"\midrule"]
    for (method, quality), row in table.iterrows():
        lines.append(" & ".join([tex_escape(method), tex_escape(quality),
                                 *(_fmt(v, decimals, "--") for v in row.to_numpy(dtype=float))]) + r" \\")
    return "\n".join(lines + [r"\bottomrule", r"\end{tabular}"]) + "\n"


def ci_table(records: Sequence[Mapping], spec: Mapping) -> pd.DataFrame:
    """Every cell's video AUC and bootstrap interval (percent), in table order."""
    by_cell = {(r["method"], r["train_quality"], r["test_set"], r["operation"]): r for r in records}
    out = []
    for row, column in itertools.product(spec["rows"], spec["columns"]):
        r = by_cell.get((row["method"], row["train_quality"], column["test_set"], column["operation"]))
        if r is None:
            continue
        out.append({"method": row["method"], "train_quality": row["train_quality"], "column": column["label"],
                    "test_set": column["test_set"], "operation": column["operation"],
                    **{k: None if r.get(k) is None else 100 * float(r[k]) for k in ("video_auc", "ci_low", "ci_high")},
                    "ci_level": r.get("ci_level"), "bootstrap": r.get("bootstrap")})
    return pd.DataFrame(out, columns=["method", "train_quality", "column", "test_set", "operation", "video_auc",
                                      "ci_low", "ci_high", "ci_level", "bootstrap"])


def write_table(records: Sequence[Mapping], spec: Mapping, decimals: int, csv: str | os.PathLike,
                md: str | os.PathLike, tex: str | os.PathLike, ci_csv: str | os.PathLike) -> pd.DataFrame:
    """Build one declared table and write its four files atomically."""
    table = build_table(records, spec)
    title = spec.get("title") or spec["name"]
    write_text(csv, table_csv(table, decimals))
    write_text(md, table_markdown(table, decimals, title))
    write_text(tex, table_latex(table, decimals, title))
    write_text(ci_csv, ci_table(records, spec).to_csv(index=False, float_format=f"%.{decimals}f"))
    return table
