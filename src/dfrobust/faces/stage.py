"""Workflow-facing steps of the face stage: one shard job, and the summary of all shards."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dfrobust.datasets.ffpp import n_shards
from dfrobust.errors import InputError
from dfrobust.faces.extract import extract_shard
from dfrobust.faces.store import write_shard
from dfrobust.runlog import log
from dfrobust.video.ffmpeg import find_ffmpeg, ffmpeg_version


def shard_rows(index_csv: str | Path, quality: str, split: str, shard: int, planned_shards: int, shard_size: int) -> list[dict]:
    """The index rows of one shard, in the same interleaved order the plan used."""
    index = pd.read_csv(index_csv, dtype={"name": str})
    rows = index[(index["quality"] == quality) & (index["split"] == split)].to_dict("records")
    count = n_shards(len(rows), shard_size)
    if count != planned_shards:
        raise InputError(
            f"{index_csv}: {split} has {len(rows)} videos at {quality} = {count} shards, but the workflow planned "
            f"{planned_shards} (the dataset changed after the plan; rerun snakemake)"
        )
    return rows[shard::count]


def run_face_shard(index_csv, quality, split, shard, planned_shards, cfg, ffmpeg_path, out_npz, provenance=None):
    """Extract the faces of one shard and write it (npz + json summary)."""
    exe = find_ffmpeg(ffmpeg_path)
    rows = shard_rows(index_csv, quality, split, int(shard), int(planned_shards), cfg["shard_size"])
    log(f"shard {shard} of {quality}/{split}: {len(rows)} videos, {cfg['frames'][split]} frames each, {ffmpeg_version(exe)}")
    records, summary = extract_shard(rows, split, cfg, exe, log=log)
    meta = {"quality": quality, "split": split, "shard": int(shard), "faces_config": cfg,
            "ffmpeg": ffmpeg_version(exe), "provenance": provenance or {}}
    write_shard(out_npz, records, summary, meta)
    ok = sum(r["status"] == "ok" for r in summary)
    log(f"wrote {out_npz}: {ok}/{len(summary)} videos with faces")


def summarise_shards(shard_jsons: list[str | Path], out_csv: str | Path) -> pd.DataFrame:
    """One row per video over all shards: found/missed frame counts and status."""
    import json

    from dfrobust.io import atomic_path

    rows = []
    for path in shard_jsons:
        shard = json.loads(Path(path).read_text())
        for video in shard["videos"]:
            rows.append({"quality": shard["quality"], "split": shard["split"], "shard": shard["shard"], **{
                k: video.get(k) for k in ("video_id", "manipulation", "label", "status", "n_sampled", "n_found", "n_missed", "message", "path")
            }})
    table = pd.DataFrame(rows)
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    return table
