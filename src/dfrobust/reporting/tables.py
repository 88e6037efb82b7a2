"""Table I of the paper: video AUC (%) per detector and training set, one column per operation.

Layout (as the paper): one row per (method, train_quality); one column per
operation in the configured order, grouped by category (operations of one
category next to each other, categories in order of first appearance); the
reference operation ('clean', the unprocessed test set) first; then an
Average column. By default the Average is the mean over the non-reference
operations (the paper's average has no clean column); `include_reference`
adds it. The Average is computed from unrounded AUCs and is empty when one of
its cells is missing.

Files
-----
table1.csv     one header row, then one row per model::

                   method,train_quality,<op>,<op>,...,average
                   xception,c23,99.10,...

               operation columns in Table I order (grouped by category; the
               categories are in table1.md/.tex and table1_ci.csv). Values:
               AUC in percent, `decimals` decimals; an empty field is a
               missing cell. The reference column (clean) is left out, as in
               the paper, unless report.show_reference is true; its AUC is in
               table1_ci.csv.
table1.md      GitHub markdown; categories in the header row, operations in
               the first (bold) row.
table1.tex     booktabs tabular; categories as \\multicolumn with \\cmidrule.
table1_ci.csv  long format: method, train_quality, category, operation,
               video_auc, ci_low, ci_high (percent), ci_level, bootstrap.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from dfrobust.core.errors import InputError
from dfrobust.core.io import read_json, write_text

SUMMARY = ("summary", "average")
DEFAULT_QUALITIES = ("raw", "c23", "c40")
REFERENCE_CATEGORY = "reference"


def operation_order(operations) -> list[tuple[str, str]]:
    """[(operation, category), ...] from the config's operations.

    Accepts a mapping {name: {"category": ...}} or {name: category}, or a
    sequence of {"name": ..., "category": ...} dicts or (name, category) pairs.
    """
    pairs: list[tuple[str, str]] = []
    if isinstance(operations, Mapping):
        for name, spec in operations.items():
            category = spec.get("category", "") if isinstance(spec, Mapping) else spec
            pairs.append((str(name), str(category or "")))
    else:
        for item in operations:
            if isinstance(item, Mapping):
                pairs.append((str(item["name"]), str(item.get("category", "") or "")))
            else:
                name, category = item
                pairs.append((str(name), str(category or "")))
    return pairs


def _columns(
    operations, records: Sequence[Mapping], reference: str, columns: Sequence[str] | None
) -> list[tuple[str, str]]:
    """Table columns (category, operation): reference first, then categories grouped."""
    pairs = operation_order(operations)
    if columns:
        keep = set(columns) | {reference}
        pairs = [p for p in pairs if p[0] in keep]
    ref = [p for p in pairs if p[0] == reference]
    if not ref and any(r.get("operation") == reference for r in records):
        ref = [(reference, REFERENCE_CATEGORY)]
    rest = [p for p in pairs if p[0] != reference]
    categories = list(dict.fromkeys(c for _, c in rest))
    grouped = [p for c in categories for p in rest if p[1] == c]
    return [(c, o) for o, c in ref + grouped]


def _row_order(records: Sequence[Mapping], methods, qualities) -> list[tuple[str, str]]:
    present = list(dict.fromkeys((str(r["method"]), str(r["train_quality"])) for r in records))
    method_rank = {m: i for i, m in enumerate(methods or dict.fromkeys(m for m, _ in present))}
    quality_rank = {q: i for i, q in enumerate(qualities or ())}
    return sorted(
        present,
        key=lambda mq: (method_rank.get(mq[0], len(method_rank)), mq[0],
                        quality_rank.get(mq[1], len(quality_rank)), mq[1]),
    )


def _cell_values(records: Sequence[Mapping], key: str) -> dict[tuple[str, str, str], float]:
    values: dict[tuple[str, str, str], float] = {}
    for r in records:
        cell = (str(r["method"]), str(r["train_quality"]), str(r["operation"]))
        if cell in values:
            raise InputError(f"two metric records for the same cell {'/'.join(cell)}")
        value = r.get(key)
        values[cell] = np.nan if value is None else float(value)
    return values


def build_table1(
    records: Sequence[Mapping],
    operations,
    reference: str = "clean",
    include_reference: bool = False,
    methods: Sequence[str] | None = None,
    qualities: Sequence[str] | None = DEFAULT_QUALITIES,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Table I as a DataFrame of video AUC in percent (unrounded).

    Index (method, train_quality); columns MultiIndex (category, operation)
    with ("summary", "average") last. Records of operations not in
    `operations` (or not in `columns`, when given) are left out; missing cells are NaN.
    Rows follow `methods` then `qualities` order (others after, alphabetically).
    """
    cols = _columns(operations, records, reference, columns)
    rows = _row_order(records, methods, qualities)
    values = _cell_values(records, "video_auc")
    data = [[100 * values.get((m, q, op), np.nan) for _, op in cols] for m, q in rows]
    table = pd.DataFrame(
        data,
        index=pd.MultiIndex.from_tuples(rows, names=["method", "train_quality"]),
        columns=pd.MultiIndex.from_tuples(cols, names=["category", "operation"]),
        dtype=float,
    )
    averaged = [c for c in cols if include_reference or c[1] != reference]
    # skipna=False: an average over a missing cell would silently change meaning
    table[SUMMARY] = table[averaged].mean(axis=1, skipna=False) if averaged else np.nan
    table.attrs["average_over"] = [op for _, op in averaged]
    table.attrs["reference"] = reference
    return table


def build_ci_table(
    records: Sequence[Mapping],
    operations,
    reference: str = "clean",
    methods: Sequence[str] | None = None,
    qualities: Sequence[str] | None = DEFAULT_QUALITIES,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Long table of every cell with its bootstrap interval (percent), in Table I order."""
    cols = _columns(operations, records, reference, columns)
    rows = _row_order(records, methods, qualities)
    by_cell = {(str(r["method"]), str(r["train_quality"]), str(r["operation"])): r for r in records}
    out = []
    for (m, q), (cat, op) in itertools.product(rows, cols):
        r = by_cell.get((m, q, op))
        if r is None:
            continue
        out.append({
            "method": m, "train_quality": q, "category": cat, "operation": op,
            **{k: _percent(r.get(k)) for k in ("video_auc", "ci_low", "ci_high")},
            "ci_level": r.get("ci_level"), "bootstrap": r.get("bootstrap"),
        })
    columns_out = ["method", "train_quality", "category", "operation", "video_auc",
                   "ci_low", "ci_high", "ci_level", "bootstrap"]
    return pd.DataFrame(out, columns=columns_out)


def _percent(value) -> float:
    return np.nan if value is None else 100 * float(value)


def _fmt(value: float, decimals: int, missing: str) -> str:
    return missing if value is None or not np.isfinite(value) else f"{value:.{decimals}f}"


def table1_csv(table: pd.DataFrame, decimals: int = 2) -> str:
    """Table I as CSV text: one header row (method, train_quality, operations..., average)."""
    lines = [",".join(["method", "train_quality", *(_csv_field(o) for _, o in table.columns)])]
    for (method, quality), row in table.iterrows():
        cells = [_fmt(v, decimals, "") for v in row.to_numpy(dtype=float)]
        lines.append(",".join([_csv_field(method), _csv_field(quality), *cells]))
    return "\n".join(lines) + "\n"


def _csv_field(text: str) -> str:
    text = str(text)
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if any(ch in text for ch in ',"\n') else text


def _average_note(table: pd.DataFrame) -> str:
    over = table.attrs.get("average_over", [])
    ref = table.attrs.get("reference", "clean")
    note = "included" if ref in over else "excluded"
    return f"Average: mean over {', '.join(over)} ({ref} {note})."


def table1_markdown(table: pd.DataFrame, decimals: int = 2) -> str:
    """Table I as a GitHub markdown table (categories in the header, operations in bold below)."""
    header, ops = ["Method", "Train"], ["", ""]
    previous = None
    for category, operation in table.columns:
        if (category, operation) == SUMMARY:
            header.append("")
            ops.append("**Average**")
            continue
        header.append(category if category != previous else "")
        previous = category
        ops.append(f"**{operation}**")
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join([":--", ":--"] + ["--:"] * len(table.columns)) + "|",
        "| " + " | ".join(ops) + " |",
    ]
    for (method, quality), row in table.iterrows():
        cells = [_fmt(v, decimals, "–") for v in row.to_numpy(dtype=float)]
        lines.append("| " + " | ".join([str(method), str(quality), *cells]) + " |")
    return "\n".join(lines) + "\n\n" + "Video-level AUC (%). " + _average_note(table) + "\n"


_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def tex_escape(text: str) -> str:
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in str(text))


def table1_latex(table: pd.DataFrame, decimals: int = 2) -> str:
    """Table I as a booktabs tabular; each category is a \\multicolumn over its operations."""
    n = len(table.columns)
    groups = [(cat, len(list(g))) for cat, g in itertools.groupby(c for c, _ in table.columns)]
    top, rules, start = ["", ""], [], 3
    for category, width in groups:
        if category == SUMMARY[0]:
            top.append("")
        else:
            top.append(rf"\multicolumn{{{width}}}{{c}}{{{tex_escape(category)}}}")
            rules.append(rf"\cmidrule(lr){{{start}-{start + width - 1}}}")
        start += width
    second = ["Method", "Train"] + [
        "Average" if col == SUMMARY else tex_escape(col[1]) for col in table.columns
    ]
    lines = [
        f"% Video-level AUC (%). {_average_note(table)}",
        r"\begin{tabular}{ll" + "r" * n + "}",
        r"\toprule",
        " & ".join(top) + r" \\",
        "".join(rules),
        " & ".join(second) + r" \\",
        r"\midrule",
    ]
    for (method, quality), row in table.iterrows():
        cells = [_fmt(v, decimals, "--") for v in row.to_numpy(dtype=float)]
        lines.append(" & ".join([tex_escape(method), tex_escape(quality), *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def read_table1(path: str | os.PathLike) -> pd.DataFrame:
    """Read table1.csv back (float percent, index (method, train_quality), one column per operation)."""
    table = pd.read_csv(path, index_col=[0, 1], dtype={"method": str, "train_quality": str})
    table.index.names = ["method", "train_quality"]
    return table.astype(float)


def load_records(results_dir: str | os.PathLike) -> list[dict]:
    """Every metrics record under results_dir/metrics/ (any depth)."""
    paths = sorted(Path(results_dir, "metrics").rglob("*.json"))
    return [read_json(p) for p in paths]


def write_table1(
    records: Sequence[Mapping],
    operations,
    csv: str | os.PathLike | None = None,
    md: str | os.PathLike | None = None,
    tex: str | os.PathLike | None = None,
    ci_csv: str | os.PathLike | None = None,
    config: Mapping | None = None,
    methods: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Build Table I and write the requested files atomically; returns the full
    table (with the reference column, which the figures need).

    `config` is the report config block: reference, include_reference,
    decimals, qualities, columns (see src/dfrobust/core/schema/report.yaml); `methods`
    orders the rows (e.g. the configured detectors).
    """
    config = dict(config or {})
    decimals = int(config.get("decimals", 2))
    options = dict(
        reference=config.get("reference", "clean"),
        methods=methods,
        qualities=config.get("qualities", DEFAULT_QUALITIES),
        columns=config.get("columns") or None,
    )
    table = build_table1(records, operations, include_reference=bool(config.get("include_reference", False)),
                         **options)
    shown = table
    if not config.get("show_reference", False):
        keep = [c for c in table.columns if c[1] != options["reference"]]
        shown = table[keep]
        shown.attrs.update(table.attrs)
    if csv:
        write_text(csv, table1_csv(shown, decimals))
    if md:
        write_text(md, table1_markdown(shown, decimals))
    if tex:
        write_text(tex, table1_latex(shown, decimals))
    if ci_csv:
        ci_table = build_ci_table(records, operations, **options)
        write_text(ci_csv, ci_table.to_csv(index=False, float_format=f"%.{decimals}f"))
    return table


def pairwise_delong(scores: Mapping[tuple[str, str, str], str | os.PathLike | pd.DataFrame]) -> pd.DataFrame:
    """DeLong tests between every pair of models (method/train_quality) on each operation.

    `scores` maps (method, train_quality, operation) to a per-frame score
    table or its CSV path. Returns one row per (operation, model_a, model_b)
    with auc_a, auc_b, z, p and the number of videos both models scored.
    """
    from dfrobust.evaluation.delong import delong_video_tables
    from dfrobust.evaluation.metrics import read_scores, video_scores

    by_operation: dict[str, dict[str, pd.DataFrame]] = {}
    for (method, quality, operation), source in scores.items():
        frames = source if isinstance(source, pd.DataFrame) else read_scores(source)
        name = None if isinstance(source, pd.DataFrame) else source
        by_operation.setdefault(operation, {})[f"{method}/{quality}"] = video_scores(frames, name)
    rows = []
    for operation, models in by_operation.items():
        for (a, va), (b, vb) in itertools.combinations(models.items(), 2):
            result = delong_video_tables(va, vb)
            rows.append({"operation": operation, "model_a": a, "model_b": b,
                         "auc_a": result.auc1, "auc_b": result.auc2, "z": result.z, "p": result.p,
                         "n_videos": len(set(va["video_id"]) & set(vb["video_id"]))})
    return pd.DataFrame(rows, columns=["operation", "model_a", "model_b", "auc_a", "auc_b", "z", "p", "n_videos"])


def write_pairwise_delong(scores, path: str | os.PathLike) -> pd.DataFrame:
    """Write the pairwise DeLong table as CSV (AUCs as fractions, 6 significant digits)."""
    table = pairwise_delong(scores)
    write_text(path, table.to_csv(index=False, float_format="%.6g"))
    return table


def score_file_key(path: str | os.PathLike) -> tuple[str, str, str]:
    """(method, train_quality, operation) of a score file:
    results/scores/{model}/{trainset}/{dataset}/{quality}/{operation}.csv (the
    two folders after `scores`, and the file's name)."""
    path = Path(path)
    parts = path.parts
    start = len(parts) - 1 - parts[::-1].index("scores") if "scores" in parts else len(parts) - 3
    return parts[start + 1], parts[start + 2], path.stem


def score_files(paths: Iterable[str | os.PathLike]) -> dict[tuple[str, str, str], Path]:
    """Map score file paths (results/scores layout) to their (method, quality, operation) keys."""
    return {score_file_key(p): Path(p) for p in paths}
