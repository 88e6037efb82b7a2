"""Snakemake script: fetch one detector's pretrained weights into the local cache."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # dfrobust from this repo (conda envs)
from dfrobust.core.runlog import run_logged
from dfrobust.stages.train import fetch_pretrained

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(sm.log[0], fetch_pretrained, sm.wildcards.method, sm.params.detector, sm.output[0])
