"""Snakemake script: Table I's figures."""
from dfrobust.core.runlog import run_logged
from dfrobust.reporting.report import make_figures

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(
    sm.log[0], make_figures, list(sm.input.metrics), list(sm.input.scores), sm.params.table, sm.params.report,
    sm.output.heatmap, sm.output.drop, sm.output.severity, dict(zip(sm.params.models, sm.output.roc)),
)
