"""Deepfake detectors: a registry of classes built from their config blocks.

    from dfrobust.detectors import build_detector, load_trained, predict_faces

Importing the package imports every module in it, so a detector registers
itself by being a module here with a `@register`-ed class: nothing else lists it.
"""

import importlib
import pkgutil

from dfrobust.detectors.registry import (available_detectors, build_detector, config_schema, detector_class, register,
                                         resolve_config)
from dfrobust.detectors.base import Detector, resize_crops
from dfrobust.detectors.inference import load_trained, predict_faces, predict_records

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "Detector", "available_detectors", "build_detector", "config_schema", "detector_class", "load_trained",
    "predict_faces", "predict_records", "register", "resize_crops", "resolve_config",
]
