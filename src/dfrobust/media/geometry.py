"""Boxes and crops: the FF++ convention of a square 1.3x the detector box."""

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
    x0, y0, x1, y1 = (float(v) for v in box)
    side = int(round(max(x1 - x0, y1 - y0) * scale))
    side = max(1, min(side, frame_w, frame_h))
    left = _start((x0 + x1) / 2.0, side, frame_w)
    top = _start((y0 + y1) / 2.0, side, frame_h)
    return np.array([left, top, left + side, top + side], dtype=np.int64)


def _start(centre: float, side: int, length: int) -> int:
    """First pixel of `side` pixels centred on `centre`, inside [0, length)."""
    start = centre - side / 2.0
    if start - math.floor(start) == 0.5:  # half-way: towards the middle of the frame
        start = math.floor(start) if centre > length / 2.0 else math.ceil(start)
    return min(max(int(round(start)), 0), length - side)


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
