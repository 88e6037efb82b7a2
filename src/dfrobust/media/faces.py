"""Face finding, landmarks and crops: sampled frames -> largest face, 68 landmarks, 1.3x square crop.

The boxes to reproduce are those of the straightforward search (FF++'s own
extraction): dlib's HOG detector with upsampling `fallback_upsample` (1) on
the full-resolution frame. It is slow because most of its work is on the
first pyramid levels (the upsampled frame), where faces are tiny. A face is
found on one level (box side ~36 * 1.2^k frame px) and which level wins is
often a near tie, so a search on any other image (the frame downscaled, a
window resized by a lattice scale) gives boxes one level (6/5 in size) away.

How the face stage gets the same boxes fast (dlib_hog): HogPyramid rebuilds
dlib's own levels, but only around the face (the same level sizes, sampling
positions and truncation, the same 8-px HOG cell grid, dlib's box mappings),
and dlib's filters score the level of the previous frame's face and its two
neighbours there (search_near). The level where the face is `track_face_px`
wide is sampled straight from the frame, the levels above it are built one
from the other as dlib does; frames up to EXACT_MAX_PIXELS get dlib's own
levels. A frame whose face is not near the previous one is searched whole,
from the first level of dlib's pyramid no larger than `detect_max_side`
(search_whole), and that face is refined by search_near. A frame still
without a face gets the straightforward search itself before it counts as
missed, unless the tracked face is still there but below the detector's
threshold (turned away, blurred), which the straightforward search would
miss too. ffmpeg decodes the video once and converts only the sampled
frames; landmarks and the crop use the full-resolution frame.

The rebuilt levels are not bit-identical to dlib's (dlib truncates float32
bilinear sums at every level), so a near tie between two levels can still go
the other way: on real FF++/DFDC clips 96-97% of the boxes are dlib's own,
the rest one level off; see bench/README.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from dfrobust.core.settings import Settings
from dfrobust.media.detect import HOG_BOX, PYR_DOWN, DlibHogDetector, FaceDetector, HogPyramid, LandmarkPredictor, make_detector
from dfrobust.media.geometry import largest, square_crop_box, union_box

NEAR_MARGIN = 40  # level pixels searched around the expected detection box, on each side
NEAR_GUARD = 16  # detections this close to a crop edge inside the level are not trusted (their HOG cells see the edge)
EXACT_MAX_PIXELS = 160_000  # frames up to ~400x400: dlib builds the whole levels itself (bit-identical, a few ms)
FOUND_SLACK = 0.05  # a face counts down to this score below dlib's threshold (the rebuilt levels' scores are this close)
PRESENT_SCORE = -1.0  # down to this score the tracked face is still there: below the threshold it is a miss, without
# the straightforward search over the whole frame


def pyramid_scale(target: float) -> float:
    """The largest scale <= target of the form 2 * (5/6)^k.

    dlib's detectors scan an image pyramid in steps of 5/6; a scale on this
    lattice keeps the face sizes a detector sees close to those of a
    full-resolution search with upsampling 1. Used by the detectors other
    than dlib_hog (whose search reproduces dlib's pyramid itself, HogPyramid).
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
    detect_max_side: int
    track: bool
    track_face_px: int
    fallback_upsample: int
    _fallback: FaceDetector | None = None
    _pyramids: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_config(cls, faces: Settings) -> "FaceFinder":
        """From the validated `faces` block (dfrobust.core.config.block)."""
        return cls(
            detector=make_detector(faces),
            landmarks=LandmarkPredictor(),
            detect_max_side=faces.detect_max_side,
            track=faces.track,
            track_face_px=faces.track_face_px,
            fallback_upsample=faces.fallback_upsample,
        )

    def find(self, frame: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray | None:
        """Detector box [x0, y0, x1, y1] of the largest face in `frame`, or None."""
        if isinstance(self.detector, DlibHogDetector):
            return self._find_hog(frame, previous)
        return self._find_scaled(frame, previous)

    # -- dlib HOG: the straightforward search's own pyramid levels --------------------
    def pyramid(self, shape) -> HogPyramid:
        key = tuple(shape[:2])
        if key not in self._pyramids:
            self._pyramids[key] = HogPyramid(*key, upsample=max(0, self.fallback_upsample))
        return self._pyramids[key]

    def _find_hog(self, frame: np.ndarray, previous: np.ndarray | None) -> np.ndarray | None:
        below_threshold = False
        if self.track and previous is not None:
            near = self.search_near(frame, previous)
            if near is not None:
                box, score = near
                if score >= -FOUND_SLACK:
                    return box
                below_threshold = score >= PRESENT_SCORE
        found = self.search_whole(frame)
        if found is not None:
            near = self.search_near(frame, found)
            if near is None:
                return found
            return near[0] if near[1] >= -FOUND_SLACK else None
        if below_threshold or self.fallback_upsample <= 0:
            return None
        rects = self.detector.rectangles(frame, self.fallback_upsample)  # the straightforward search itself
        if not rects:
            return None
        boxes = np.array([[r[0], r[1], r[2] + 1, r[3] + 1] for r, _ in rects], np.float32)
        return boxes[largest(boxes)]

    def search_near(self, frame: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, float] | None:
        """(box, score) of the straightforward search's best detection near `box`, down to PRESENT_SCORE.

        Scores the level whose detections are the size of `box` and its two
        neighbours, each on a crop around `box` whose origin is on the
        level's 8-px cell grid. None when there is no detection or the best
        one is next to a crop edge (the face moved away).
        """
        pyramid = self.pyramid(frame.shape)
        k0 = pyramid.level_of_box(box)
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        half = HOG_BOX / 2 + NEAR_MARGIN
        crops = {}
        for k in (k0 - 1, k0, k0 + 1):
            if not 0 <= k < pyramid.levels:
                continue
            lx, ly = pyramid.point_to_level(cx, cy, k)
            h, w = pyramid.sizes[k]
            c0, r0 = max(0, int(lx - half) // 8 * 8), max(0, int(ly - half) // 8 * 8)
            c1, r1 = min(w, math.ceil(lx + half)), min(h, math.ceil(ly + half))
            if c1 - c0 > 2 * NEAR_GUARD and r1 - r0 > 2 * NEAR_GUARD:
                crops[k] = (r0, r1, c0, c1)
        if not crops:
            return None
        below = math.ceil(math.log(max(self.track_face_px, HOG_BOX) / HOG_BOX) / math.log(1.2))
        exact = frame.shape[0] * frame.shape[1] <= EXACT_MAX_PIXELS
        images = pyramid.crops(frame, crops, first=min(min(crops), max(0, k0 - below)), exact=exact)
        best = None
        for k, (r0, r1, c0, c1) in crops.items():
            h, w = pyramid.sizes[k]
            for (left, top, right, bottom), score in self.detector.rectangles(images[k], single_level=True,
                                                                                threshold=PRESENT_SCORE):
                inside = ((c0 == 0 or left >= NEAR_GUARD) and (r0 == 0 or top >= NEAR_GUARD)
                          and (c1 == w or right < c1 - c0 - NEAR_GUARD) and (r1 == h or bottom < r1 - r0 - NEAR_GUARD))
                if best is None or score > best[0]:
                    best = (score, inside, k, (left + c0, top + r0, right + c0, bottom + r0))
        if best is None or not best[1]:
            return None
        return pyramid.box_to_frame(best[3], best[2]), best[0]

    def search_whole(self, frame: np.ndarray) -> np.ndarray | None:
        """Largest face of the whole frame on dlib's levels no larger than detect_max_side (the first one sampled from the frame)."""
        pyramid = self.pyramid(frame.shape)
        first = next((k for k, size in enumerate(pyramid.sizes) if max(size) <= self.detect_max_side), pyramid.levels - 1)
        boxes = []
        for rect, _ in self.detector.rectangles(pyramid.level_image(frame, first)):
            # dlib scaled the rectangle up from its own level by 6/5 per level (rounded); undo that exactly
            above = max(0, round(math.log(max(rect[2] - rect[0], 1) / HOG_BOX) / math.log(1.2)))
            on_level = []
            for v in rect:
                for _ in range(above):
                    v = (v - 0.3) * PYR_DOWN
                on_level.append(math.floor(v + 0.5))
            boxes.append(pyramid.box_to_frame(tuple(on_level), first + above))
        return boxes[largest(np.array(boxes))] if boxes else None

    # -- other detectors: a small image on dlib's pyramid lattice --------------------
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

    def _find_scaled(self, frame: np.ndarray, previous: np.ndarray | None) -> np.ndarray | None:
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
