"""Snakemake script: index the dataset and report what is missing."""
from dfrobust.stages.dataset import write_index
from dfrobust.core.runlog import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(sm.log[0], write_index, sm.params.dataset, sm.output.index, sm.output.missing)
