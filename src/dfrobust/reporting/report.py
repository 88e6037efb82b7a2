"""Workflow-facing steps of the report: a table's files, the pairwise DeLong
tests between its rows, and Table I's figures."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from dfrobust.core.io import read_json, write_text
from dfrobust.core.runlog import log
from dfrobust.core.settings import Settings


def make_table(metric_paths, spec: Mapping, csv, md, tex, ci_csv):
    """One table (Table I or a declared one) from its metrics files (dfrobust.reporting.tables)."""
    from dfrobust.reporting.tables import write_table

    table = write_table([read_json(p) for p in metric_paths], spec, csv, md, tex, ci_csv)
    log(f"table {spec['name']}: {table.shape[0]} rows x {table.shape[1]} cells per row from {len(metric_paths)} metric files")
    return table


def make_delong(score_paths, spec: Mapping, enabled: bool, out_csv):
    """Pairwise DeLong tests between the table's rows on each column (a one-line note in their
    place when report.delong is false)."""
    from dfrobust.reporting.comparisons import scores_by_cell, write_pairwise_delong

    if not enabled:
        write_text(out_csv, "# DeLong tests disabled (report.delong: false)\n")
        return None
    return write_pairwise_delong(scores_by_cell(spec, list(score_paths)), out_csv)


def make_figures(metric_paths, score_paths, spec: Mapping, report: Settings | Mapping, heatmap, drop, severity,
                 rocs: Mapping[str, str]):
    """Heatmap of Table I (its clean column too), AUC drop per category, AUC against severity,
    and one ROC figure per row (`rocs`: "method/train_quality" -> path)."""
    from dfrobust.reporting import figures
    from dfrobust.reporting.comparisons import scores_by_cell
    from dfrobust.reporting.tables import build_table, by_category

    records = [read_json(p) for p in metric_paths]
    swept = [r for r in records if r.get("sweep") is not None]
    swept_ops = {r["operation"] for r in swept}
    plain = {**spec, "columns": [{**c, "shown": True} for c in spec["columns"] if c["operation"] not in swept_ops]}
    table, _ = build_table([r for r in records if r["operation"] not in swept_ops], plain)
    table = by_category(table)
    figures.heatmap(table, heatmap, dpi=report["dpi"], decimals=report["decimals"], cmap=report["cmap"])
    figures.auc_drop_bars(table, drop, reference=report["reference"], dpi=report["dpi"])
    scores = scores_by_cell(spec, list(score_paths))
    paths = {tuple(model.split("/")): Path(path) for model, path in rocs.items()}
    figures.roc_figures(scores, paths, operations=[c["operation"] for c in spec["columns"]], dpi=report["dpi"])
    figures.severity_figure(swept, severity, dpi=report["dpi"])
    log(f"figures written: {heatmap}, {drop}, {severity}, {len(paths)} ROC figures")
