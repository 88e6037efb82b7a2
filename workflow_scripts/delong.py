"""Snakemake script: pairwise DeLong tests between a table's rows on each column."""
from dfrobust.core.runlog import run_logged
from dfrobust.reporting.report import make_delong

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(sm.log[0], make_delong, list(sm.input), sm.params.table, sm.params.enabled, sm.output[0])
