"""Snakemake script: train one model (detector, training set, procedure), resuming from its checkpoint."""
from pathlib import Path

import torch

from dfrobust.core.gpu import claim_gpu
from dfrobust.core.runlog import run_logged
from dfrobust.stages.train import train_model

sm = snakemake  # noqa: F821 (injected by Snakemake)
torch.set_num_threads(max(1, sm.threads))  # no more CPU threads than the job was given
claim_gpu()  # one GPU per job on multi-GPU workstations; a no-op under SLURM or without GPUs
run_logged(
    sm.log[0], train_model, sm.params.method, sm.params.detector, sm.input.train, sm.input.val,
    Path(sm.output.weights).parent, sm.params.seed, key=(sm.wildcards.model, sm.wildcards.trainset),
    train_on=sm.params.train_on, procedure=sm.params.procedure, compute=sm.params.compute,
)
