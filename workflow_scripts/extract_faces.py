"""Snakemake script: faces of one (quality, split, shard)."""
from dfrobust.faces.stage import run_face_shard
from dfrobust.runlog import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(
    sm.log[0], run_face_shard, sm.input.index, sm.wildcards.quality, sm.wildcards.split, int(sm.wildcards.shard),
    sm.params.planned_shards, sm.params.faces, sm.params.ffmpeg, sm.output.npz,
)
