"""Xception (Rössler et al., FaceForensics++): the original Xception (timm
`legacy_xception`, ImageNet weights) with a 2-class head, trained with
cross-entropy on class-balanced batches.

Settings of the paper: input 299, Adam (0.9, 0.999) lr 1e-3, batch 64,
10 epochs, 100 frames per training video and 32 per validation video.
Normalisation is Xception's own (mean = std = 0.5), and dropout 0.5 before
the last layer as in the FaceForensics++ reference model.
"""

from __future__ import annotations

from dfrobust.detectors.base import TimmClassifier
from dfrobust.detectors.registry import register


@register("xception")
class Xception(TimmClassifier):
    """Xception (FaceForensics++): timm legacy_xception, 2-class head, cross-entropy on class-balanced batches."""

    defaults = {
        "backbone": "legacy_xception",
        "input_size": 299,
        "mean": [0.5, 0.5, 0.5],
        "std": [0.5, 0.5, 0.5],
        "drop_rate": 0.5,
        "optimizer": {"name": "adam", "lr": 1.0e-3, "betas": [0.9, 0.999]},
        "epochs": 10,
        "batch_size": 64,
        "frames_per_video": 100,
        "val_frames_per_video": 32,
        "balanced": True,
    }
