"""Snakemake script: the processed copy of one clean test shard under one operation
(or under every operation at once, with operations.one_decode)."""
from dfrobust.core.gpu import claim_gpu
from dfrobust.core.provenance import collect
from dfrobust.core.runlog import run_logged
from dfrobust.stages.distort import distort_shard

sm = snakemake  # noqa: F821 (injected by Snakemake)
if sm.resources.get("gpu"):  # RetinaFace finds the faces again here (operations.faces: redetect): one GPU per job
    claim_gpu()
operations = sm.params.operations if hasattr(sm.params, "operations") else [sm.params.operation]
outputs = [sm.output.npz] if isinstance(sm.output.npz, str) else list(sm.output.npz)
kept = dict(zip(sm.params.kept, sm.output.videos)) if hasattr(sm.output, "videos") else {}
videos_dirs = [kept.get(op["name"]) for op in operations]
provenance = collect({"operations": operations, "faces": sm.params.faces, "ffmpeg": sm.params.ffmpeg},
                     [sm.input.faces, sm.input.index], seed=None, extra={"rule": sm.rule})
run_logged(
    sm.log[0], distort_shard, sm.input.faces, sm.input.index, operations, sm.params.faces, sm.params.ffmpeg,
    outputs, videos_dirs, provenance=provenance, frames=sm.input.get("frames") or None,
)
