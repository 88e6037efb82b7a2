"""Snakemake script: one summary row per video over all face shards."""
from dfrobust.stages.faces import summarise_shards
from dfrobust.core.runlog import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(sm.log[0], summarise_shards, list(sm.input), sm.output[0])
