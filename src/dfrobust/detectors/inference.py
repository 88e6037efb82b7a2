"""Trained detectors: the weights.pt a training run writes, and loading it back
for scoring (eval mode, its own preprocessing, nothing downloaded)."""

from __future__ import annotations

from pathlib import Path

import torch

from dfrobust.detectors.base import Detector
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
