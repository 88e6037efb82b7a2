"""VGG19 up to its third max-pooling layer: the feature extractor Capsule-Forensics
freezes (capsule.py), and a classifier that trains it where ImageNet weights
cannot be had.

Capsule-Forensics takes the extractor from an ImageNet VGG19 and never trains
it. Offline (the demo, the tests) those weights do not exist, and a random,
frozen VGG19 gives the capsules features that barely separate the demo's fakes
(docs/demo.md). A plain VGG19 (no batch norm) does not learn from scratch
either: its 8 convolutions stay at chance for 6 epochs. So the classifier here,
`vgg19bn_pool3`, is torchvision's VGG19 with batch norm up to pool3, global
average pooling and a linear 2-class head, trained with cross-entropy by the
workflow like any detector. Capsule's `pretrained: <its weights.pt>` folds each
batch norm (running statistics) into the convolution before it, which gives
exactly the plain VGG19 layers of the paper, with weights (`fold_batch_norm`).
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from dfrobust.core.errors import InputError
from dfrobust.detectors.base import Detector, load_matching, load_weights_file, read_weights_file
from dfrobust.detectors.registry import register

POOL3 = {False: 19, True: 27}  # features[:n] ends with the third max pooling (plain, with batch norm)


def vgg19_features(batch_norm: bool) -> nn.Sequential:
    """torchvision's VGG19 layers up to pool3 (256 channels, 1/8 resolution), with its initialisation."""
    vgg = torchvision.models.vgg
    features = vgg.make_layers(vgg.cfgs["E"], batch_norm=batch_norm)[: POOL3[batch_norm]]
    for m in features.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return features


def fold_batch_norm(features_bn: nn.Sequential) -> nn.Sequential:
    """The plain VGG19 layers computing what `features_bn` computes in eval mode:
    conv then BN(mean m, var v, weight g, bias b) is conv with weight W g/sqrt(v+eps)
    and bias (c - m) g/sqrt(v+eps) + b."""
    plain = vgg19_features(batch_norm=False)
    convs = [m for m in plain if isinstance(m, nn.Conv2d)]
    pairs = [(c, n) for c, n in zip(features_bn, features_bn[1:]) if isinstance(c, nn.Conv2d)]
    if len(pairs) != len(convs) or not all(isinstance(n, nn.BatchNorm2d) for _, n in pairs):
        raise ValueError("fold_batch_norm: expected VGG19-BN layers up to pool3")
    with torch.no_grad():
        for conv, (conv_bn, norm) in zip(convs, pairs):
            scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
            conv.weight.copy_(conv_bn.weight * scale[:, None, None, None])
            conv.bias.copy_((conv_bn.bias - norm.running_mean) * scale + norm.bias)
    return plain


def vgg19_pool3(pretrained, key: str) -> tuple[nn.Sequential, str]:
    """The plain VGG19 layers up to pool3, with weights as `pretrained` says: True,
    torchvision's ImageNet VGG19; a path, a VGG19 or VGG19-BN state dict with
    torchvision's names (`features.N.*`; a vgg19bn_pool3 model's weights.pt),
    batch norm folded; False, random. Returns the layers and a log line."""
    if pretrained is True:
        weights = torchvision.models.VGG19_Weights.IMAGENET1K_V1
        return torchvision.models.vgg19(weights=weights).features[: POOL3[False]], "torchvision VGG19 ImageNet weights"
    if not isinstance(pretrained, str):
        return vgg19_features(batch_norm=False), ""
    state = read_weights_file(pretrained, key)
    batch_norm = any(k.startswith("features.") and k.endswith(".running_var") for k in state)
    holder = nn.Module()
    holder.features = vgg19_features(batch_norm)  # the key names of a torchvision VGG19 state dict
    report = load_matching(holder, state, pretrained)
    if not batch_norm:
        return holder.features, report
    if any(f"features.{i}.running_var" not in state for i, m in enumerate(holder.features) if isinstance(m, nn.BatchNorm2d)):
        raise InputError(f"{pretrained}: a VGG19-BN state dict without every batch norm up to pool3 (config key '{key}')")
    return fold_batch_norm(holder.features.eval()), report + "; batch norm folded into the convolutions"


@register("vgg19bn_pool3")
class VGG19BNPool3(Detector):
    """VGG19-BN up to pool3, global average pooling, a linear 2-class head, cross-entropy:
    trains Capsule-Forensics' extractor on the training faces (module docstring)."""

    defaults = {
        "pretrained": False,
        "input_size": 64,
        "optimizer": {"name": "adam", "lr": 1.0e-3, "betas": [0.9, 0.999]},
        "epochs": 6,
        "batch_size": 32,
        "frames_per_video": 16,
        "val_frames_per_video": 8,
        "balanced": True,
        "augment": [{"name": "HorizontalFlip", "p": 0.5}],
    }

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        pretrained = cfg["pretrained"]
        if pretrained is True:
            weights = torchvision.models.VGG19_BN_Weights.IMAGENET1K_V1
            self.features = torchvision.models.vgg19_bn(weights=weights).features[: POOL3[True]]
            self.weights_report = "torchvision VGG19-BN ImageNet weights"
        else:
            self.features = vgg19_features(batch_norm=True)
            if isinstance(pretrained, str):
                self.weights_report = load_weights_file(self, pretrained, f"detectors.{self.name}.pretrained")
        self.head = nn.Linear(256, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))

    def loss(self, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(output, labels)

    def proba(self, output: torch.Tensor) -> torch.Tensor:
        return output.softmax(dim=1)[:, 1]
