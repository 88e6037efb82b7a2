"""Snakemake script: Table I files."""
import sys  # noqa: E402
from pathlib import Path as _Path  # noqa: E402

sys.path.insert(0, str(_Path(__file__).resolve().parents[1] / "src"))  # dfrobust from this repo (conda envs)
from dfrobust.reporting.stage import make_table1
from dfrobust.runlog import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(
    sm.log[0], make_table1, list(sm.input.metrics), list(sm.input.scores), sm.params.operations, sm.params.report,
    sm.params.methods, sm.output.csv, sm.output.md, sm.output.tex, sm.output.ci,
    sm.output.delong if sm.params.report.get("delong", True) else None,
)
if not sm.params.report.get("delong", True):
    open(sm.output.delong, "w").write("# DeLong tests disabled (report.delong: false)\n")
