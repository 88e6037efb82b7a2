"""Snakemake script: faces of one (dataset, quality, split, shard)."""
from dfrobust.stages.faces import run_face_shard
from dfrobust.core.gpu import claim_gpu
from dfrobust.core.provenance import collect
from dfrobust.core.runlog import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
if sm.resources.get("gpu"):  # RetinaFace runs here (faces.retinaface.weights): one GPU per job
    claim_gpu()
provenance = collect({"faces": sm.params.faces, "ffmpeg": sm.params.ffmpeg}, [sm.input.index], seed=None,
                     extra={"rule": sm.rule})
run_logged(
    sm.log[0], run_face_shard, sm.input.index, sm.wildcards.quality, sm.wildcards.split, int(sm.wildcards.shard),
    sm.params.planned_shards, sm.params.faces, sm.params.ffmpeg, sm.output.npz, provenance=provenance,
    dataset=sm.wildcards.dataset, out_frames=sm.output.frames,
    store_frames=sm.params.store_frames, masks=sm.params.masks,
)
