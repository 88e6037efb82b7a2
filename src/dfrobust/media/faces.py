"""Face finding, landmarks and crops: sampled frames -> largest face, 68 landmarks, 1.3x square crop.

Why it is fast: ffmpeg decodes the video once and converts only the sampled
frames; detection runs on a small image (a window around the previous face,
scaled so the face is ~track_face_px wide, or the whole frame downscaled to
detect_max_side); landmarks and the crop use the full-resolution frame. A
frame with no face found that way gets one full-resolution detection with
upsampling before it counts as missed, so nothing the straightforward way
finds is lost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from dfrobust.media.detect import FaceDetector, LandmarkPredictor, make_detector
from dfrobust.media.geometry import largest, square_crop_box, union_box


def pyramid_scale(target: float) -> float:
    """The largest scale <= target of the form 2 * (5/6)^k.

    dlib's HOG detector scans an image pyramid in steps of 5/6. Detecting on
    an image resized by a scale on this lattice visits the same pyramid levels
    as a full-resolution search with upsampling 1 (the straightforward way),
    so it returns the same boxes (IoU > 0.97 measured) at a fraction of the cost;
    an arbitrary scale such as 0.5 shifts the box quantisation (IoU ~0.77).
    """
    if target >= 2.0:
        return 2.0
    k = math.ceil(math.log(2.0 / target) / math.log(6.0 / 5.0) - 1e-9)
    return 2.0 * (5.0 / 6.0) ** k


@dataclass
class FaceFinder:
    """Detector + landmark predictor + the search strategy of the face stage."""

    detector: FaceDetector
    landmarks: LandmarkPredictor
    detect_max_side: int = 640
    track: bool = True
    track_face_px: int = 160
    fallback_upsample: int = 1
    _fallback: FaceDetector | None = None

    @classmethod
    def from_config(cls, cfg: dict) -> "FaceFinder":
        return cls(
            detector=make_detector(cfg),
            landmarks=LandmarkPredictor(),
            detect_max_side=cfg.get("detect_max_side", 640),
            track=cfg.get("track", True),
            track_face_px=cfg.get("track_face_px", 160),
            fallback_upsample=cfg.get("fallback_upsample", 1),
        )

    def _detect_scaled(self, image: np.ndarray, scale: float, detector: FaceDetector | None = None) -> np.ndarray:
        """Boxes found on `image` resized by `scale`, in `image` coordinates."""
        interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
        small = image if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale, interpolation=interp)
        boxes, _ = (detector or self.detector).detect(small)
        return boxes / scale

    def _fallback_detector(self) -> FaceDetector | None:
        if self.fallback_upsample <= 0 or not hasattr(self.detector, "upsample"):
            return None
        if self._fallback is None:
            self._fallback = type(self.detector)(upsample=self.fallback_upsample)
        return self._fallback

    def find(self, frame: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray | None:
        """Detector box [x0, y0, x1, y1] of the largest face in `frame`, or None."""
        h, w = frame.shape[:2]
        if self.track and previous is not None:
            side = max(previous[2] - previous[0], previous[3] - previous[1])
            cx, cy = (previous[0] + previous[2]) / 2, (previous[1] + previous[3]) / 2
            x0, y0 = int(max(0, cx - side * 1.25)), int(max(0, cy - side * 1.25))
            x1, y1 = int(min(w, cx + side * 1.25)), int(min(h, cy + side * 1.25))
            scale = pyramid_scale(min(1.0, self.track_face_px / max(side, 1.0)))
            boxes = self._detect_scaled(frame[y0:y1, x0:x1], scale)
            if len(boxes):
                return boxes[largest(boxes)] + np.array([x0, y0, x0, y0], np.float32)
        scale = pyramid_scale(min(1.0, self.detect_max_side / max(h, w)))
        boxes = self._detect_scaled(frame, scale)
        if not len(boxes) and (fallback := self._fallback_detector()) is not None:
            boxes = self._detect_scaled(frame, 1.0, fallback)
        if not len(boxes):
            return None
        return boxes[largest(boxes)]


def crop_face(frame: np.ndarray, box: np.ndarray, landmarks: np.ndarray, crop_scale: float, crop_size: int,
              extra_box: np.ndarray | None = None):
    """(crop (S,S,3), crop box, landmarks in crop pixels) for one face.

    The crop is the FF++ square of `crop_scale` x the face box, clamped to the
    frame; with an `extra_box` (the face's RetinaFace box) it is that square
    around the union of both boxes, so a detector cropping around either finds
    its margin inside (dfrobust.media.crops sizes `crop_scale` for that).
    """
    h, w = frame.shape[:2]
    around = box if extra_box is None or not np.isfinite(extra_box).all() else union_box(box, extra_box)
    cbox = square_crop_box(around, crop_scale, w, h)
    region = frame[cbox[1]:cbox[3], cbox[0]:cbox[2]]
    side = cbox[2] - cbox[0]
    interp = cv2.INTER_AREA if side > crop_size else cv2.INTER_LINEAR
    crop = cv2.resize(region, (crop_size, crop_size), interpolation=interp)
    lms = (landmarks - cbox[:2].astype(np.float32)) * (crop_size / side)
    return crop, cbox.astype(np.int32), lms.astype(np.float32)


Face = tuple  # (frame index, box, crop box, landmarks in crop pixels, crop, RetinaFace box): what a FaceRecord stores per face
NO_BOX = np.full(4, np.nan, np.float32)


def face_of(frame: np.ndarray, index: int, box: np.ndarray, landmarks: np.ndarray, crop_scale: float, crop_size: int,
            extra_box: np.ndarray | None = None) -> Face:
    """One face as the shards store it, from its boxes and landmarks in frame pixels."""
    crop, cbox, lms = crop_face(frame, box, landmarks, crop_scale, crop_size, extra_box)
    extra = NO_BOX if extra_box is None else np.asarray(extra_box, np.float32)
    return int(index), np.asarray(box, np.float32), cbox, lms, crop, extra


def faces_from_frames(frames, indices, finder: FaceFinder, crop_scale: float, crop_size: int, boxer=None) -> list[Face]:
    """Find, landmark and crop the face of each frame, tracking from the previous face;
    `boxer(frame, box, landmarks)` adds each face's RetinaFace box (or None).

    Frames without a face are left out (missed); the caller knows which were sampled.
    """
    faces, previous = [], None
    for index, frame in zip(indices, frames):
        box = finder.find(frame, previous)
        if box is None:
            continue
        previous = box
        landmarks = finder.landmarks(frame, box)
        extra = boxer(frame, box, landmarks) if boxer is not None else None
        faces.append(face_of(frame, index, box, landmarks, crop_scale, crop_size, extra))
    return faces
