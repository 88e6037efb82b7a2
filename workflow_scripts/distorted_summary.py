"""Snakemake script: one summary row per (operation, video) over all processed copies."""
from dfrobust.core.runlog import run_logged
from dfrobust.stages.distort import summarise_distorted

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(sm.log[0], summarise_distorted, list(sm.input), sm.output.summary, sm.output.operations)
