"""Deepfake detectors: a registry of classes built from their config blocks.

    from dfrobust.detectors import build_data, build_detector, load_trained, predict_faces

Importing the package imports every module in it, so a detector registers
itself by being a module here with a `@register`-ed class: nothing else lists it.
"""

import importlib
import pkgutil

from dfrobust.detectors.registry import (available_detectors, build_data, build_detector, config_schema, detector_class,
                                         register, resolve_config)
from dfrobust.detectors.base import Detector
from dfrobust.detectors.data import FaceData, predict_faces
from dfrobust.detectors.inference import load_trained
from dfrobust.detectors.tensors import resize_crops

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "Detector", "FaceData", "available_detectors", "build_data", "build_detector", "config_schema", "detector_class",
    "load_trained", "predict_faces", "register", "resize_crops", "resolve_config",
]
