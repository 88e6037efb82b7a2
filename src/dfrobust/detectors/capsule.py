"""Capsule-Forensics v2 (Nguyen, Yamagishi, Echizen, ICASSP 2019).

Frozen VGG19 features up to the third max-pooling layer (256 channels, 1/8
resolution) feed 10 primary capsules; dynamic routing (2 iterations) sends
them to 2 output capsules (real, fake) of dimension 4.

Our reading follows the authors' code (github.com/nii-yamagishilab/
Capsule-Forensics-v2, model_big.py), because the published numbers come from it:

* primary capsule: conv3x3(256->64)-BN-ReLU, conv3x3(64->16)-BN-ReLU,
  statistics pooling (per-channel mean and std over space -> 2 x 16),
  conv1d(2->8, k5, s2)-BN, conv1d(8->1, k3)-BN -> an 8-vector. The 10
  vectors are stacked to (B, 8, 10) and squashed along the last axis, as
  the code does (the paper describes a squash per capsule; the code's axis
  is kept).
* routing: priors u_j|i = W_ij u_i with W (2, 10, 4, 8) ~ N(0, 1); during
  training W gets N(0, 0.01^2) noise and the priors 5% dropout (no
  rescaling). The routing logits have one entry per (input, output,
  dimension), are soft-maxed over the input capsules, and grow by the
  element-wise agreement u_j|i * v_j, exactly as in the code.
* output: v (B, 4, 2) -> softmax over the 2 classes for each of the 4
  dimensions. The loss is the sum over the 4 dimensions of cross-entropy
  applied to these soft-maxed activations (torch's CrossEntropyLoss on
  probabilities, i.e. a second softmax, as in CapsuleLoss of the code).
  The fake probability is the mean over the 4 dimensions of the fake class.

Paper settings: input 300 (ImageNet normalisation), Adam (0.9, 0.999)
lr 5e-4, batch 64, 25 epochs. The official training shuffles all faces
without class balancing, which is the default here too.

Without ImageNet weights (offline), `pretrained` can name the weights.pt of
a `vgg19bn_pool3` model the workflow trains first on the same training
faces: its batch norms are folded into the convolutions, so the extractor
is still the paper's plain VGG19, frozen (vgg_pool3.py, config/showcase.yaml).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from dfrobust.detectors.base import Detector
from dfrobust.detectors.registry import register
from dfrobust.detectors.vgg_pool3 import vgg19_pool3


def squash(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Capsule non-linearity: keeps the direction, maps the norm into [0, 1)."""
    sq = (t**2).sum(dim=dim, keepdim=True)
    return sq / (1 + sq) * t / torch.sqrt(sq + 1e-12)


class StatsPool(nn.Module):
    """(B, C, H, W) -> (B, 2, C): per-channel mean and (unbiased) std over space."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(2)
        return torch.stack((x.mean(dim=2), x.std(dim=2)), dim=1)


class PrimaryCapsules(nn.Module):
    def __init__(self, n_capsules: int = 10, in_channels: int = 256):
        super().__init__()
        self.capsules = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(in_channels, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
                nn.Conv2d(64, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                StatsPool(),
                nn.Conv1d(2, 8, 5, stride=2, padding=2), nn.BatchNorm1d(8),
                nn.Conv1d(8, 1, 3, padding=1), nn.BatchNorm1d(1),
                nn.Flatten(),
            )
            for _ in range(n_capsules)
        )
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 256, h, w) -> (B, 8, n_capsules)."""
        return squash(torch.stack([capsule(x) for capsule in self.capsules], dim=-1), dim=-1)


class DynamicRouting(nn.Module):
    def __init__(self, n_in: int = 10, n_out: int = 2, d_in: int = 8, d_out: int = 4,
                 iterations: int = 2, noise: float = 0.01, dropout: float = 0.05):
        super().__init__()
        self.iterations, self.noise, self.dropout = iterations, noise, dropout
        self.weights = nn.Parameter(torch.randn(n_out, n_in, d_out, d_in))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """(B, d_in, n_in) -> (B, d_out, n_out)."""
        weights = self.weights
        if self.training and self.noise > 0:
            weights = weights + self.noise * torch.randn_like(weights)
        # (n_out, 1, n_in, d_out, d_in) @ (1, B, n_in, d_in, 1) -> (B, n_out, n_in, d_out, 1)
        priors = (weights[:, None] @ u.transpose(2, 1)[None, :, :, :, None]).transpose(1, 0)
        if self.training and self.dropout > 0:
            priors = priors * torch.bernoulli(torch.full_like(priors, 1.0 - self.dropout))
        logits = torch.zeros_like(priors)
        for i in range(self.iterations):
            probs = F.softmax(logits, dim=2)
            outputs = squash((probs * priors).sum(dim=2, keepdim=True), dim=3)
            if i < self.iterations - 1:
                logits = logits + priors * outputs
        # (B, n_out, 1, d_out, 1) -> (B, d_out, n_out)
        return outputs[:, :, 0, :, 0].transpose(2, 1)


def _init_weights(m: nn.Module) -> None:
    """The code's init: conv ~ N(0, 0.02), BN weight ~ N(1, 0.02), BN bias 0."""
    if isinstance(m, (nn.Conv1d, nn.Conv2d)):
        m.weight.data.normal_(0.0, 0.02)
    elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        m.weight.data.normal_(1.0, 0.02)
        m.bias.data.fill_(0)


@register("capsule")
class CapsuleForensics(Detector):
    """Capsule-Forensics v2: frozen VGG19 up to pool3, 10 primary capsules, dynamic routing to 2 output capsules, the capsule loss of the authors' code."""

    defaults = {
        "backbone": "vgg19",
        "input_size": 300,
        "freeze_extractor": True,
        "primary_capsules": 10,
        "routing_iterations": 2,
        "routing_noise": 0.01,
        "routing_dropout": 0.05,
        "optimizer": {"name": "adam", "lr": 5.0e-4, "betas": [0.9, 0.999]},
        "epochs": 25,
        "batch_size": 64,
        "frames_per_video": 100,
        "val_frames_per_video": 32,
        "balanced": False,
    }
    settings = {
        "backbone": {"type": "string", "enum": ["vgg19"], "description": "Feature extractor: torchvision's VGG19 (up to pool3)."},
        "freeze_extractor": "Keep the VGG19 feature extractor fixed (as in Capsule-Forensics).",
        "primary_capsules": {"type": "integer", "minimum": 1, "description": "Number of primary capsules."},
        "routing_iterations": {"type": "integer", "minimum": 1, "description": "Dynamic-routing iterations."},
        "routing_noise": {"type": "number", "minimum": 0,
                          "description": "Std of the Gaussian noise added to the routing weights during training."},
        "routing_dropout": {"type": "number", "minimum": 0, "exclusiveMaximum": 1,
                            "description": "Dropout rate on the routing priors during training."},
    }

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        if cfg["backbone"] != "vgg19":
            raise ValueError(f"capsule: backbone must be vgg19, got {cfg['backbone']!r}")
        self.extractor, self.weights_report = vgg19_pool3(cfg["pretrained"], "detectors.capsule.pretrained")
        if cfg["freeze_extractor"]:
            self.extractor.requires_grad_(False)
        self.primary = PrimaryCapsules(int(cfg["primary_capsules"]))
        self.routing = DynamicRouting(n_in=int(cfg["primary_capsules"]), iterations=int(cfg["routing_iterations"]),
                                      noise=float(cfg["routing_noise"]), dropout=float(cfg["routing_dropout"]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised faces -> class activations (B, 4, 2), soft-maxed over the classes."""
        return F.softmax(self.routing(self.primary(self.extractor(x))), dim=-1)

    def loss(self, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return sum(F.cross_entropy(output[:, d, :], labels) for d in range(output.shape[1]))

    def proba(self, output: torch.Tensor) -> torch.Tensor:
        return output.mean(dim=1)[:, 1]
