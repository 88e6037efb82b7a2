"""Face detectors (dlib HOG default, dlib CNN, RetinaFace) and 68 landmarks.

Every detector answers the same question: boxes [x0, y0, x1, y1] and scores
for an RGB uint8 image. Landmarks always come from dlib's 68-point predictor
(the one the face-recognition-models wheel ships), as SBI and the FF++ tools use.
Beside the detector, RetinaFace can give each face found its own box
(`RetinaFaceBoxes`): SBI's authors crop around RetinaFace boxes and fit
landmarks on dlib's, and the face stage stores both from one decode.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from dfrobust.core.errors import InputError
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

    def __init__(self, cfg: dict):
        from dfrobust.media.retinaface import load_retinaface

        self.cfg = cfg
        self.net = load_retinaface(cfg.get("weights"), _device(cfg.get("device", "auto")))

    def predict(self, image: np.ndarray, max_size: int | None = None):
        """(boxes, scores, five landmarks) as retinaface-pytorch's predict_jsons gives them."""
        from dfrobust.media.retinaface import predict

        return predict(self.net, np.ascontiguousarray(image), max_size, self.cfg.get("score_threshold", 0.7),
                       self.cfg.get("nms_threshold", 0.4))

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

    def __init__(self, cfg: dict, detector: RetinaFaceDetector | None = None):
        self.cfg = cfg
        self.detector = detector or RetinaFaceDetector(cfg)
        self.window = float(cfg.get("window", 3.0))
        self.max_size = cfg.get("max_size", 2048)

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


def make_detector(cfg: dict) -> FaceDetector:
    """Build the detector named in the faces config block."""
    name = cfg.get("detector", "dlib_hog")
    if name == "dlib_hog":
        return DlibHogDetector(upsample=cfg.get("upsample", 0))
    if name == "dlib_cnn":
        return DlibCnnDetector(upsample=cfg.get("upsample", 0))
    if name == "retinaface":
        return RetinaFaceDetector(cfg.get("retinaface") or {})
    raise InputError(f"faces.detector: unknown detector {name!r} (dlib_hog, dlib_cnn, retinaface)")


def make_box_finder(cfg: dict, detector: FaceDetector | None = None):
    """What finds each face's RetinaFace box beside the face stage's detector: None when no
    RetinaFace weights are configured; the detector's own box when it is RetinaFace."""
    retina = cfg.get("retinaface") or {}
    if not retina.get("weights"):
        return None
    if cfg.get("detector") == "retinaface":
        return lambda frame, box, landmarks: np.asarray(box, np.float32)
    return RetinaFaceBoxes(retina, detector if isinstance(detector, RetinaFaceDetector) else None)


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
