"""Snakemake script: the report's figures."""
from pathlib import Path

from dfrobust.reporting.report import make_figures
from dfrobust.core.runlog import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(
    sm.log[0], make_figures, list(sm.input.metrics), list(sm.input.scores), sm.params.operations, sm.params.report,
    sm.params.methods, Path(sm.output.heatmap).parent,
)
