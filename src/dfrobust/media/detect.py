"""Face detectors (dlib HOG default, dlib CNN, RetinaFace) and 68 landmarks.

Every detector answers the same question: boxes [x0, y0, x1, y1] and scores
for an RGB uint8 image. Landmarks always come from dlib's 68-point predictor
(the one the face-recognition-models wheel ships), as SBI and the FF++ tools use.
Beside the detector, RetinaFace can give each face found its own box
(`RetinaFaceBoxes`): SBI's authors crop around RetinaFace boxes and fit
landmarks on dlib's, and the face stage stores both from one decode.
"""

from __future__ import annotations

import math
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from dfrobust.core.errors import ConfigError, InputError
from dfrobust.core.settings import Settings
from dfrobust.media.dlib_models import CNN_DETECTOR, LANDMARKS_68, model_path


class FaceDetector(Protocol):
    name: str

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(boxes (k, 4) float32 [x0, y0, x1, y1], scores (k,)) for an RGB image."""


def _rects_to_array(rects) -> np.ndarray:
    return np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects], np.float32).reshape(-1, 4)


class DlibHogDetector:
    """dlib's HOG + linear SVM frontal face detector."""

    name = "dlib_hog"

    def __init__(self, upsample: int = 0):
        import dlib

        self.upsample = int(upsample)
        self._detector = dlib.get_frontal_face_detector()

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rects, scores, _ = self._detector.run(np.ascontiguousarray(image), self.upsample, 0.0)
        return _rects_to_array(rects), np.asarray(scores, np.float32)

    def rectangles(self, image: np.ndarray, upsample: int = 0, single_level: bool = False,
                   threshold: float = 0.0) -> list[tuple[tuple[int, int, int, int], float]]:
        """dlib's own detections ((left, top, right, bottom) inclusive, score) on `image`, scores >= threshold.

        single_level: score `image` itself only, not the smaller pyramid levels dlib would build from it.
        """
        detector = single_level_detector() if single_level else self._detector
        rects, scores, _ = detector.run(np.ascontiguousarray(image), upsample, threshold)
        return [((r.left(), r.top(), r.right(), r.bottom()), float(s)) for r, s in zip(rects, scores)]


# --- dlib's HOG pyramid, reproduced on regions ------------------------------------------
#
# dlib.get_frontal_face_detector().run(frame, u) upsamples the frame u times
# (pyramid_up: each (h, w) -> (2h+1, 2w+2), bilinear), then scans an image
# pyramid built level by level with pyramid_down<6> (each level a bilinear
# resize of the previous one to floor(5/6) of its size, sampling output pixel
# c at input position c * (n_in - 1) / (n_out - 1), values truncated), with
# 8-px HOG cells anchored at each level's pixel 0, 5 filters of 10x10 cells,
# and keeps the best-scoring window per face over all levels (non-maximum
# suppression: IoU > 0.33 or 79% covered). HogPyramid knows that geometry for
# one frame size, maps boxes between a level and the frame exactly as dlib
# does, builds dlib's own levels (exact_levels; cost grows with the frame) or
# any block of any level approximately (cv2.warpAffine with dlib's sampling
# positions, truncating like dlib, but not bit-identical: dlib's float32 sums
# truncate differently, scores differ by ~0.05). The single-level detector
# scores only the image it is given, so a crop of one of dlib's levels whose
# origin is on the level's 8-px grid gets dlib's own scores on that level
# (away from the crop's edges).

HOG_MIN_LEVEL_SIDE = 64  # the frontal face detector's min_pyramid_layer_width/height
HOG_BOX = 72  # right - left of a detection rectangle on its own level
PYR_UP, PYR_DOWN = 6 / 5.0, 5 / 6.0  # pyramid_down<6>: point_up(p) = p * PYR_UP + 0.3, point_down(p) = (p - 0.3) * PYR_DOWN


def _round(v: float) -> int:
    """dlib's drectangle -> rectangle rounding."""
    return math.floor(v + 0.5)


@lru_cache(maxsize=1)
def single_level_detector():
    """dlib's frontal face detector with max_pyramid_levels = 1: it scores the image it is given, no smaller levels.

    dlib's Python API has no setter for it, so the serialized detector is
    patched: the scanner stores cell size, padding, window width and height
    (80, 80) then max_pyramid_levels (1000), as dlib's variable-length ints.
    """
    import dlib

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "frontal.svm")
        dlib.get_frontal_face_detector().save(path)
        data = Path(path).read_bytes()
        key = b"\x01P\x01P\x02\xe8\x03"  # 80, 80, 1000
        if data.count(key) != 1:
            raise ConfigError("faces.detector: dlib's frontal face detector has an unexpected layout (dlib version?); "
                              "cannot restrict it to one pyramid level")
        Path(path).write_bytes(data.replace(key, b"\x01P\x01P\x01\x01"))
        return dlib.fhog_object_detector(path)


class HogPyramid:
    """dlib's HOG search geometry for frames of one size, searched with `upsample` steps."""

    def __init__(self, height: int, width: int, upsample: int):
        self.upsample = int(upsample)
        self.frame_size = (height, width)
        h, w, sy, sx = height, width, 1.0, 1.0
        for _ in range(self.upsample):
            h2, w2 = 2 * h + 1, 2 * w + 2
            sy, sx = sy * (h - 1) / (h2 - 1), sx * (w - 1) / (w2 - 1)
            h, w = h2, w2
        self.sizes = [(h, w)]
        self.step = [(1.0, 1.0)]  # sampling step of level k in level k-1 pixels
        self.from_frame = [(sy, sx)]  # sampling step of level k in frame pixels
        # as dlib's scan_fhog_pyramid::load counts its levels
        left, top, right, bottom, n = 0, 0, w - 1, h - 1, 0
        while True:
            left, top, right, bottom = (_round((v - 0.3) * PYR_DOWN) for v in (left, top, right, bottom))
            n += 1
            if not (right - left + 1 >= HOG_MIN_LEVEL_SIDE and bottom - top + 1 >= HOG_MIN_LEVEL_SIDE and n < 1000):
                break
            h2, w2 = (5 * h) // 6, (5 * w) // 6
            ys, xs = (h - 1) / max(h2 - 1, 1), (w - 1) / max(w2 - 1, 1)
            self.sizes.append((h2, w2))
            self.step.append((ys, xs))
            sy, sx = sy * ys, sx * xs
            self.from_frame.append((sy, sx))
            h, w = h2, w2

    @property
    def levels(self) -> int:
        return len(self.sizes)

    # -- geometry ------------------------------------------------------------------
    def point_to_level(self, x: float, y: float, level: int) -> tuple[float, float]:
        """A frame point on `level`, with dlib's pyramid point mappings."""
        for _ in range(self.upsample):
            x, y = (x + 1.25) * 2, (y + 0.75) * 2
        for _ in range(level):
            x, y = (x - 0.3) * PYR_DOWN, (y - 0.3) * PYR_DOWN
        return x, y

    def box_to_frame(self, rect: tuple[int, int, int, int], level: int) -> np.ndarray:
        """A detection rectangle (left, top, right, bottom inclusive) on `level` -> [x0, y0, x1, y1] in the frame, as dlib reports it."""
        corners = []
        for v in rect:
            for _ in range(level):
                v = v * PYR_UP + 0.3
            corners.append(_round(v))
        left, top, right, bottom = corners
        for _ in range(self.upsample):
            left, top, right, bottom = left / 2 - 1.25, top / 2 - 0.75, right / 2 - 1.25, bottom / 2 - 0.75
        left, top, right, bottom = (_round(v) for v in (left, top, right, bottom))
        return np.array([left, top, right + 1, bottom + 1], np.float32)

    def level_of_box(self, box: np.ndarray) -> int:
        """The level whose detections are the size of `box`."""
        side = max(box[2] - box[0], box[3] - box[1]) * 2 ** self.upsample
        return max(0, round(math.log(max(side, 1.0) / (HOG_BOX + 1)) / math.log(1.2)))

    # -- level images ----------------------------------------------------------------
    def level_block(self, frame: np.ndarray, level: int, block) -> np.ndarray:
        """Rows r0:r1, columns c0:c1 of `level`, sampled straight from the frame (float32, truncated)."""
        r0, r1, c0, c1 = block
        sy, sx = self.from_frame[level]
        H, W = frame.shape[:2]
        fr0, fc0 = max(0, int(r0 * sy) - 1), max(0, int(c0 * sx) - 1)
        fr1, fc1 = min(H, int((r1 - 1) * sy) + 3), min(W, int((c1 - 1) * sx) + 3)
        src = frame[fr0:fr1, fc0:fc1].astype(np.float32)
        return self._resample(src, (sy, sx), (r0 * sy - fr0, c0 * sx - fc0), (r1 - r0, c1 - c0))

    def next_block(self, image: np.ndarray, origin, level: int, block) -> np.ndarray:
        """Rows r0:r1, columns c0:c1 of `level` from a block of level - 1 whose top-left pixel is `origin`."""
        r0, r1, c0, c1 = block
        ys, xs = self.step[level]
        return self._resample(image, (ys, xs), (r0 * ys - origin[0], c0 * xs - origin[1]), (r1 - r0, c1 - c0))

    @staticmethod
    def _resample(src: np.ndarray, step, offset, shape) -> np.ndarray:
        matrix = np.array([[step[1], 0.0, offset[1]], [0.0, step[0], offset[0]]])
        out = cv2.warpAffine(src, matrix, (shape[1], shape[0]), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_REPLICATE)
        return np.floor(out, out=out)

    def needed(self, level: int, block) -> tuple[int, int, int, int]:
        """The block of level - 1 that `block` of `level` is sampled from."""
        r0, r1, c0, c1 = block
        ys, xs = self.step[level]
        h, w = self.sizes[level - 1]
        return (max(0, int(r0 * ys)), min(h, int((r1 - 1) * ys) + 2), max(0, int(c0 * xs)), min(w, int((c1 - 1) * xs) + 2))

    def crops(self, frame: np.ndarray, crops: dict[int, tuple[int, int, int, int]], first: int,
              exact: bool = False) -> dict[int, np.ndarray]:
        """uint8 crops {level: block} of several levels: `first` sampled from the frame, then level by level like dlib.

        exact: cut them from the whole levels as dlib builds them (exact_levels) instead.
        """
        top = max(crops)
        if exact:
            levels = self.exact_levels(frame, top)
            return {k: np.ascontiguousarray(levels[k][r0:r1, c0:c1]) for k, (r0, r1, c0, c1) in crops.items()}
        blocks = {top: crops[top]}
        for k in range(top, first, -1):
            need = self.needed(k, blocks[k])
            if k - 1 in crops:
                r0, r1, c0, c1 = crops[k - 1]
                need = (min(need[0], r0), max(need[1], r1), min(need[2], c0), max(need[3], c1))
            blocks[k - 1] = need
        out, image, origin = {}, None, None
        for k in range(first, top + 1):
            block = blocks[k]
            image = self.level_block(frame, k, block) if image is None else self.next_block(image, origin, k, block)
            origin = block[0], block[2]
            if k in crops:
                r0, r1, c0, c1 = crops[k]
                out[k] = image[r0 - origin[0]:r1 - origin[0], c0 - origin[1]:c1 - origin[1]].astype(np.uint8)
        return out

    def exact_levels(self, frame: np.ndarray, top: int) -> list[np.ndarray]:
        """Levels 0..top of the whole frame, built by dlib itself (bit-identical to its search; cost grows with the frame)."""
        import dlib

        image = np.ascontiguousarray(frame)
        for _ in range(self.upsample):
            image = dlib.resize_image(image, 2 * image.shape[0] + 1, 2 * image.shape[1] + 2)
        levels, down = [image], dlib.pyramid_down(6)
        for _ in range(top):
            levels.append(down(levels[-1]))
        return levels

    def level_image(self, frame: np.ndarray, level: int) -> np.ndarray:
        """The whole of `level`, sampled straight from the frame (uint8)."""
        h, w = self.sizes[level]
        return self.level_block(frame, level, (0, h, 0, w)).astype(np.uint8)


class DlibCnnDetector:
    """dlib's MMOD CNN face detector (slower on CPU, finds more profile faces)."""

    name = "dlib_cnn"

    def __init__(self, upsample: int = 0, weights: str | None = None):
        import dlib

        self.upsample = int(upsample)
        self._detector = dlib.cnn_face_detection_model_v1(str(weights or model_path(CNN_DETECTOR)))

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dets = self._detector(np.ascontiguousarray(image), self.upsample)
        boxes = _rects_to_array([d.rect for d in dets])
        return boxes, np.array([d.confidence for d in dets], np.float32)


class RetinaFaceDetector:
    """RetinaFace (ResNet-50, the published retinaface_resnet50_2020-07-20 weights from a local file;
    dfrobust.media.retinaface) as the face stage's detector.

    Compute nodes often have no internet: the weights file is configured
    (faces.retinaface.weights), never downloaded at run time. Runs on the image
    it is given (the face stage chooses the scale).
    """

    name = "retinaface"

    def __init__(self, cfg: Settings):
        """`cfg`: the validated faces.retinaface block."""
        from dfrobust.media.retinaface import load_retinaface

        self.cfg = cfg
        self.net = load_retinaface(cfg.weights, _device(cfg.device))

    def predict(self, image: np.ndarray, max_size: int | None = None):
        """(boxes, scores, five landmarks) as retinaface-pytorch's predict_jsons gives them."""
        from dfrobust.media.retinaface import predict

        return predict(self.net, np.ascontiguousarray(image), max_size, self.cfg.score_threshold,
                       self.cfg.nms_threshold)

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        boxes, scores, _ = self.predict(image)
        return boxes.astype(np.float32), scores


class RetinaFaceBoxes:
    """The RetinaFace box of a face another detector found (SBI crops around it).

    SBI's authors run RetinaFace on the whole frame resized so its longer
    side is 2048 px, keep the two largest faces, and take the one whose box
    best overlaps the box of the dlib landmarks (81 points, forehead
    included). Here RetinaFace runs on a window around the found face
    (`window` x its box, clamped to the frame) at the scale the authors'
    resize gives the frame (max_size / longer frame side), which finds the
    same face at the same scale for a fraction of the cost; the rest of the
    rule is theirs. None when RetinaFace finds no face overlapping it.
    """

    def __init__(self, cfg: Settings, detector: RetinaFaceDetector | None = None):
        """`cfg`: the validated faces.retinaface block."""
        self.cfg = cfg
        self.detector = detector or RetinaFaceDetector(cfg)
        self.window = float(cfg.window)
        self.max_size = cfg.max_size

    def __call__(self, frame: np.ndarray, box: np.ndarray, landmarks: np.ndarray) -> np.ndarray | None:
        import cv2

        from dfrobust.media.forehead import extend_landmarks
        from dfrobust.media.geometry import square_crop_box

        h, w = frame.shape[:2]
        x0, y0, x1, y1 = (int(v) for v in square_crop_box(box, self.window, w, h))
        scale = self.max_size / max(h, w) if self.max_size else 1.0
        window = frame[y0:y1, x0:x1]
        if scale != 1.0:
            size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
            window = cv2.resize(window, size, interpolation=cv2.INTER_LINEAR)
        boxes, _, _ = self.detector.predict(window, None)
        if not len(boxes):
            return None
        boxes = (boxes / scale).astype(np.int64) + np.array([x0, y0, x0, y0])
        lm = np.round(extend_landmarks(landmarks))
        return match_box(boxes, np.array([*lm.min(axis=0), *lm.max(axis=0)]))


def iou_inclusive(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of integer pixel boxes whose corners are both inside (the +1 convention of SBI's IoUfrom2bboxes)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    inter = ix * iy
    area = lambda r: (r[2] - r[0] + 1) * (r[3] - r[1] + 1)  # noqa: E731
    return float(inter / (area(a) + area(b) - inter))


def match_box(boxes: np.ndarray, landmark_box: np.ndarray) -> np.ndarray | None:
    """SBI's choice among detected boxes: of the two largest, the one overlapping the landmarks' box most
    (None if neither overlaps it)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    candidates = boxes[np.argsort(-areas, kind="stable")[:2]]
    overlaps = [iou_inclusive(landmark_box, b) for b in candidates]
    best = int(np.argmax(overlaps))
    return candidates[best].astype(np.float32) if overlaps[best] > 0 else None


def _device(name: str | None) -> str:
    if name in (None, "auto"):
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def make_detector(faces: Settings) -> FaceDetector:
    """Build the detector named in the validated faces block."""
    if faces.detector == "dlib_hog":
        return DlibHogDetector(upsample=faces.upsample)
    if faces.detector == "dlib_cnn":
        return DlibCnnDetector(upsample=faces.upsample)
    if faces.detector == "retinaface":
        return RetinaFaceDetector(faces.retinaface)
    raise InputError(f"faces.detector: unknown detector {faces.detector!r} (dlib_hog, dlib_cnn, retinaface)")


def make_box_finder(faces: Settings, detector: FaceDetector | None = None):
    """What finds each face's RetinaFace box beside the face stage's detector: None when no
    RetinaFace weights are configured; the detector's own box when it is RetinaFace."""
    if not faces.retinaface.weights:
        return None
    if faces.detector == "retinaface":
        return lambda frame, box, landmarks: np.asarray(box, np.float32)
    return RetinaFaceBoxes(faces.retinaface, detector if isinstance(detector, RetinaFaceDetector) else None)


class LandmarkPredictor:
    """dlib's 68-point shape predictor."""

    def __init__(self, weights: str | None = None):
        import dlib

        self._rect = dlib.rectangle
        self._predictor = dlib.shape_predictor(str(weights or model_path(LANDMARKS_68)))

    def __call__(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """(68, 2) float32 landmark coordinates in image pixels."""
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        shape = self._predictor(np.ascontiguousarray(image), self._rect(x0, y0, x1 - 1, y1 - 1))
        return np.array([[p.x, p.y] for p in shape.parts()], np.float32)
