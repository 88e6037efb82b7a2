"""Snakemake script: the same test frame under every operation (the paper's Fig. 1)."""
from dfrobust.core.runlog import run_logged
from dfrobust.stages.distort import operations_figure

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(sm.log[0], operations_figure, sm.input.faces, sm.input.index, sm.params.operations, sm.params.ffmpeg, sm.output[0])
