"""Face detectors (dlib HOG default, dlib CNN, RetinaFace optional) and 68 landmarks.

Every detector answers the same question: boxes [x0, y0, x1, y1] and scores
for an RGB uint8 image. Landmarks always come from dlib's 68-point predictor
(the one the face-recognition-models wheel ships), as SBI and the FF++ tools use.
"""

from __future__ import annotations

from pathlib import Path
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
    """RetinaFace (retinaface-pytorch, ResNet-50) with weights from a local file.

    Compute nodes often have no internet: the weights file is configured
    (faces.retinaface_weights) instead of downloaded at run time.
    """

    name = "retinaface"

    def __init__(self, weights: str | None, score_threshold: float = 0.7, max_size: int = 1024, device: str = "cpu"):
        if not weights or not Path(weights).is_file():
            raise InputError(f"faces.retinaface_weights: weights file {weights!r} does not exist")
        try:
            from retinaface.predict_single import Model
        except ImportError as err:
            raise InputError("detector 'retinaface' needs the optional package: pip install -e '.[retinaface]'") from err
        import torch

        self._model = Model(max_size=max_size, device=device)
        state = torch.load(weights, map_location="cpu", weights_only=True)
        self._model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
        self._model.eval()
        self.score_threshold = score_threshold

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        faces = self._model.predict_jsons(image, confidence_threshold=self.score_threshold)
        kept = [f for f in faces if f.get("bbox") and len(f["bbox"]) == 4 and f.get("score", -1) >= self.score_threshold]
        boxes = np.array([f["bbox"] for f in kept], np.float32).reshape(-1, 4)
        return boxes, np.array([f["score"] for f in kept], np.float32)


def make_detector(cfg: dict) -> FaceDetector:
    """Build the detector named in the faces config block."""
    name = cfg.get("detector", "dlib_hog")
    if name == "dlib_hog":
        return DlibHogDetector(upsample=cfg.get("upsample", 0))
    if name == "dlib_cnn":
        return DlibCnnDetector(upsample=cfg.get("upsample", 0))
    if name == "retinaface":
        return RetinaFaceDetector(weights=cfg.get("retinaface_weights"))
    raise InputError(f"faces.detector: unknown detector {name!r} (dlib_hog, dlib_cnn, retinaface)")


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
