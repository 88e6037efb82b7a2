"""Every table of the run, Table I included: rows are models, columns are
(test set, operation) pairs, each column shows one or more metrics, and a
table may end with an Average column (per metric, over the columns marked
`averaged`). A table arrives as plain data (dfrobust.plan.Table.spec):

    {name, title, note, average, decimals, metrics,
     rows:    [{method, train_quality, label}],
     columns: [{test_set, operation, label, category, shown, averaged}]}

Headers: a table whose columns have categories (Table I: each operation's
category) shows the categories above the column labels; otherwise, with
several metrics, the column labels above the metrics. A header row that would
say the same in every column is left out.

Rows are named by model (method) and training set; a row with a `label` (the paper's, e.g.
"r = 0.05") shows it in place of the model's name in the .md and .tex, and a table with a
labelled row has a `label` column after train_quality in its .csv and _ci.csv.

Files (values in percent, except log(wP)):
  .csv     one header row: method, train_quality, [label,] then one field per shown cell column
           ("<label>", or "<label> <metric>" with several metrics; "average"); an empty
           field is a missing cell, "n/a" a cell whose test set had no video left to score
  .md      GitHub markdown (an optional bold title, the table, the note and the n/a footnotes)
  .tex     booktabs tabular, the headers as \\multicolumn groups
  _ci.csv  long format: every cell's video AUC with its bootstrap interval (hidden columns too)
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from dfrobust.core.errors import InputError
from dfrobust.core.io import write_text

AVERAGE = "average"
NA = "n/a"
# how a metric is shown in a header
LABELS = {"video_auc": "AUC", "frame_auc": "frame AUC", "video_accuracy": "ACC", "frame_accuracy": "frame ACC",
          "video_log_loss": "LogLoss", "frame_log_loss": "frame LogLoss", "eer": "EER", "average_precision": "AP"}


def scaled(metric: str) -> bool:
    """Whether a metric is a rate shown in percent (not log(wP), not a log-loss)."""
    return not (metric.startswith("log_wp") or metric.endswith("log_loss"))


def metric_label(metric: str) -> str:
    """video_auc -> AUC; tar_at_far_0.1pct -> TAR@0.1%; frame_pauc_10pct -> frame pAUC@10%."""
    if metric in LABELS:
        return LABELS[metric]
    if metric.startswith("log_wp_at_recall_"):
        return f"log(wP)@R={metric.rpartition('_')[2]}"
    if metric.startswith("recall_at_recall_"):  # the recall the log(wP) threshold achieves
        return f"recall@R={metric.rpartition('_')[2]}"
    level = "frame " if metric.startswith("frame_") else ""
    name, _, far = metric.removeprefix("frame_").rpartition("_")
    names = {'tar_at_far': 'TAR', 'tauc': 'tAUC', 'tauc_vtx': 'tAUC(vertices)', 'pauc': 'pAUC'}
    return f"{level}{names[name]}@{far.removesuffix('pct')}%"


@dataclass(frozen=True)
class Cell:
    """One shown column of numbers: a table column (or the Average) under one metric."""

    category: str | None  # the header above it in a categorised table (Table I); "" for the Average there
    label: str  # its column's label ("Average" for the Average)
    metric: str
    column: int | None  # index into spec["columns"]; None: the Average

    @property
    def is_average(self) -> bool:
        return self.column is None


def _by_cell(records: Sequence[Mapping]) -> dict[tuple[str, str, str, str], Mapping]:
    by_cell = {}
    for r in records:
        key = (r["method"], r["train_quality"], r["test_set"], r["operation"])
        if key in by_cell:
            raise InputError(f"two metric records for the same cell {'/'.join(key)}")
        by_cell[key] = r
    return by_cell


def layout(spec: Mapping) -> list[Cell]:
    """The shown cells of a table, in order: each shown column under each metric, then the Average's."""
    categorised = any(c["category"] for c in spec["columns"])
    cells = [Cell(column["category"], column["label"], metric, i) for i, column in enumerate(spec["columns"])
             if column["shown"] for metric in spec["metrics"]]
    if spec["average"]:
        cells += [Cell("" if categorised else None, "Average", metric, None) for metric in spec["metrics"]]
    return cells


def headers(cells: list[Cell], several_metrics: bool) -> tuple[list[str | None], list[str]]:
    """(groups, labels) of the cells: categories above column labels (Table I), else column labels
    above metric labels."""
    if any(c.category is not None for c in cells):
        return [c.category for c in cells], [c.label for c in cells]
    return [c.label for c in cells], [metric_label(c.metric) for c in cells]


def csv_header(cell: Cell, several_metrics: bool) -> str:
    label = AVERAGE if cell.is_average else cell.label
    return f"{label} {metric_label(cell.metric)}" if several_metrics and cell.category is None else label


def build_table(records: Sequence[Mapping], spec: Mapping) -> tuple[pd.DataFrame, dict]:
    """(values, notes): the table as a DataFrame (index (method, train_quality), one column
    per cell of `layout`; NaN where a cell is missing or not scored) and, per (row, cell)
    with no video scored, the reason. A metric a record lacks (e.g. a FAR not in
    evaluation.far_levels) is an error naming it; the Average is over unrounded values
    and missing when one of its cells is."""
    by_cell = _by_cell(records)
    cells = layout(spec)
    rows = [(r["method"], r["train_quality"]) for r in spec["rows"]]
    data, notes = [], {}
    for method, quality in rows:
        values = {}
        for i, column in enumerate(spec["columns"]):
            record = by_cell.get((method, quality, column["test_set"], column["operation"]))
            for metric in spec["metrics"]:
                if record is None:
                    values[(i, metric)] = np.nan
                elif record.get("status") == "no_video_scored":
                    values[(i, metric)] = np.nan
                    notes[(method, quality, i)] = record["reason"]
                else:
                    if metric not in record:
                        raise InputError(f"metric {metric!r} is not in the metrics of {method}/{quality} on "
                                         f"{column['test_set']} (is its FAR in evaluation.far_levels?)")
                    scale = 100 if scaled(metric) else 1
                    values[(i, metric)] = np.nan if record[metric] is None else scale * float(record[metric])
        line = []
        for cell in cells:
            if cell.column is not None:
                line.append(values[(cell.column, cell.metric)])
            else:
                averaged = [values[(i, cell.metric)] for i, c in enumerate(spec["columns"]) if c["averaged"]]
                # no skipping: an average over a hole would silently change meaning
                line.append(float(np.mean(averaged)) if averaged else np.nan)
        data.append(line)
    index = pd.MultiIndex.from_tuples(rows, names=["method", "train_quality"])
    frame = pd.DataFrame(data, index=index, columns=range(len(cells)), dtype=float)
    frame.attrs["cells"] = cells
    return frame, notes


def _fmt(value: float, decimals: int, missing: str) -> str:
    return missing if not np.isfinite(value) else f"{value:.{decimals}f}"


def _csv_field(text: str) -> str:
    text = str(text)
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if any(ch in text for ch in ',"\n') else text


def _values(table: pd.DataFrame, notes: dict, spec: Mapping, missing: str, marked: bool) -> list[tuple[tuple, list[str]]]:
    """Each row's cells as text: `missing` for a missing cell, n/a (with its footnote mark when
    `marked`) where no video was scored."""
    cells, decimals = table.attrs["cells"], spec["decimals"]
    marks = _footnote_marks(notes) if marked else {reason: "" for reason in notes.values()}
    out = []
    for (method, quality), row in table.iterrows():
        texts = []
        for cell, value in zip(cells, row.to_numpy(dtype=float)):
            key = (method, quality, cell.column)
            texts.append(NA + marks[notes[key]] if key in notes else _fmt(value, decimals, missing))
        out.append(((method, quality), texts))
    return out


def _labels(spec: Mapping) -> dict[tuple[str, str], str] | None:
    """(method, train_quality) -> the row's label ("" where it has none); None when no row has one."""
    if all(row["label"] is None for row in spec["rows"]):
        return None
    return {(row["method"], row["train_quality"]): row["label"] or "" for row in spec["rows"]}


def _shown_name(labels: dict | None, method: str, quality: str) -> str:
    """What the .md and .tex call a row: its label, else its model's name."""
    return (labels or {}).get((method, quality)) or method


def _footnote_marks(notes: dict) -> dict[str, str]:
    """A mark per distinct reason, in order of first appearance (* for one, *1 *2 ... for several)."""
    reasons = list(dict.fromkeys(notes.values()))
    return {r: "*" if len(reasons) == 1 else f"*{i}" for i, r in enumerate(reasons, 1)}


def _note(spec: Mapping) -> str:
    """The line under the table: its own note, or which metrics it shows; then what the Average is over."""
    if spec["note"] is not None:
        note = spec["note"]
    else:
        rates = [metric_label(m) for m in spec["metrics"] if scaled(m)]
        note = ", ".join(dict.fromkeys(rates)) + " in percent." if rates else ""
    if spec["average"]:
        over = [c["label"] for c in spec["columns"] if c["averaged"]]
        left = [c["label"] for c in spec["columns"] if not c["averaged"]]
        note += f" Average: mean over {', '.join(over)}" + (f" ({', '.join(left)} excluded)." if left else ".")
    return note


def table_csv(table: pd.DataFrame, notes: dict, spec: Mapping) -> str:
    cells = table.attrs["cells"]
    several = len(spec["metrics"]) > 1
    row_labels = _labels(spec)
    label_field = ["label"] if row_labels else []
    lines = [",".join(["method", "train_quality", *label_field, *(_csv_field(csv_header(c, several)) for c in cells)])]
    for (method, quality), texts in _values(table, notes, spec, "", marked=False):
        label = [_csv_field(row_labels[(method, quality)])] if row_labels else []
        lines.append(",".join([_csv_field(method), _csv_field(quality), *label, *texts]))
    return "\n".join(lines) + "\n"


def _markdown_header(cells: list[Cell], several_metrics: bool) -> list[list[str]]:
    """The header rows of the .md table: groups (blank where a group continues) above labels
    (Table I's operations in bold); one row of column labels for one metric without categories."""
    groups, labels = headers(cells, several_metrics)
    if cells and cells[0].category is None and not several_metrics:
        return [groups]
    shown, previous = [], None
    for group in groups:
        shown.append(group if group != previous else "")
        previous = group
    if cells and cells[0].category is not None:
        labels = [f"**{label}**" for label in labels]
    return [[g or "" for g in shown], labels]


def table_markdown(table: pd.DataFrame, notes: dict, spec: Mapping) -> str:
    cells = table.attrs["cells"]
    header = _markdown_header(cells, len(spec["metrics"]) > 1)
    lines = ["| " + " | ".join(["Method", "Train", *header[0]]) + " |",
             "|" + "|".join([":--", ":--"] + ["--:"] * len(cells)) + "|"]
    for extra in header[1:]:
        lines.append("| " + " | ".join(["", "", *extra]) + " |")
    row_labels = _labels(spec)
    for (method, quality), texts in _values(table, notes, spec, "–", marked=True):
        lines.append("| " + " | ".join([_shown_name(row_labels, method, quality), str(quality), *texts]) + " |")
    title = f"**{spec['title']}**\n\n" if spec["title"] else ""
    footnotes = "".join(f"\n{mark} {reason}\n" for reason, mark in _footnote_marks(notes).items())
    return title + "\n".join(lines) + "\n\n" + _note(spec) + "\n" + footnotes


_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def tex_escape(text: str) -> str:
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in str(text))


def table_latex(table: pd.DataFrame, notes: dict, spec: Mapping) -> str:
    """booktabs tabular: the groups as \\multicolumn (with \\cmidrule) above the labels."""
    cells = table.attrs["cells"]
    groups, labels = headers(cells, len(spec["metrics"]) > 1)
    top, rules, start = ["", ""], [], 3
    for group, members in itertools.groupby(groups):
        width = len(list(members))
        if group:
            top.append(rf"\multicolumn{{{width}}}{{c}}{{{tex_escape(group)}}}")
            rules.append(rf"\cmidrule(lr){{{start}-{start + width - 1}}}")
        else:
            top += [""] * width
        start += width
    comment = tex_escape(spec["title"]) if spec["title"] else _note(spec)
    lines = [f"% {comment}", r"\begin{tabular}{ll" + "r" * len(cells) + "}", r"\toprule",
             " & ".join(top) + r" \\", "".join(rules),
             " & ".join(["Method", "Train", *(tex_escape(label) for label in labels)]) + r" \\", r"\midrule"]
    row_labels = _labels(spec)
    for (method, quality), texts in _values(table, notes, spec, "--", marked=True):
        name = tex_escape(_shown_name(row_labels, method, quality))
        lines.append(" & ".join([name, tex_escape(quality), *(t.replace("*", r"$^*$") for t in texts)]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [f"% {mark} {reason}" for reason, mark in _footnote_marks(notes).items()]
    return "\n".join(lines) + "\n"


def ci_table(records: Sequence[Mapping], spec: Mapping) -> pd.DataFrame:
    """Every cell's video AUC and bootstrap interval (percent), in table order, hidden
    columns too. A table whose columns have categories (Table I) names them by category
    and operation, the others by label, test set and operation; a cell with no video
    scored has its reason in `note` (a column only such a table has)."""
    by_cell = _by_cell(records)
    categorised = any(c["category"] for c in spec["columns"])
    keys = ["category", "operation"] if categorised else ["column", "test_set", "operation"]
    out = []
    for row, column in itertools.product(spec["rows"], spec["columns"]):
        r = by_cell.get((row["method"], row["train_quality"], column["test_set"], column["operation"]))
        if r is None:
            continue
        ids = {"category": column["category"], "operation": column["operation"], "column": column["label"],
               "test_set": column["test_set"]}
        scored = r.get("status") != "no_video_scored"
        out.append({"method": row["method"], "train_quality": row["train_quality"], "label": row["label"] or "",
                    **{k: ids[k] for k in keys},
                    **{k: None if not scored or r[k] is None else 100 * float(r[k]) for k in ("video_auc", "ci_low", "ci_high")},
                    "ci_level": r["ci_level"] if scored else None, "bootstrap": r["bootstrap"] if scored else None,
                    "note": None if scored else r["reason"]})
    names = ["method", "train_quality", *(["label"] if _labels(spec) else []), *keys,
             "video_auc", "ci_low", "ci_high", "ci_level", "bootstrap"]
    frame = pd.DataFrame(out, columns=names + ["note"])
    return frame if frame["note"].notna().any() else frame[names]


def write_table(records: Sequence[Mapping], spec: Mapping, csv: str | os.PathLike, md: str | os.PathLike,
                tex: str | os.PathLike, ci_csv: str | os.PathLike) -> pd.DataFrame:
    """Build one table and write its four files atomically."""
    table, notes = build_table(records, spec)
    write_text(csv, table_csv(table, notes, spec))
    write_text(md, table_markdown(table, notes, spec))
    write_text(tex, table_latex(table, notes, spec))
    write_text(ci_csv, ci_table(records, spec).to_csv(index=False, float_format=f"%.{spec['decimals']}f"))
    return table


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """A table's .csv back: index (method, train_quality), one column per cell ("n/a" as NaN;
    the row labels, where the table has them, left out)."""
    table = pd.read_csv(path, index_col=[0, 1], dtype={"method": str, "train_quality": str, "label": str}, na_values=[NA])
    table.index.names = ["method", "train_quality"]
    return table.drop(columns=["label"], errors="ignore").astype(float)


def by_category(table: pd.DataFrame) -> pd.DataFrame:
    """A categorised one-metric table (Table I) with columns (category, label) and
    ("summary", "average") last: what its figures read."""
    columns = [("summary", AVERAGE) if c.is_average else (c.category, c.label) for c in table.attrs["cells"]]
    out = table.copy()
    out.columns = pd.MultiIndex.from_tuples(columns, names=["category", "operation"])
    return out
