"""Trained detectors for scoring: load weights.pt, turn face crops into fake
probabilities (batched, no gradients, eval mode, so deterministic)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dfrobust.detectors.base import Detector, resize_crops, to_tensor
from dfrobust.detectors.registry import build_detector
from dfrobust.core.errors import InputError
from dfrobust.core.io import atomic_path

WEIGHTS_FORMAT = "dfrobust-detector/1"


def pick_device(device: str | None = None) -> torch.device:
    """None or "auto": CUDA when available, else CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def save_weights(path: str | Path, detector: Detector, state_dict: dict, epoch: int, val_auc: float) -> None:
    """weights.pt: the selected model plus what is needed to rebuild it, nothing else."""
    blob = {
        "format": WEIGHTS_FORMAT,
        "method": detector.name,
        "config": detector.cfg,
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "epoch": int(epoch),
        "val_auc": float(val_auc),
    }
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)


def load_trained(model_dir: str | Path, device: str | None = None) -> Detector:
    """The detector saved in `model_dir`/weights.pt (or that file), in eval mode.

    It is rebuilt from its saved config with `pretrained: false` (nothing is
    downloaded) and carries its own preprocessing (input size, mean/std).
    `detector.trained` holds the selected epoch and its validation AUC.
    """
    path = Path(model_dir)
    if path.is_dir():
        path = path / "weights.pt"
    if not path.is_file():
        raise InputError(f"{path}: trained model weights do not exist")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        raise InputError(f"{path}: cannot read model weights ({err})") from err
    if not isinstance(blob, dict) or blob.get("format") != WEIGHTS_FORMAT:
        raise InputError(f"{path}: not a dfrobust weights file (format {WEIGHTS_FORMAT})")
    cfg = dict(blob["config"])
    if "pretrained" in cfg:
        cfg["pretrained"] = False  # the saved state dict holds every weight
    detector = build_detector(blob["method"], cfg)
    detector.load_state_dict(blob["state_dict"])
    detector.trained = {"epoch": blob["epoch"], "val_auc": blob["val_auc"], "path": str(path)}
    return detector.to(pick_device(device)).eval()


def predict_records(detector: Detector, records, batch_size: int = 64) -> np.ndarray:
    """Fake probability (float32) of every face of the given FaceRecords, in order: each face cut
    from its stored crop by the detector's `crop` (Detector.view_faces), as in training."""
    faces = [detector.view_faces(r) for r in records if r.n_faces]
    if not faces:
        return np.zeros(0, np.float32)
    return predict_faces(detector, np.concatenate(faces), batch_size)


def predict_faces(detector: Detector, crops: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Fake probability (float32, shape (n,)) of each uint8 RGB crop (n, S, S, 3).

    Crops are resized to the detector's input size as the whole face (for
    stored crops a detector cuts differently, use `predict_records`).
    """
    crops = np.asarray(crops)
    if len(crops) == 0:
        return np.zeros(0, np.float32)
    was_training = detector.training
    detector.eval()
    out = []
    try:
        with torch.inference_mode():
            for start in range(0, len(crops), batch_size):
                x = to_tensor(resize_crops(crops[start : start + batch_size], detector.input_size))
                out.append(detector.predict_proba(detector.preprocess(x)).float().cpu().numpy())
    finally:
        detector.train(was_training)
    return np.concatenate(out)
