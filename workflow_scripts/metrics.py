"""Snakemake script: metrics of one scores file (or why none could be computed), with provenance."""
from dfrobust.core.runlog import run_logged
from dfrobust.stages.score import evaluate_file

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(
    sm.log[0], evaluate_file, list(sm.input.scores), sm.output[0], sm.params.evaluation, sm.params.cell,
    inputs=[sm.input.model], shards=list(sm.input.shards), thresholds=list(sm.input.thresholds),
)
