"""Boxes and crops: the FF++ square (1.3x the detector box) and SBI's per-side margins."""

from __future__ import annotations

import math

import numpy as np


def square_crop_box(box: np.ndarray, scale: float, frame_w: int, frame_h: int) -> np.ndarray:
    """Square of side `scale` x max(box side) centred on the box, clamped to the frame.

    As in the FaceForensics++ code: the side is kept when the square fits,
    and the square is shifted (not shrunk) to stay inside the frame; it only
    shrinks when the frame itself is smaller than the side. A square that
    falls half-way between pixels is rounded towards the frame centre, so the
    crop of a mirrored box is the mirrored crop.
    Returns integer [x0, y0, x1, y1] with x1, y1 exclusive.
    """
    return square_region(box, scale, np.array([0, 0, frame_w, frame_h]))


def _start(centre: float, side: int, low: int, high: int) -> int:
    """First pixel of `side` pixels centred on `centre`, inside [low, high)."""
    start = centre - side / 2.0
    if start - math.floor(start) == 0.5:  # half-way: towards the middle of the bounds
        start = math.floor(start) if centre > (low + high) / 2.0 else math.ceil(start)
    return min(max(int(round(start)), low), high - side)


def box_area(box: np.ndarray) -> float:
    return float(max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1]))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two [x0, y0, x1, y1] boxes."""
    ix0, iy0 = max(a[0], b[0]), max(a[1], b[1])
    ix1, iy1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, ix1 - ix0) * max(0.0, iy1 - iy0)
    union = box_area(a) + box_area(b) - inter
    return float(inter / union) if union > 0 else 0.0


def largest(boxes: np.ndarray) -> int:
    """Index of the largest box (FF++ convention: the largest face, not the first)."""
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return int(np.argmax(areas))


def union_box(*boxes) -> np.ndarray:
    """Smallest box holding every given box; rows with a NaN (no box found) are skipped."""
    rows = np.array([np.asarray(b, np.float64).reshape(4) for b in boxes if b is not None])
    rows = rows[np.isfinite(rows).all(axis=1)]
    if not len(rows):
        raise ValueError("union_box: no finite box")
    return np.array([rows[:, 0].min(), rows[:, 1].min(), rows[:, 2].max(), rows[:, 3].max()])


def square_region(box: np.ndarray, scale: float, bounds: np.ndarray) -> np.ndarray:
    """The FF++ square (side `scale` x the box's longer side, centred on it) kept inside `bounds`
    [x0, y0, x1, y1) by shifting, shrunk only to the bounds' shorter side; `square_crop_box` is
    this with the frame as bounds. A square half-way between pixels goes towards the middle of
    the bounds, so the crop of a mirrored box is the mirrored crop."""
    bx0, by0, bx1, by1 = (int(v) for v in bounds)
    x0, y0, x1, y1 = (float(v) for v in box)
    side = int(round(max(x1 - x0, y1 - y0) * scale))
    side = max(1, min(side, bx1 - bx0, by1 - by0))
    left = _start((x0 + x1) / 2.0, side, bx0, bx1)
    top = _start((y0 + y1) / 2.0, side, by0, by1)
    return np.array([left, top, left + side, top + side], dtype=np.int64)


def margin_region(box: np.ndarray, margins: np.ndarray, bounds: np.ndarray | None = None) -> np.ndarray:
    """The box grown by `margins` (left, right, top, bottom) as fractions of its width and height,
    cut at `bounds` [x0, y0, x1, y1): the crop of SBI's code (funcs.crop_face), whose integer
    rounding it keeps (start truncated, end truncated plus one). Integer [x0, y0, x1, y1)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = x1 - x0, y1 - y0
    left, right, top, bottom = (float(m) for m in margins)
    out = np.array([int(x0 - w * left), int(y0 - h * top), int(x1 + w * right) + 1, int(y1 + h * bottom) + 1], np.int64)
    if bounds is not None:
        out[:2] = np.maximum(out[:2], np.asarray(bounds[:2], np.int64))
        out[2:] = np.minimum(out[2:], np.asarray(bounds[2:], np.int64))
    return out
