"""FFD: attention-based fake-face detection (Dang, Liu, Stehouwer, Liu & Jain,
"On the Detection of Digital Face Manipulation", CVPR 2020; arXiv 1910.01717,
whose first version lists Stehouwer first).

Network: Xception (timm `legacy_xception`, ImageNet weights) with an
attention-based layer after the middle flow's fourth block (timm `block7`,
728 channels, 19 x 19 at 299 px). The layer regresses one attention map
M_att (B, 1, h, w) from those features and multiplies it into them (broadcast
over the channels) before `block8`:

    map: reg   direct regression: a separable 3x3 convolution 728 -> 1 (no bias)
               and a sigmoid, so M_att lies in [0, 1] (the authors' RegressionMap);
    map: mam   the Manipulation Appearance Model: M_att = mean + alpha @ basis, the
               mean map and the first `templates` principal components of the training
               fakes' manipulation masks at the map's size (computed by `prepare`
               before the first epoch, kept as buffers), alpha regressed by an Xception
               block 728 -> 364 (stride 2), ReLU, global average pooling and a linear
               layer (the authors' TemplateMap); no sigmoid, as theirs.

Loss: cross-entropy + map_weight x L_map, with L_map by `map_supervision`:

    supervised  the mean absolute difference between M_att and the face's manipulation
                mask area-averaged to the map's size (the paper's L1; the authors'
                nn.L1Loss), over the faces whose mask is known: real faces (an all-zero
                mask) and fakes whose dataset publishes masks (FF++: every method but
                FaceShifter). Fakes without a mask are left out of L_map
                (`unmasked_fakes: exclude`) or weakly supervised (`weak`);
    weak        real faces: mean |M_att - 0|; fakes: |max M_att - weak_target| (0.75);
    none        L_map = 0 (the paper's unsupervised variant; the map still multiplies).

The masks reach the loss through a side channel: the training data's items
carry them (FfdData), the training loop hands each batch's masks to the
detector (`Detector.batch_extras`) before the procedure's step, and the loss
reads them. A procedure that concatenates the batch with copies of it
(adversarial training: [x, x_adv]) gets each face's mask repeated; a pass on
a batch the masks do not describe (a generator step on the fakes only, or
scoring) treats fakes as mask-unknown and real faces as all-zero.

Training settings of the authors' code (JStehouwer/FFD_CVPR2020, train.py and
train_map*.py): input 299, mean = std = 0.5, Adam lr 1e-4 with weight decay
1e-3, no augmentation, lambda = 1, no dropout; their batch 30 (15 real + 15
fake) for 100k steps is 8 class-balanced epochs of FF++ c23 here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from dfrobust.core.errors import InputError
from dfrobust.detectors.base import TimmClassifier
from dfrobust.detectors.data import MaskData
from dfrobust.detectors.tensors import pick_frames
from dfrobust.detectors.registry import register

MAPS = ("reg", "mam")
SUPERVISION = ("supervised", "weak", "none")


class SeparableConv(nn.Sequential):
    """Depthwise k x k convolution (no bias) then a pointwise 1 x 1 (no bias): Xception's separable convolution."""

    def __init__(self, channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__(nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels, bias=False),
                         nn.Conv2d(channels, out_channels, 1, bias=False))


class RegressionMap(nn.Module):
    """Direct regression: M_att = sigmoid(SeparableConv(f)), (B, 1, h, w) in [0, 1]."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = SeparableConv(channels, 1, 3)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(f))


class TemplateMap(nn.Module):
    """MAM: M_att = mean + alpha @ basis, alpha from an Xception block, ReLU, global pooling and a linear layer."""

    def __init__(self, channels: int, templates: int, size: tuple[int, int]):
        super().__init__()
        from timm.models.xception import Block

        self.size = tuple(size)
        self.block = Block(channels, channels // 2, 2, 2, start_with_relu=True, grow_first=False)
        self.fc = nn.Linear(channels // 2, templates)
        pixels = self.size[0] * self.size[1]
        # the MAM's mean map and basis; `prepare` fills them from the training masks
        self.register_buffer("mean", torch.zeros(1, pixels))
        self.register_buffer("basis", torch.zeros(templates, pixels))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        if tuple(f.shape[-2:]) != self.size:
            raise ValueError(f"ffd: the MAM was built for {self.size} feature maps, got {tuple(f.shape[-2:])}")
        alpha = self.fc(F.adaptive_avg_pool2d(F.relu(self.block(f)), 1).flatten(1))
        return (self.mean + alpha.float() @ self.basis).view(-1, 1, *self.size)


class FfdData(MaskData):
    """FFD's data: faces with their manipulation masks (MaskData); for the MAM, the templates
    are fitted to the training fakes' known masks before the first epoch."""

    #: the MAM is fitted to at most this many training fakes' masks, spread over the pool
    TEMPLATE_MASKS = 20000

    def prepare(self, detector, train_pool) -> None:
        if self.cfg["map"] != "mam":
            return
        rows = np.flatnonzero((np.asarray(train_pool.labels) != 0) & np.asarray(train_pool.mask_known))
        rows = rows[pick_frames(len(rows), self.TEMPLATE_MASKS)]
        detector.fit_templates(np.asarray(train_pool.masks[rows]))


@register("ffd")
class FFD(TimmClassifier):
    """FFD (Dang, Liu, Stehouwer et al., CVPR 2020): Xception with an attention map regressed after the middle flow's
    fourth block and multiplied into its features; cross-entropy plus an L1 map loss against the manipulation mask."""

    defaults = {
        "backbone": "legacy_xception",
        "input_size": 299,
        "mean": [0.5, 0.5, 0.5],
        "std": [0.5, 0.5, 0.5],
        "drop_rate": 0.0,
        "map": "reg",
        "map_site": "block7",
        "templates": 10,
        "map_supervision": "supervised",
        "map_weight": 1.0,
        "unmasked_fakes": "exclude",
        "weak_target": 0.75,
        "map_threshold": None,
        "optimizer": {"name": "adam", "lr": 1.0e-4, "betas": [0.9, 0.999], "weight_decay": 1.0e-3},
        "lr_schedule": {"name": "constant"},
        "epochs": 8,
        "batch_size": 30,
        "frames_per_video": 100,
        "val_frames_per_video": 32,
        "balanced": True,
        "augment": [],
    }
    settings = {
        "map": {"type": "string", "enum": list(MAPS),
                "description": "reg: the map regressed directly (separable 3x3 conv, sigmoid); mam: mean map plus "
                               "`templates` PCA templates of the training masks weighted by regressed coefficients."},
        "map_site": {"type": "string",
                     "description": "Backbone module after which the attention layer sits (block7: the middle "
                                    "flow's fourth block, the paper's place)."},
        "templates": {"type": "integer", "minimum": 1,
                      "description": "Number of MAM templates (principal components of the masks; the paper's 10)."},
        "map_supervision": {"type": "string", "enum": list(SUPERVISION),
                            "description": "supervised: L1 to the manipulation mask where known; weak: reals' map "
                                           "to 0 and fakes' maximum to weak_target; none: no map loss."},
        "map_weight": {"type": "number", "minimum": 0, "description": "lambda: weight of the map loss (the authors' 1)."},
        "unmasked_fakes": {"type": "string", "enum": ["exclude", "weak"],
                           "description": "Supervised maps: fakes without a known mask are left out of the map loss "
                                          "(exclude) or get the weak term (weak)."},
        "weak_target": {"type": "number", "minimum": 0, "maximum": 1,
                        "description": "Weak supervision: the value a fake's largest map activation is pulled to "
                                       "(the paper's 0.75)."},
        "map_threshold": {"type": ["number", "null"], "minimum": 0, "maximum": 1,
                          "description": "null: the mask area-averaged to the map's size is the (soft) target; a "
                                         "number: that target binarised at it (the authors' older code: 0.1)."},
    }
    data_class = FfdData

    def __init__(self, cfg: dict[str, Any]):
        super().__init__(cfg)
        names = [name for name, _ in self.net.named_children()]
        site = cfg["map_site"]
        if site not in names or "global_pool" not in names or names.index(site) >= names.index("global_pool"):
            raise InputError(f"config key 'detectors.{self.name}.map_site': {site!r} is not a feature module of "
                             f"{cfg['backbone']} ({', '.join(names[:names.index('global_pool')] if 'global_pool' in names else names)})")
        cut = names.index(site) + 1
        self._stem, self._tail = names[:cut], names[cut:names.index("global_pool")]
        channels, size = self._site_shape(self.input_size)
        if cfg["map"] == "reg":
            self.attention = RegressionMap(channels)
        else:
            self.attention = TemplateMap(channels, int(cfg["templates"]), size)
        self.map_size = size

    @torch.no_grad()
    def _site_shape(self, input_size: int) -> tuple[int, tuple[int, int]]:
        """(channels, (h, w)) of the features at the attention layer for faces of `input_size`."""
        was_training = self.net.training
        self.net.eval()
        f = self.features(torch.zeros(1, 3, input_size, input_size))
        self.net.train(was_training)
        return int(f.shape[1]), (int(f.shape[2]), int(f.shape[3]))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone up to the attention layer."""
        for name in self._stem:
            x = getattr(self.net, name)(x)
        return x

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (B, 2), attention map (B, 1, h, w))."""
        f = self.features(x)
        att = self.attention(f)
        f = f * att.to(f.dtype)
        for name in self._tail:
            f = getattr(self.net, name)(f)
        return self.net.forward_head(f), att

    # -- loss ----------------------------------------------------------------------------
    def mask_targets(self, att: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(target (B, 1, h, w) float32 in [0, 1], known (B,) bool) for a pass whose map is `att`.

        Real faces: an all-zero target, known. Fakes: the mask the batch's extras give (masks
        (m, H, W) uint8 0..255 and mask_known (m,)), area-averaged to the map's size, where
        the pass is on that batch or on copies of it concatenated (B a multiple of m);
        otherwise unknown.
        """
        b = len(labels)
        target = att.new_zeros((b, 1, *att.shape[-2:]), dtype=torch.float32)
        known = labels == 0
        masks = self.batch_extra("masks")
        if masks is None or len(masks) == 0 or b % len(masks):
            return target, known
        reps = b // len(masks)
        pooled = F.adaptive_avg_pool2d(masks.to(att.device, torch.float32)[:, None] / 255.0, att.shape[-2:])
        threshold = self.cfg["map_threshold"]
        if threshold is not None:
            pooled = (pooled >= float(threshold)).float()
        mask_known = self.batch_extra("mask_known").to(att.device).bool()
        target = pooled.repeat(reps, 1, 1, 1) * (labels != 0).view(-1, 1, 1, 1)
        return target, known | mask_known.repeat(reps)

    def map_loss(self, att: torch.Tensor, target: torch.Tensor, known: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """L_map: the mean over the faces it applies to of each face's term (0 when there is none).

        supervised: mean |M_att - target| over the map for faces whose mask is known; fakes
        without one are left out (unmasked_fakes: exclude) or get the weak term (weak).
        weak: reals mean |M_att|, fakes |max M_att - weak_target|. none: 0.
        """
        att = att.float()
        mode = self.cfg["map_supervision"]
        if mode == "none":
            return att.sum() * 0.0
        fake = labels != 0
        weak = (att.flatten(1).amax(1) - float(self.cfg["weak_target"])).abs()
        if mode == "weak":
            per_face, used = torch.where(fake, weak, att.abs().flatten(1).mean(1)), torch.ones_like(fake)
        else:
            l1 = (att - target).abs().flatten(1).mean(1)
            weak_too = fake & ~known & (self.cfg["unmasked_fakes"] == "weak")
            per_face, used = torch.where(known, l1, weak), known | weak_too
        if not bool(used.any()):
            return att.sum() * 0.0
        return per_face[used].sum() / used.sum()

    def loss(self, output, labels: torch.Tensor) -> torch.Tensor:
        logits, att = output
        ce = F.cross_entropy(logits, labels)
        if not float(self.cfg["map_weight"]) or self.cfg["map_supervision"] == "none":
            return ce
        target, known = self.mask_targets(att, labels)
        return ce + float(self.cfg["map_weight"]) * self.map_loss(att, target, known, labels)

    def proba(self, output) -> torch.Tensor:
        return output[0].float().softmax(dim=1)[:, 1]

    # -- the MAM's templates ----------------------------------------------------------------
    @torch.no_grad()
    def fit_templates(self, masks: np.ndarray) -> str:
        """The MAM's mean map and basis from fakes' masks (n, H, W) uint8: area-averaged to the map's
        size, their mean and first `templates` principal components (rows of the basis, unit norm)."""
        if not isinstance(self.attention, TemplateMap):
            return ""
        k = int(self.cfg["templates"])
        if len(masks) < 2:
            raise InputError(f"detectors.{self.name}: map 'mam' needs the training fakes' manipulation masks "
                             f"(found {len(masks)}); use map: reg, or face shards with masks")
        pooled = F.adaptive_avg_pool2d(torch.as_tensor(np.asarray(masks), dtype=torch.float64)[:, None] / 255.0,
                                       self.map_size).flatten(1)
        mean = pooled.mean(0, keepdim=True)
        _, s, vt = torch.linalg.svd(pooled - mean, full_matrices=False)
        basis = torch.zeros(k, pooled.shape[1], dtype=torch.float64)
        basis[: min(k, len(vt))] = vt[:k]
        self.attention.mean.copy_(mean.to(self.attention.mean))
        self.attention.basis.copy_(basis.to(self.attention.basis))
        explained = float((s[:k] ** 2).sum() / (s**2).sum().clamp_min(1e-12))
        return f"{self.name}: MAM from {len(masks)} fake masks, {k} templates explain {explained:.1%} of their variance"
