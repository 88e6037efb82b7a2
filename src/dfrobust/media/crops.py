"""The face each detector sees, cut from the stored crop, and the stored crop
that every configured detector fits in (plain geometry on config dicts: the
workflow computes the stored crop without importing the detectors).

A detector's `crop` setting says around which box it crops and how:

    crop: {box: face, scale: 1.3, shape: square, jitter: null}                 # FF++ (Xception, Capsule)
    crop: {box: retinaface, scale: 1.25, shape: box, jitter: [1.1, 1.4]}       # SBI's code

* box: `face`, the face stage's detector box (dlib), or `retinaface`, the
  face's RetinaFace box (faces.retinaface; the face box where none was found);
* shape: `square` is the FF++ crop (a square of scale x the box's longer side,
  shifted to stay inside the image); `box` is SBI's (each side of the box
  extended by (scale - 1) / 2 of its length, cut at the image edge; not
  square, resized to a square input as their code does);
* scale: the crop for validation and test (and training without jitter);
* jitter: training crops are drawn per sample: with shape `box`, each of the
  four margins independently, so the crop spans jitter[0]..jitter[1] of the
  box in each direction (SBI: w/4 x U(0.2, 0.8) per side, i.e. 1.1-1.4x);
  with shape `square`, the side's scale uniformly in that range.

The face stage stores one square crop per face, `faces.crop_scale` x the
union of the face's boxes, at `faces.crop_size` px; `resolve_faces` computes
both from the configured detectors so that every detector's largest crop
fits inside and its smallest spans at least its input size. Detectors then
cut their faces from it at training time (per sample, with jitter) and at
scoring time, without decoding a video again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np

from dfrobust.core.errors import InputError
from dfrobust.media.geometry import margin_region, square_region

SHAPES = ("square", "box")
BOXES = ("face", "retinaface")


@dataclass(frozen=True)
class CropSpec:
    """A detector's `crop` setting (its defaults are the detector's: dfrobust.detectors.base)."""

    box: str
    scale: float
    shape: str
    jitter: tuple[float, float] | None

    @classmethod
    def from_cfg(cls, cfg: Mapping, where: str) -> "CropSpec":
        jitter = cfg["jitter"]
        spec = cls(str(cfg["box"]), float(cfg["scale"]), str(cfg["shape"]),
                   (float(jitter[0]), float(jitter[1])) if jitter else None)
        if spec.box not in BOXES or spec.shape not in SHAPES:
            raise InputError(f"config key '{where}': box must be one of {BOXES} and shape one of {SHAPES}")
        if spec.jitter and not 1.0 <= spec.jitter[0] <= spec.jitter[1]:
            raise InputError(f"config key '{where}.jitter': expected [low, high] with 1 <= low <= high, got {list(spec.jitter)}")
        return spec

    @property
    def largest(self) -> float:
        """The largest extent of a crop relative to its box side."""
        return max(self.scale, self.jitter[1] if self.jitter else 0.0)

    @property
    def smallest(self) -> float:
        return min(self.scale, self.jitter[0] if self.jitter else math.inf)

    def margins(self, rng: np.random.Generator | None = None) -> np.ndarray:
        """(left, right, top, bottom) margins as fractions of the box's width / height."""
        if rng is None or not self.jitter:
            return np.full(4, (self.scale - 1) / 2)
        low, high = ((j - 1) / 2 for j in self.jitter)
        return low + (high - low) * rng.random(4)

    def region(self, box: np.ndarray, bounds: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """The crop around `box` inside `bounds` (both [x0, y0, x1, y1) in the same pixels); integer."""
        if self.shape == "square":
            scale = self.scale if rng is None or not self.jitter else float(rng.uniform(*self.jitter))
            return square_region(box, scale, bounds)
        return margin_region(box, self.margins(rng), bounds)


def pick_boxes(spec: CropSpec, boxes: np.ndarray, retina_boxes: np.ndarray | None) -> np.ndarray:
    """Per face, the box the crop is around: the RetinaFace box where the spec asks for it and one
    was found, else the face box."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if spec.box != "retinaface" or retina_boxes is None:
        return boxes
    retina = np.asarray(retina_boxes, np.float64).reshape(-1, 4)
    found = np.isfinite(retina).all(axis=1)
    return np.where(found[:, None], retina, boxes)


def cut(crop: np.ndarray, crop_box: np.ndarray, region: np.ndarray, size: int, interpolation: int | None = None) -> np.ndarray:
    """The part of a stored crop (S x S pixels covering `crop_box` of the frame) that is `region`
    of the frame, resized to size x size. Area interpolation when shrinking, bilinear when
    enlarging (as `resize_crops`), unless `interpolation` says otherwise."""
    import cv2

    s = crop.shape[0]
    side = float(crop_box[2] - crop_box[0])
    r = np.rint((np.asarray(region, np.float64) - np.tile(np.asarray(crop_box[:2], np.float64), 2)) * (s / side)).astype(int)
    x0, y0 = max(r[0], 0), max(r[1], 0)
    x1, y1 = max(min(r[2], s), x0 + 1), max(min(r[3], s), y0 + 1)
    part = crop[y0:y1, x0:x1]
    if part.shape[:2] == (size, size):
        return np.ascontiguousarray(part)
    if interpolation is None:
        interpolation = cv2.INTER_AREA if max(part.shape[:2]) > size else cv2.INTER_LINEAR
    return cv2.resize(part, (size, size), interpolation=interpolation)


def frame_landmarks(landmarks: np.ndarray, crop_boxes: np.ndarray, crop_size: int) -> np.ndarray:
    """Landmarks in stored-crop pixels -> frame pixels."""
    side = (crop_boxes[:, 2] - crop_boxes[:, 0]).astype(np.float64)
    return landmarks * (side / crop_size)[:, None, None] + crop_boxes[:, None, :2].astype(np.float64)


# -- the stored crop -----------------------------------------------------------------------------------
def stored_crop(detectors: Iterable[tuple[str, Mapping]]) -> dict:
    """The stored crop every given detector fits in: {crop_scale, crop_size, retinaface, needs}.

    `detectors` are (name, config block) pairs with complete blocks (their
    `crop` and `input_size`: the validated config's, with a model's own
    settings over them; dfrobust.detectors.crop.stored_crop_of fills partial
    ones from the classes). The scale is the largest crop any of them takes
    (relative to its box); the size lets the smallest crop each takes span
    at least its input size when its box is the union's longer side.
    """
    needs = []
    for name, cfg in detectors:
        if "crop" not in cfg or "input_size" not in cfg:
            raise InputError(f"stored_crop: detectors.{name} has no crop / input_size (pass the validated block)")
        spec = CropSpec.from_cfg(cfg["crop"], f"detectors.{name}.crop")
        needs.append((name, spec, int(cfg["input_size"])))
    if not needs:
        raise InputError("stored_crop: no detector configured")
    scale = max(spec.largest for _, spec, _ in needs)
    per = {}  # the most demanding block of each detector (models may give one detector several)
    for name, spec, size in needs:
        need = {"input_size": size, "largest": spec.largest, "smallest": spec.smallest,
                "crop_size": math.ceil(size * scale / spec.smallest - 1e-9)}
        if name not in per or (need["crop_size"], need["largest"]) > (per[name]["crop_size"], per[name]["largest"]):
            per[name] = need
    return {"crop_scale": round(scale, 6), "crop_size": max(n["crop_size"] for n in per.values()),
            "retinaface": sorted({name for name, spec, _ in needs if spec.box == "retinaface"}), "needs": per}


def resolve_faces(faces: Mapping, detectors: Iterable[tuple[str, Mapping]]) -> tuple[dict, list[str]]:
    """The faces block with crop_scale / crop_size computed where the config leaves them null,
    and notes for the run's log: set values smaller than the detectors need, and detectors
    cropping around RetinaFace boxes without RetinaFace weights."""
    need = stored_crop(detectors)
    out, notes = dict(faces), []
    for key, what in (("crop_scale", "margin"), ("crop_size", "size")):
        if out[key] is None:
            out[key] = need[key]
        elif out[key] < need[key]:
            who = max(need["needs"], key=lambda n: need["needs"][n]["largest" if key == "crop_scale" else "crop_size"])
            notes.append(f"faces.{key} = {out[key]} is below the {what} detector {who} needs ({need[key]}): "
                         + ("its larger crops are cut at the stored crop's edge" if key == "crop_scale"
                            else "its faces are enlarged from fewer pixels"))
    if need["retinaface"] and not faces["retinaface"]["weights"]:
        notes.append(f"detector(s) {', '.join(need['retinaface'])} crop around RetinaFace boxes, but faces.retinaface.weights "
                     "is not set: they crop around the face detector's boxes")
    return out, notes
