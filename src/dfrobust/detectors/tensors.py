"""Face crops as tensors: the one resize used for training and scoring, and
the uint8 batches every detector reads."""

from __future__ import annotations

import cv2
import numpy as np
import torch


def resize_crops(crops: np.ndarray, size: int) -> np.ndarray:
    """Square uint8 RGB crops (n, S, S, 3) -> (n, size, size, 3).

    Area interpolation when shrinking (no aliasing), bilinear when enlarging.
    The single resize used for training and scoring.
    """
    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[-1] != 3 or crops.shape[1] != crops.shape[2]:
        raise ValueError(f"expected square RGB crops (n, S, S, 3), got shape {crops.shape}")
    if crops.dtype != np.uint8:
        raise ValueError(f"expected uint8 crops, got {crops.dtype}")
    if crops.shape[1] == size:
        return crops
    interp = cv2.INTER_AREA if crops.shape[1] > size else cv2.INTER_LINEAR
    out = np.empty((len(crops), size, size, 3), np.uint8)
    for i, crop in enumerate(crops):
        out[i] = cv2.resize(crop, (size, size), interpolation=interp)
    return out


def pick_frames(n: int, k: int) -> np.ndarray:
    """k indices spread evenly over n faces (all of them when k >= n)."""
    if k >= n:
        return np.arange(n)
    if k == 1:
        return np.array([n // 2])
    return np.round(np.linspace(0, n - 1, k)).astype(np.int64)


def to_tensor(crops: np.ndarray) -> torch.Tensor:
    """uint8 NHWC numpy -> uint8 NCHW tensor (a copy: crops may be a read-only memory map)."""
    return torch.from_numpy(np.array(crops, dtype=np.uint8)).permute(0, 3, 1, 2).contiguous()


def cat_collate(batch: list[tuple]) -> tuple:
    """Items are (images (k,3,H,W) uint8, labels (k,)), or with a third element, a dict of per-face
    tensors (extras, e.g. manipulation masks: dfrobust.detectors.base.Detector.batch_extras); a
    batch is their concatenation, key by key for the extras."""
    images, labels, *extras = zip(*batch)
    if not extras:
        return torch.cat(images), torch.cat(labels)
    return torch.cat(images), torch.cat(labels), {key: torch.cat([e[key] for e in extras[0]]) for key in extras[0][0]}


def split_batch(batch: tuple) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """(images, labels, extras ({} when the items carry none)) of a collated batch."""
    return batch[0], batch[1], (batch[2] if len(batch) > 2 else {})
