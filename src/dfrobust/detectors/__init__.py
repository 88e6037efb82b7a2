"""Deepfake detectors: a registry of classes built from their config blocks.

    from dfrobust.detectors import build_detector, load_trained, predict_faces

Importing the package registers every detector module listed below.
"""

from dfrobust.detectors.registry import available_detectors, build_detector, detector_class, register, resolve_config
from dfrobust.detectors.base import Detector, resize_crops
from dfrobust.detectors import capsule, sbi, xception  # noqa: F401  (registration)
from dfrobust.detectors.inference import load_trained, predict_faces

__all__ = [
    "Detector", "available_detectors", "build_detector", "detector_class", "load_trained",
    "predict_faces", "register", "resize_crops", "resolve_config",
]
