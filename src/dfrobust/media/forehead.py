"""81 face landmarks from 68: the iBUG points plus 13 forehead points.

SBI's authors fit dlib's 81-point model (codeniko/shape_predictor_81_face_
landmarks), whose 13 extra points trace the hairline, so that their blend
masks cover the forehead. That model is not on any package registry; the
13 points are placed here by a geometric rule on the 68 instead:

* the face's horizontal axis runs from jaw point 0 to jaw point 16 (the
  temples, at about eye level), its up direction is perpendicular to it,
  towards the brows;
* the hairline is as far above the brow line as the brows are above the
  base of the nose (point 33): the "rule of thirds" of facial proportions
  (hairline-brows, brows-nose base, nose base-chin about equal);
* the 13 points lie on the upper half of the ellipse through the temples
  whose top is that hairline, at equal angles, ordered from image-left
  to image-right (as the authors' reordered points 68..80, which their
  horizontal flip reverses).

A rule, not a fitted model: it follows head roll and scale, and only
roughly yaw and hairstyle.
"""

from __future__ import annotations

import numpy as np

N_FOREHEAD = 13


def forehead_points(landmarks: np.ndarray) -> np.ndarray:
    """(13, 2) float32 forehead points, left to right, for (68, 2) landmarks."""
    lm = np.asarray(landmarks, np.float64)
    if lm.shape[0] < 68 or lm.shape[1:] != (2,):
        raise ValueError(f"expected (68, 2) landmarks, got {lm.shape}")
    left, right = lm[0], lm[16]
    centre = (left + right) / 2
    half_width = np.linalg.norm(right - left) / 2
    if half_width <= 0:
        return np.repeat(centre[None], N_FOREHEAD, 0).astype(np.float32)
    x_axis = (right - left) / (2 * half_width)
    up = np.array([x_axis[1], -x_axis[0]])  # perpendicular; image y points down
    brows = lm[17:27].mean(axis=0)
    if np.dot(brows - lm[8], up) < 0:  # make `up` point from the chin towards the brows
        up = -up
    brow_height = np.dot(brows - centre, up)
    third = max(np.dot(brows - lm[33], up), 0.0)
    top = max(brow_height + third, 1e-3)
    angles = np.pi - (np.arange(N_FOREHEAD) + 0.5) * np.pi / N_FOREHEAD
    pts = centre + np.cos(angles)[:, None] * half_width * x_axis + np.sin(angles)[:, None] * top * up
    return pts.astype(np.float32)


def extend_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """(81, 2) float32: the 68 landmarks followed by the 13 forehead points."""
    lm = np.asarray(landmarks, np.float32)[:68]
    return np.concatenate([lm, forehead_points(lm)])
