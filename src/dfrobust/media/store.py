"""Face shards: the crops of many videos in one lossless file, read one video at a time.

A shard is a pair of files written atomically:
  shard_NNN.npz   per video: crops, frame indices, boxes, crop boxes, landmarks
                  (zip of .npy members; np.load reads only the members asked for)
  shard_NNN.json  per video: id, manipulation, label, source path, sampled/found/missed
                  frame counts, status ("ok", "no_face", "error"), message

File count grows with the number of shards, not with frames; a video is read
without loading the others.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from dfrobust.core.io import atomic_path, write_json

ARRAYS = ("crops", "frame_indices", "boxes", "crop_boxes", "landmarks", "sampled_indices")
OPTIONAL = ("retina_boxes",  # absent in shards written before RetinaFace boxes were stored
            "masks")  # only for fakes whose dataset publishes manipulation masks (dfrobust.media.masks)


@dataclass
class FaceRecord:
    """Faces of one video.

    video_id:        unique across manipulations, e.g. "original/000", "Deepfakes/000_003"
    manipulation:    "original" or the FF++ method name; label 1 = fake

    crops:           (n, S, S, 3) uint8 RGB, square crops resized to S
    frame_indices:   (n,) frame number of each crop in the source video
    boxes:           (n, 4) float32 face detector box [x0, y0, x1, y1], frame pixels
    crop_boxes:      (n, 4) int32 square crop [x0, y0, x1, y1) in frame pixels
    landmarks:       (n, 68, 2) float32 (x, y) in crop pixels (after resize)
    sampled_indices: (m,) every frame sampled, found or not (m >= n)
    retina_boxes:    (n, 4) float32 RetinaFace box of each face, frame pixels; NaN where
                     none was found or RetinaFace did not run (faces.retinaface)
    masks:           (n, S, S) uint8 manipulation mask of each face (255: manipulated), cut
                     from the dataset's mask video like the crop; None when there is none
                     (reals, a method or dataset without masks, test splits)
    """

    video_id: str
    manipulation: str
    label: int
    crops: np.ndarray
    frame_indices: np.ndarray
    boxes: np.ndarray
    crop_boxes: np.ndarray
    landmarks: np.ndarray
    sampled_indices: np.ndarray
    meta: dict = field(default_factory=dict)
    retina_boxes: np.ndarray | None = None
    masks: np.ndarray | None = None

    def __post_init__(self):
        if self.retina_boxes is None:
            self.retina_boxes = np.full((len(self.frame_indices), 4), np.nan, np.float32)

    @property
    def n_faces(self) -> int:
        return int(len(self.frame_indices))

    def landmarks_in_frame(self) -> np.ndarray:
        """Landmarks mapped back to source-frame pixels."""
        size = self.crops.shape[1]
        side = (self.crop_boxes[:, 2] - self.crop_boxes[:, 0]).astype(np.float32)
        scale = (side / size)[:, None, None]
        return self.landmarks * scale + self.crop_boxes[:, None, :2].astype(np.float32)


def empty_record(video_id: str, manipulation: str, label: int, crop_size: int, sampled: np.ndarray) -> FaceRecord:
    """A record with no faces (a video where no frame had a face)."""
    return FaceRecord(
        video_id=video_id, manipulation=manipulation, label=label,
        crops=np.zeros((0, crop_size, crop_size, 3), np.uint8),
        frame_indices=np.zeros(0, np.int64), boxes=np.zeros((0, 4), np.float32),
        crop_boxes=np.zeros((0, 4), np.int32), landmarks=np.zeros((0, 68, 2), np.float32),
        sampled_indices=np.asarray(sampled, np.int64),
    )


def record_from_faces(video_id: str, manipulation: str, label: int, faces: list[tuple], sampled: np.ndarray,
                      crop_size: int) -> FaceRecord:
    """A record from per-face tuples (frame index, box, crop box, landmarks, crop[, RetinaFace box]),
    as the face stage and the test copies collect them; no faces -> empty record."""
    if not faces:
        return empty_record(video_id, manipulation, label, crop_size, sampled)
    index, boxes, crop_boxes, landmarks, crops, *extra = zip(*faces)
    return FaceRecord(
        video_id=video_id, manipulation=manipulation, label=label, crops=np.stack(crops),
        frame_indices=np.asarray(index, np.int64), boxes=np.stack(boxes).astype(np.float32),
        crop_boxes=np.stack(crop_boxes), landmarks=np.stack(landmarks),
        sampled_indices=np.asarray(sampled, np.int64),
        retina_boxes=np.stack(extra[0]).astype(np.float32) if extra else None,
    )


def write_shard(npz_path: str | Path, records: list[FaceRecord], videos_meta: list[dict], shard_meta: dict) -> None:
    """Write the faces of a shard (npz) and its summary (json), each atomically.

    `videos_meta` has one dict per video of the shard, including those excluded
    (no face, unreadable), so nothing disappears silently.
    """
    npz_path = Path(npz_path)
    arrays: dict[str, np.ndarray] = {}
    for rec in records:
        for name in ARRAYS:
            arrays[f"{rec.video_id}/{name}"] = np.asarray(getattr(rec, name))
        if np.isfinite(rec.retina_boxes).any():
            arrays[f"{rec.video_id}/retina_boxes"] = np.asarray(rec.retina_boxes, np.float32)
        if rec.masks is not None:
            arrays[f"{rec.video_id}/masks"] = np.asarray(rec.masks, np.uint8)
    with atomic_path(npz_path) as tmp:
        # zlib is lossless; each member is compressed separately so one video
        # decompresses without the others
        np.savez_compressed(tmp, **arrays)
    write_json(npz_path.with_suffix(".json"), {**shard_meta, "videos": videos_meta})


class FaceShard:
    """Read access to one shard: ids, per-video summaries, and one video's faces."""

    def __init__(self, npz_path: str | Path):
        self.path = Path(npz_path)
        self.summary = json.loads(self.path.with_suffix(".json").read_text())
        self._meta = {v["video_id"]: v for v in self.summary["videos"]}
        with zipfile.ZipFile(self.path) as zf:
            members = {name[: -len("/crops.npy")] for name in zf.namelist() if name.endswith("/crops.npy")}
        # keep the summary's order; only videos with stored faces
        self.video_ids = [v["video_id"] for v in self.summary["videos"] if v["video_id"] in members]

    def __len__(self) -> int:
        return len(self.video_ids)

    def meta(self, video_id: str) -> dict:
        return self._meta[video_id]

    def read(self, video_id: str) -> FaceRecord:
        if video_id not in self._meta:
            raise KeyError(f"{self.path}: no video {video_id!r}")
        meta = self._meta[video_id]
        with np.load(self.path) as data:
            arrays = {name: data[f"{video_id}/{name}"] for name in ARRAYS}
            arrays.update({name: data[f"{video_id}/{name}"] for name in OPTIONAL if f"{video_id}/{name}" in data.files})
        return FaceRecord(video_id=video_id, manipulation=meta["manipulation"], label=int(meta["label"]), meta=meta, **arrays)

    def __iter__(self) -> Iterator[FaceRecord]:
        for video_id in self.video_ids:
            yield self.read(video_id)


def iter_faces(shard_paths: list[str | Path]) -> Iterator[FaceRecord]:
    """Every video's faces over many shards, in order."""
    for path in shard_paths:
        yield from FaceShard(path)
