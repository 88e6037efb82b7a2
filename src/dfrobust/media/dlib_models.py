"""Locate the dlib model files shipped by the face-recognition-models wheel.

The package's own `face_recognition_models` module imports pkg_resources at
import time (gone from recent setuptools), so we find its files through
importlib.metadata instead of importing it.
"""

from __future__ import annotations

import functools
import importlib.metadata
from pathlib import Path

from dfrobust.core.errors import InputError

LANDMARKS_68 = "shape_predictor_68_face_landmarks.dat"
CNN_DETECTOR = "mmod_human_face_detector.dat"


@functools.lru_cache(maxsize=None)
def model_path(name: str) -> Path:
    """Absolute path of one of the package's .dat files."""
    try:
        files = importlib.metadata.files("face_recognition_models") or []
    except importlib.metadata.PackageNotFoundError as err:
        raise InputError("the face-recognition-models package is not installed (pip install -e .)") from err
    for entry in files:
        if entry.name == name:
            path = Path(entry.locate()).resolve()
            if path.is_file():
                return path
    raise InputError(f"{name} not found in the face-recognition-models package")
