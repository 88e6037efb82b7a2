"""ConvNeXt-base baseline of the gradient-regularisation paper (Guan et al.,
TIFS 2024): timm `convnext_base`, ImageNet weights, 224 px faces; the
training settings are the paper's for every backbone (gradreg.py). With PIMs
(procedure `pim`, after the three blocks of its first stage) and self-blended
training data (detector `sbi` with `backbone: convnext_base`, procedure
`dualflat` 1:0, i.e. PIM, stepped by SGD) it is the paper's best model.
"""

from __future__ import annotations

from dfrobust.detectors.gradreg import GradRegBaseline
from dfrobust.detectors.registry import register


@register("convnext_base")
class ConvNeXtBase(GradRegBaseline):
    """ConvNeXt-base (timm convnext_base), 2-class head, cross-entropy: the gradient-regularisation paper's baseline at 224 px."""

    defaults = {"backbone": "convnext_base", "input_size": 224}
