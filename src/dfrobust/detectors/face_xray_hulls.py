"""The four blend-mask shapes of the Face X-ray re-implementation SBI's authors
recommend (github.com/AlgoHunt/Face-Xray, DeepFakeMask.py and
bi_online_generation.random_get_hull): SBI's code draws one of them per
sample when that library is present ("the performance of trained model is
expected to be lower" without it, their README says).

* dfl_full: hulls of the jaw with the mouth, the nose ridge, and the brows
  with the eyes' corners (DeepFaceLab's full mask);
* extended: the components mask with the brows pushed up by half their
  distance to the eyes;
* components: eight part hulls (jaw halves, cheeks, nose ridge, eyes, nose);
* facehull: the convex hull of all points given (81 with the forehead),
  anti-aliased.

Masks are float32 in [0, 1] (theirs are mask / 255 of 0..255 masks). Only
facehull uses the forehead points (indices 68 on); the other three use the
68.
"""

from __future__ import annotations

import cv2
import numpy as np

HULLS = ("dfl_full", "extended", "components", "facehull")


def _fill(shape, parts) -> np.ndarray:
    mask = np.zeros(shape, np.float32)
    for part in parts:
        cv2.fillConvexPoly(mask, cv2.convexHull(np.concatenate(part)), 255.0)
    return mask


def dfl_full(lm: np.ndarray, shape) -> np.ndarray:
    jaw = (lm[0:17], lm[48:68], lm[0:1], lm[8:9], lm[16:17])
    nose_ridge = (lm[27:31], lm[33:34])
    eyes = (lm[17:27], lm[0:1], lm[27:28], lm[16:17], lm[33:34])
    return _fill(shape, [jaw, nose_ridge, eyes])


def components(lm: np.ndarray, shape) -> np.ndarray:
    r_jaw = (lm[0:9], lm[17:18])
    l_jaw = (lm[8:17], lm[26:27])
    r_cheek = (lm[17:20], lm[8:9])
    l_cheek = (lm[24:27], lm[8:9])
    nose_ridge = (lm[19:25], lm[8:9])
    r_eye = (lm[17:22], lm[27:28], lm[31:36], lm[8:9])
    l_eye = (lm[22:27], lm[27:28], lm[31:36], lm[8:9])
    nose = (lm[27:31], lm[31:36])
    return _fill(shape, [r_jaw, l_jaw, r_cheek, l_cheek, nose_ridge, r_eye, l_eye, nose])


def extended(lm: np.ndarray, shape) -> np.ndarray:
    lm = lm.copy()
    ml, mr = (lm[36] + lm[0]) // 2, (lm[16] + lm[45]) // 2  # between the face side and the eye corner
    ql, qr = (lm[36] + ml) // 2, (lm[45] + mr) // 2
    bot_l = np.array((ql, lm[36], lm[37], lm[38], lm[39]))
    bot_r = np.array((lm[42], lm[43], lm[44], lm[45], qr))
    top_l, top_r = lm[17:22], lm[22:27]
    lm[17:22] = top_l + (top_l - bot_l) // 2
    lm[22:27] = top_r + (top_r - bot_r) // 2
    return components(lm, shape)


def facehull(lm: np.ndarray, shape) -> np.ndarray:
    mask = np.zeros(shape, np.float32)
    cv2.fillConvexPoly(mask, cv2.convexHull(lm.reshape(-1, 2)), 255.0, lineType=cv2.LINE_AA)
    return mask


def random_hull(landmarks: np.ndarray, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """One of the four masks, drawn uniformly (their random_get_hull), float32 in [0, 1]."""
    lm = np.asarray(landmarks).astype(np.int32)
    make = (dfl_full, extended, components, facehull)[int(rng.integers(4))]
    return make(lm, tuple(shape[:2])) / 255.0
