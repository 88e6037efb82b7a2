"""Snakemake script: Table I files."""
from dfrobust.reporting.stage import make_table1
from dfrobust.runlog import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(
    sm.log[0], make_table1, list(sm.input.metrics), list(sm.input.scores), sm.params.operations, sm.params.report,
    sm.params.methods, sm.output.csv, sm.output.md, sm.output.tex, sm.output.ci,
    sm.output.delong if sm.params.report.get("delong", True) else None,
)
if not sm.params.report.get("delong", True):
    open(sm.output.delong, "w").write("# DeLong tests disabled (report.delong: false)\n")
