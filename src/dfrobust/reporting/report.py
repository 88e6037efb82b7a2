"""Workflow-facing steps of the report: Table I files and the figures."""

from __future__ import annotations

from pathlib import Path

from dfrobust.core.io import read_json, write_text
from dfrobust.reporting.tables import score_files, write_pairwise_delong, write_table1
from dfrobust.core.runlog import log


def make_table1(metric_paths, score_paths, operations, report_cfg, methods, csv, md, tex, ci_csv, delong_csv):
    """Table I (csv/md/tex), its intervals and the pairwise DeLong tests
    (a one-line note in their place when report.delong is false)."""
    records = [read_json(p) for p in metric_paths]
    table = write_table1(records, operations, csv=csv, md=md, tex=tex, ci_csv=ci_csv, config=report_cfg, methods=methods)
    log(f"Table I: {table.shape[0]} rows x {table.shape[1] - 1} operations (+ average) from {len(records)} metric files")
    if report_cfg.get("delong", True):
        write_pairwise_delong(score_files(score_paths), delong_csv)
    else:
        write_text(delong_csv, "# DeLong tests disabled (report.delong: false)\n")
    return table


def make_figures(metric_paths, score_paths, operations, report_cfg, methods, out_dir):
    """Heatmap, AUC drop per category, ROC curves per model, AUC against severity."""
    from dfrobust.reporting import figures
    from dfrobust.reporting.tables import build_table1, operation_order

    records = [read_json(p) for p in metric_paths]
    reference = report_cfg.get("reference", "clean")
    dpi = int(report_cfg.get("dpi", 150))
    swept = [r for r in records if r.get("sweep") is not None]
    plain_ops = [(name, cat) for name, cat in operation_order(operations)
                 if not any(r["operation"] == name for r in swept)]
    table = build_table1([r for r in records if r.get("sweep") is None], plain_ops, reference=reference,
                         methods=methods, qualities=report_cfg.get("qualities"))
    out_dir = Path(out_dir)
    figures.heatmap(table, out_dir / "table1_heatmap.png", dpi=dpi, decimals=int(report_cfg.get("decimals", 2)),
                    cmap=report_cfg.get("cmap", "RdYlGn"))
    figures.auc_drop_bars(table, out_dir / "auc_drop.png", reference=reference, dpi=dpi)
    figures.roc_figures(score_files(score_paths), out_dir, operations=[n for n, _ in operation_order(operations)], dpi=dpi)
    figures.severity_figure(swept, out_dir / "severity.png", dpi=dpi)
    log(f"figures written to {out_dir}")


def make_table(metric_paths, spec, decimals, csv, md, tex, ci_csv):
    """One table of the config's `tables` block (dfrobust.reporting.declared)."""
    from dfrobust.reporting.declared import write_table

    table = write_table([read_json(p) for p in metric_paths], spec, int(decimals), csv, md, tex, ci_csv)
    log(f"table {spec['name']}: {table.shape[0]} rows x {table.shape[1]} cells per row from {len(metric_paths)} metric files")
    return table
