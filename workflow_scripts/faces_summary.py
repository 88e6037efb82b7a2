"""Snakemake script: one summary row per video over all face shards."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # dfrobust from this repo (conda envs)
from dfrobust.stages.faces import summarise_shards
from dfrobust.core.runlog import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(sm.log[0], summarise_shards, list(sm.input), sm.output[0])
