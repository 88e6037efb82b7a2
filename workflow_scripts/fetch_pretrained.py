"""Snakemake script: fetch one detector's pretrained weights into the local cache."""
from dfrobust.core.runlog import run_logged
from dfrobust.stages.train import fetch_pretrained

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(sm.log[0], fetch_pretrained, sm.params.method, sm.params.detector, sm.output[0])
