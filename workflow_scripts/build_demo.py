"""Snakemake script: build the embedded demo dataset."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # dfrobust from this repo (conda envs)

from dfrobust.datasets.demo import build_demo
from dfrobust.runlog import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
cfg = {**sm.params.demo, "methods": sm.params.dataset["methods"], "qualities": sm.params.dataset["qualities"]}
run_logged(sm.log[0], build_demo, Path(sm.output[0]).parent, cfg, sm.params.seed, sm.params.ffmpeg)
