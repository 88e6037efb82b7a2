"""EfficientNet-B4 baseline of the gradient-regularisation paper (Guan et al.,
TIFS 2024): timm `efficientnet_b4`, ImageNet weights, 380 px faces; the
training settings are the paper's for every backbone (gradreg.py). PIMs
(procedure `pim`) sit after the blocks of its first stride-4 stage, timm's
`blocks.1` (four inverted-residual blocks).
"""

from __future__ import annotations

from dfrobust.detectors.gradreg import GradRegBaseline
from dfrobust.detectors.registry import register


@register("efficientnet_b4")
class EfficientNetB4(GradRegBaseline):
    """EfficientNet-B4 (timm efficientnet_b4), 2-class head, cross-entropy: the gradient-regularisation paper's baseline at 380 px."""

    defaults = {"backbone": "efficientnet_b4", "input_size": 380}
