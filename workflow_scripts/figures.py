"""Snakemake script: the report's figures."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # dfrobust from this repo (conda envs)

from dfrobust.reporting.report import make_figures
from dfrobust.core.runlog import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(
    sm.log[0], make_figures, list(sm.input.metrics), list(sm.input.scores), sm.params.operations, sm.params.report,
    sm.params.methods, Path(sm.output.heatmap).parent,
)
