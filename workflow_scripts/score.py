"""Snakemake script: score one test copy with one model (its weights.pt, or a weights file in its format)."""
from pathlib import Path

import torch

from dfrobust.stages.score import score_copy
from dfrobust.core.gpu import claim_gpu
from dfrobust.core.runlog import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
torch.set_num_threads(max(1, sm.threads))  # no more CPU threads than the job was given
claim_gpu()  # one GPU per job on multi-GPU workstations; a no-op under SLURM or without GPUs
run_logged(
    sm.log[0], score_copy, Path(sm.input.model), list(sm.input.faces), sm.output[0],
    sm.params.scoring["batch_size"], sm.params.scoring["device"], sm.params.compute, sm.params.operation,
    weights=sm.params.weights,
)
