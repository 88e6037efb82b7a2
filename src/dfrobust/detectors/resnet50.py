"""ResNet-50 baseline of the gradient-regularisation paper (Guan et al., TIFS
2024): timm `resnet50`, ImageNet weights, 224 px faces; the training
settings are the paper's for every backbone (gradreg.py). PIMs (procedure
`pim`) sit after the three bottlenecks of `layer1`, its first stage.
"""

from __future__ import annotations

from dfrobust.detectors.gradreg import GradRegBaseline
from dfrobust.detectors.registry import register


@register("resnet50")
class ResNet50(GradRegBaseline):
    """ResNet-50 (timm resnet50), 2-class head, cross-entropy: the gradient-regularisation paper's baseline at 224 px."""

    defaults = {"backbone": "resnet50", "input_size": 224}
