"""Training and validation faces: a fixed number of frames per video, read
once from the face shards, cut to the detector's face at its input size (or,
for a detector that cuts its faces per sample, kept as stored with their
boxes) and kept in a memory-mapped file.

FF++ at the paper's settings is ~360k training faces (~100 GB at 299 px),
too much for memory but cheap to page from local disk; the demo's few
hundred faces simply stay in the page cache. The file lives in a temporary
directory ($TMPDIR, node-local on most clusters) for the run.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from dfrobust.detectors.tensors import pick_frames, resize_crops
from dfrobust.core.errors import InputError
from dfrobust.media.store import FaceShard
from dfrobust.media.windows import stored_length


@dataclass
class FacePool:
    """Faces of many videos, one row per face.

    crops:       (N, S, S, 3) uint8 RGB at the detector's input size, or the stored crops (memory-mapped)
    landmarks:   (N, 68, 2) float32, pixels of those crops
    labels:      (N,) int64, 0 real / 1 fake
    video_index: (N,) row of `videos` each face comes from
    videos:      one dict per video: video_id, manipulation, label, n_faces
    geometry:    with stored crops, per face (frame pixels): crop_boxes, boxes, retina_boxes (N, 4),
                 frames (N, 2) width and height (0: unknown); None otherwise
    masks:       for a detector that reads manipulation masks (its data's needs_masks): (N, s, s) uint8
                 0..255 (memory-mapped), each face's mask cut as its face; None otherwise
    mask_known:  (N,) bool with masks: real faces (all-zero masks) and fakes whose shard holds a mask
    """

    crops: np.ndarray
    landmarks: np.ndarray
    labels: np.ndarray
    video_index: np.ndarray
    videos: list[dict] = field(default_factory=list)
    geometry: dict[str, np.ndarray] | None = None
    masks: np.ndarray | None = None
    mask_known: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def summary(self) -> dict:
        """Counts for hparams.json and the log."""
        labels = np.asarray(self.labels)
        video_labels = np.array([v["label"] for v in self.videos])
        return {
            "faces": int(len(labels)),
            "real_faces": int((labels == 0).sum()),
            "fake_faces": int((labels == 1).sum()),
            "videos": len(self.videos),
            "real_videos": int((video_labels == 0).sum()),
            "fake_videos": int((video_labels == 1).sum()),
            **({} if self.mask_known is None else
               {"fake_faces_with_masks": int(((labels == 1) & np.asarray(self.mask_known)).sum())}),
        }


def build_pool(shards: Sequence[str | Path], frames_per_video: int, size: int, labels: Sequence[int],
               workdir: str | Path, name: str, log: Callable[[str], None] = print,
               manipulations: Sequence[str] | None = None, view: Callable | None = None,
               pick: Callable | None = None, masks: Callable | None = None) -> FacePool:
    """Read `frames_per_video` faces of every video with one of `labels` from `shards`.

    Each video is decompressed once; videos of other labels are not read
    (SBI trains on reals only), nor fakes of manipulations not in
    `manipulations` (None: all). `pick(record, window_length, k)` gives the
    rows kept of a video (the detector data's `pool_rows`; default: k spread
    evenly); a video it keeps nothing of is left out and reported.
    `view(record, index) -> (crops, landmarks, geometry or None)` is what the
    pool keeps of those faces (FaceData.pool_view: crops of side `size`);
    None: the stored crops resized to `size`. `masks(record, index) -> (masks
    (n, s, s) uint8, known)` keeps each face's manipulation mask too
    (MaskData.pool_masks; None: no masks). Fails with the shard names when
    no face is left.
    """
    shards = [Path(s) for s in shards]
    if not shards:
        raise InputError(f"{name}: no face shards given")
    for path in shards:
        if not path.is_file() or not path.with_suffix(".json").is_file():
            raise InputError(f"{path}: face shard (or its .json) does not exist")
    opened = [FaceShard(path) for path in shards]
    wanted = [(shard, v) for shard in opened for v in shard.video_ids if int(shard.meta(v)["label"]) in labels
              and (manipulations is None or int(shard.meta(v)["label"]) == 0 or shard.meta(v)["manipulation"] in manipulations)]
    _check_space(Path(workdir), len(wanted) * frames_per_video * size * size * (4 if masks else 3), name)
    raw, raw_masks = Path(workdir) / f"{name}.u8", Path(workdir) / f"{name}.masks.u8"
    landmarks, labels_out, video_index, videos, geometry, left_out, known, mask_side = [], [], [], [], [], [], [], 0
    with open(raw, "wb") as fh, (open(raw_masks, "wb") if masks else contextlib.nullcontext()) as fm:
        for shard, video_id in wanted:
            rec = shard.read(video_id)
            if rec.n_faces == 0:
                continue
            idx = pick(rec, stored_length(shard.summary), frames_per_video) if pick else pick_frames(rec.n_faces, frames_per_video)
            if len(idx) == 0:
                left_out.append(video_id)
                continue
            if view is None:
                crops, lms, geo = resize_crops(rec.crops[idx], size), rec.landmarks[idx] * (size / rec.crops.shape[1]), None
            else:
                crops, lms, geo = view(rec, idx)
            if crops.shape[1:] != (size, size, 3):
                raise InputError(f"{shard.path}: {video_id} has {crops.shape[1]} px faces, the pool {size} px "
                                 "(shards written with different faces.crop_size?)")
            fh.write(np.ascontiguousarray(crops).tobytes())
            if masks:
                rows_masks, is_known = masks(rec, idx)
                if rows_masks.shape[1:] != (rows_masks.shape[1],) * 2 or (mask_side and rows_masks.shape[1] != mask_side):
                    raise InputError(f"{shard.path}: {video_id}'s masks are {rows_masks.shape[1:]}, the pool's {mask_side} px")
                mask_side = rows_masks.shape[1]
                fm.write(np.ascontiguousarray(rows_masks, np.uint8).tobytes())
                known.append(np.full(len(idx), bool(is_known)))
            landmarks.append(np.asarray(lms, np.float32))
            if geo is not None:
                geometry.append(geo)
            labels_out.append(np.full(len(idx), rec.label, np.int64))
            video_index.append(np.full(len(idx), len(videos), np.int64))
            videos.append({"video_id": rec.video_id, "manipulation": rec.manipulation,
                           "label": rec.label, "n_faces": int(len(idx)), "shard": str(shard.path)})
    if left_out:
        log(f"{name}: {len(left_out)} video(s) left out, none of their faces kept by the detector (a sequence detector: no complete window): {', '.join(left_out[:5])}"
            + (" ..." if len(left_out) > 5 else ""))
    if not videos:
        raise InputError(f"{name}: no faces with label(s) {list(labels)} in {', '.join(map(str, shards))}")
    n = int(sum(len(x) for x in labels_out))
    pool = FacePool(
        crops=np.memmap(raw, dtype=np.uint8, mode="r", shape=(n, size, size, 3)),
        landmarks=np.concatenate(landmarks), labels=np.concatenate(labels_out),
        video_index=np.concatenate(video_index), videos=videos,
        geometry={k: np.concatenate([g[k] for g in geometry]) for k in geometry[0]} if geometry else None,
    )
    if masks:
        pool.masks = np.memmap(raw_masks, dtype=np.uint8, mode="r", shape=(n, mask_side, mask_side))
        pool.mask_known = np.concatenate(known)
    s = pool.summary()
    log(f"{name}: {s['faces']} faces ({s['real_faces']} real, {s['fake_faces']} fake) "
        f"from {s['videos']} videos at {size}px"
        + (f"; manipulation masks for {s['fake_faces_with_masks']} of the {s['fake_faces']} fake faces" if masks else ""))
    return pool


def stored_size(shards: Sequence[str | Path]) -> int:
    """Side of the stored crops of face shards (the first video's)."""
    for path in shards:
        shard = FaceShard(path)
        if shard.video_ids:
            return int(shard.read(shard.video_ids[0]).crops.shape[1])
    raise InputError(f"no faces in {', '.join(map(str, shards))}")


def _check_space(workdir: Path, needed: int, name: str) -> None:
    """Fail before writing when the pool cannot fit (FF++ at 299 px is ~100 GB)."""
    free = shutil.disk_usage(workdir).free
    if needed > free:
        raise InputError(f"{name}: the face pool needs up to {needed / 1e9:.1f} GB in {workdir.parent}, "
                         f"only {free / 1e9:.1f} GB free; point TMPDIR to a larger scratch directory")
