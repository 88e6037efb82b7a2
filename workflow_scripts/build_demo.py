"""Snakemake script: build the embedded demo dataset."""
from dfrobust.core.runlog import run_logged
from dfrobust.stages.dataset import build_demo_dataset

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(sm.log[0], build_demo_dataset, sm.params.demo, sm.params.dataset, sm.params.seed, sm.params.ffmpeg, sm.output[0],
           look=sm.params.look)
