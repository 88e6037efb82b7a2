"""A detector's crop (its config `crop`, dfrobust.media.crops) applied to the
stored faces: the fixed face for validation and scoring, or one drawn per
training sample, at the detector's input size."""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

from dfrobust.media.crops import CropSpec, cut, frame_landmarks, pick_boxes, stored_crop


class FaceCrop:
    """A detector's crop (its config `crop` and input size) applied to stored faces."""

    def __init__(self, cfg: Mapping, input_size: int, where: str):
        self.spec = CropSpec.from_cfg(cfg, where)
        self.size = int(input_size)

    @property
    def per_sample(self) -> bool:
        """Whether training crops are drawn per sample (the pool then keeps the stored crops)."""
        return self.spec.jitter is not None

    def regions(self, geometry: Mapping[str, np.ndarray], rng: np.random.Generator | None = None) -> np.ndarray:
        """(n, 4) crop regions in frame pixels for faces described by `geometry`
        (crop_boxes, boxes, retina_boxes, as in a FaceRecord)."""
        boxes = pick_boxes(self.spec, geometry["boxes"], geometry["retina_boxes"])
        return np.stack([self.spec.region(b, c, rng) for b, c in zip(boxes, np.asarray(geometry["crop_boxes"]))])

    def faces(self, crops: np.ndarray, geometry: Mapping[str, np.ndarray], rng: np.random.Generator | None = None) -> np.ndarray:
        """(n, size, size, 3) uint8: each face as the detector sees it (rng: a training draw)."""
        regions = self.regions(geometry, rng)
        out = np.empty((len(crops), self.size, self.size, 3), np.uint8)
        for i, (crop, cbox, region) in enumerate(zip(crops, geometry["crop_boxes"], regions)):
            out[i] = cut(np.asarray(crop), cbox, region, self.size)
        return out

    def landmarks(self, landmarks: np.ndarray, crop_size: int, geometry: Mapping[str, np.ndarray]) -> np.ndarray:
        """Stored-crop landmarks mapped into the detector's (fixed) face, in its input pixels."""
        regions = self.regions(geometry).astype(np.float64)
        pts = frame_landmarks(landmarks, np.asarray(geometry["crop_boxes"]), crop_size) - regions[:, None, :2]
        scale = self.size / np.maximum(regions[:, 2:] - regions[:, :2], 1)
        return (pts * scale[:, None, :]).astype(np.float32)


def geometry_of(record, index=None) -> dict[str, np.ndarray]:
    """Boxes of a FaceRecord's faces (all, or those at `index`), frame pixels."""
    idx = slice(None) if index is None else index
    return {"crop_boxes": np.asarray(record.crop_boxes)[idx], "boxes": np.asarray(record.boxes)[idx],
            "retina_boxes": np.asarray(record.retina_boxes)[idx]}


def stored_crop_of(detectors: Iterable[tuple[str, Mapping]]) -> dict:
    """`dfrobust.media.crops.stored_crop` for (name, block) pairs whose blocks may be partial:
    each is completed with its class's defaults (and validated) first."""
    from dfrobust.detectors.registry import resolve_config

    return stored_crop([(name, resolve_config(name, dict(block))) for name, block in detectors])
