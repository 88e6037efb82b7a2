"""Snakemake script: one table (Table I or a declared one)."""
from dfrobust.core.runlog import run_logged
from dfrobust.reporting.report import make_table

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(sm.log[0], make_table, list(sm.input), sm.params.table, sm.output.csv, sm.output.md, sm.output.tex, sm.output.ci)
