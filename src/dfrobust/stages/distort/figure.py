"""The same test frame under every operation, side by side (the paper's Fig. 1).

A reader checks at a glance that each operation does what its name says (and
that reused face boxes follow flips and rescaling), before trusting a column
of the table.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from dfrobust.core.errors import InputError
from dfrobust.media.store import FaceShard
from dfrobust.core.io import atomic_path
from dfrobust.media import ffmpeg
from dfrobust.media.distortion import distort_video
from dfrobust.stages.distort.copy import base_videos
from dfrobust.media.operations import Operation, OperationError, geometry


def pick_frame(shard: FaceShard) -> tuple[dict, int, np.ndarray]:
    """(video summary, frame index, face box) of a real video's middle face frame
    (the first video with faces if the shard has no real one)."""
    if not shard.video_ids:
        raise InputError(f"{shard.path}: no video with faces to show")
    originals = [v for v in shard.video_ids if shard.meta(v).get("manipulation") == "original"]
    record = shard.read((originals or shard.video_ids)[0])
    middle = record.n_faces // 2
    return record.meta, int(record.frame_indices[middle]), record.boxes[middle]


def operations_figure(
    clean_npz: str | Path, index_csv: str | Path, operations: list[dict], ffmpeg_path: str | None,
    out_png: str | os.PathLike, columns: int = 5,
) -> Path:
    """Draw the grid: one panel per operation, titled 'name (category)', with the
    face box each operation's geometry gives (reuse mode)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    exe = ffmpeg.find_ffmpeg(ffmpeg_path)
    ops = [Operation.from_params(p) for p in operations]
    shard = FaceShard(clean_npz)
    meta, index, box = pick_frame(shard)
    path = base_videos(index_csv, shard.summary["quality"], shard.summary["split"]).get(meta["video_id"], meta.get("path"))
    width, height = int(meta["width"]), int(meta["height"])
    frames = distort_video(path, ops, {op.name: [index] for op in ops}, width, height, exe)
    columns = min(columns, len(ops))
    rows = math.ceil(len(ops) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.2 * rows * height / width + 0.5 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, op in zip(axes.flat, ops):
        ax.imshow(frames[op.name][0], interpolation="nearest")
        ax.set_title(f"{op.name} ({op.category})", fontsize=10)
        try:
            x0, y0, x1, y1 = geometry(op, width, height, exe).box(box) if op.faces == "reuse" else (None,) * 4
        except OperationError:
            x0 = None
        if x0 is not None:
            ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="lime", linewidth=1))
    fig.suptitle(f"{meta['video_id']}, frame {index} ({shard.summary['quality']})", fontsize=11)
    fig.tight_layout()
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return out_png
