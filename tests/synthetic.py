"""Synthetic face shards for tests and benchmarks (no dataset, no face detector).

A "face" is a drawn ellipse with eyes, brows, nose and mouth, and 68
landmarks in the iBUG order placed on those parts. Each real video is one
identity (skin tone, background, position) with small motion between
frames; its fake videos are the same frames with the inner face (the hull
of landmarks 17..67) blended with a colour-shifted, blurred copy, a visible
artefact that a detector learns within a few steps even at 32 px.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from dfrobust.core.config import block
from dfrobust.media.store import FaceRecord, write_shard


def landmark_template() -> np.ndarray:
    """(68, 2) landmarks in face units: x, y in [-1, 1] (y down), centre of the face ellipse at 0."""
    pts = []
    for i in range(17):  # jaw: left temple, chin, right temple
        a = np.pi * i / 16
        pts.append((-0.95 * np.cos(a), 0.1 + 0.85 * np.sin(a)))
    for side in (-1, 1):  # brows 17-21 (left) and 22-26 (right), outer to inner for the left
        xs = np.linspace(-0.7, -0.15, 5) if side < 0 else np.linspace(0.15, 0.7, 5)
        pts += [(x, -0.35 - 0.08 * np.cos((abs(x) - 0.42) * 4)) for x in xs]
    pts += [(0.0, y) for y in np.linspace(-0.25, 0.15, 4)]  # nose bridge 27-30
    pts += [(x, 0.25 + 0.03 * abs(x) / 0.2) for x in np.linspace(-0.2, 0.2, 5)]  # nostrils 31-35
    for cx in (-0.4, 0.4):  # eyes 36-41, 42-47
        pts += [(cx + 0.15 * np.cos(a), -0.15 + 0.07 * np.sin(a)) for a in np.linspace(np.pi, 3 * np.pi, 7)[:-1]]
    pts += [(0.35 * np.cos(a), 0.55 + 0.12 * np.sin(a)) for a in np.linspace(np.pi, 3 * np.pi, 13)[:-1]]  # mouth 48-59
    pts += [(0.22 * np.cos(a), 0.55 + 0.05 * np.sin(a)) for a in np.linspace(np.pi, 3 * np.pi, 9)[:-1]]  # inner 60-67
    return np.array(pts, np.float32)


def draw_face(size: int, centre: np.ndarray, radii: np.ndarray, skin, background, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One face crop and its landmarks (pixels)."""
    img = np.empty((size, size, 3), np.uint8)
    img[:] = background
    img = np.clip(img.astype(np.int16) + rng.integers(-12, 13, img.shape), 0, 255).astype(np.uint8)
    lm = centre + landmark_template() * radii
    c = tuple(int(v) for v in np.round(centre))
    cv2.ellipse(img, c, tuple(int(v) for v in np.round(radii)), 0, 0, 360, tuple(int(v) for v in skin), -1)
    for eye in (lm[36:42], lm[42:48]):
        cv2.fillPoly(img, [np.round(eye).astype(np.int32)], (40, 30, 30))
    for brow in (lm[17:22], lm[22:27]):
        cv2.polylines(img, [np.round(brow).astype(np.int32)], False, (60, 40, 30), max(1, size // 48))
    cv2.polylines(img, [np.round(lm[27:36]).astype(np.int32)], False, tuple(int(v * 0.7) for v in skin), max(1, size // 64))
    cv2.fillPoly(img, [np.round(lm[48:60]).astype(np.int32)], (170, 60, 70))
    return img, lm.astype(np.float32)


def manipulate(img: np.ndarray, lm: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """A 'fake': the inner face blended with a colour-shifted, blurred copy (soft mask)."""
    size = img.shape[0]
    mask = np.zeros((size, size), np.float32)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(lm[17:]).astype(np.int32)), 1.0)
    k = max(3, size // 10) | 1
    mask = cv2.GaussianBlur(mask, (k, k), 0)[..., None]
    shift = np.array([45, -25, -15]) * strength
    altered = cv2.GaussianBlur(np.clip(img.astype(np.float32) + shift, 0, 255), (3, 3), 0)
    return np.clip(np.rint(mask * altered + (1 - mask) * img), 0, 255).astype(np.uint8)


def synthetic_videos(n_real: int, fakes_per_real: int = 1, frames: int = 4, size: int = 64, seed: int = 0,
                     methods=("Deepfakes", "FaceSwap", "Face2Face", "NeuralTextures")) -> list[FaceRecord]:
    """FaceRecords of `n_real` real videos and `fakes_per_real` fakes of each."""
    rng = np.random.default_rng(seed)
    records = []
    for v in range(n_real):
        tone = rng.uniform(120, 235)
        skin = np.array([tone, tone * rng.uniform(0.72, 0.85), tone * rng.uniform(0.55, 0.7)])
        background = rng.integers(0, 256, 3)
        centre0 = size / 2 + rng.uniform(-0.05, 0.05, 2) * size
        radii0 = np.array([0.30, 0.38]) * size * rng.uniform(0.9, 1.1)
        crops, lms = [], []
        for f in range(frames):
            centre = centre0 + rng.uniform(-0.02, 0.02, 2) * size
            radii = radii0 * rng.uniform(0.97, 1.03)
            img, lm = draw_face(size, centre, radii, skin, background, rng)
            crops.append(img)
            lms.append(lm)
        crops, lms = np.stack(crops), np.stack(lms)
        real_id = f"{v:03d}"
        records.append(synthetic_record(f"original/{real_id}", "original", 0, crops, lms))
        for j in range(fakes_per_real):
            method = methods[j % len(methods)]
            fake = np.stack([manipulate(c, lm, rng) for c, lm in zip(crops, lms)])
            records.append(synthetic_record(f"{method}/{real_id}_{(v + j + 1) % max(n_real, 2):03d}", method, 1, fake, lms))
    return records


def write_synthetic_shards(out_dir: str | Path, records: list[FaceRecord], per_shard: int = 8, split: str = "train",
                           faces_config: dict | None = None) -> list[Path]:
    """Write records as face shards shard_000.npz, ... ; returns the .npz paths.
    `faces_config` is recorded as the face stage records its config (e.g. windows)."""
    out_dir = Path(out_dir)
    paths = []
    for k in range(0, len(records), per_shard):
        chunk = records[k : k + per_shard]
        path = out_dir / f"shard_{k // per_shard:03d}.npz"
        metas = [{"video_id": r.video_id, "manipulation": r.manipulation, "label": r.label, "source": "synthetic",
                  "n_sampled": r.n_faces, "n_found": r.n_faces, "n_missed": 0, "status": "ok", "message": ""}
                 for r in chunk]
        meta = {"split": split, "quality": "synthetic", "crop_size": int(chunk[0].crops.shape[1])}
        meta["faces_config"] = block("faces", faces_config or {}).to_dict()  # as the face stage records its block
        write_shard(path, chunk, metas, meta)
        paths.append(path)
    return paths


def synthetic_record(video_id: str, manipulation: str, label: int, crops: np.ndarray, lms: np.ndarray,
                     frames: np.ndarray | None = None) -> FaceRecord:
    """A FaceRecord of these crops with the geometry a detector cuts its faces by: each crop is
    its own crop box (the whole frame) around a face box in its middle. `frames`: the frame
    of each crop (default every 10th)."""
    n, size = len(crops), crops.shape[1]
    frames = np.arange(n, dtype=np.int64) * 10 if frames is None else np.asarray(frames, np.int64)
    boxes = np.tile(np.array([[0.15, 0.1, 0.85, 0.9]], np.float32) * size, (n, 1))
    return FaceRecord(
        video_id=video_id, manipulation=manipulation, label=label, crops=crops,
        frame_indices=frames, boxes=boxes,
        crop_boxes=np.tile(np.array([[0, 0, size, size]], np.int32), (n, 1)),
        landmarks=lms.astype(np.float32), sampled_indices=frames,
    )
