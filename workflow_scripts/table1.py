"""Snakemake script: Table I files."""
from dfrobust.reporting.report import make_table1
from dfrobust.core.runlog import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(
    sm.log[0], make_table1, list(sm.input.metrics), list(sm.input.scores), sm.params.operations, sm.params.report,
    sm.params.methods, sm.output.csv, sm.output.md, sm.output.tex, sm.output.ci, sm.output.delong,
)
