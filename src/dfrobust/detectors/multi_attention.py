"""Multi-attentional deepfake detection (Zhao, Zhou, Chen, Wei, Zhang & Yu,
"Multi-attentional Deepfake Detection", CVPR 2021; authors' code
yoctta/multiple-attention).

Network, on an EfficientNet-B4 (timm `tf_efficientnet_b4.ap_in1k`, the AdvProp
weights of the authors' code, inputs in [-1, 1]) at 380 px:

* attention: M = 4 maps A (B, M, 24, 24) from the fifth stage's features
  (SL_a, timm `blocks.4`) by a 1x1 convolution, batch norm and ReLU (Sec. 3.2);
* textural feature enhancement on the second stage's features f (SL_t,
  `blocks.1`, 95 x 95): D = local average pooling of f to the attention maps'
  size, the texture residual T = f - D (upsampled), enhanced by a densely
  connected block of three 3x3 convolutions into F (4C = 128 channels);
* bilinear attention pooling (BAP): each map resized (bilinear) to F's size,
  P_k = sum_hw A_k F, normalised to unit L2 norm per head ("normalised average
  pooling"), the textural feature matrix P (B, M, 4C); the maps summed, A_sum,
  weight the last features (conv_head, 1792 x 12 x 12) into the global feature
  G (an A_sum-weighted average, as the authors' code);
* classifier (the authors' code; the paper only says P and G are fed to it):
  P -> 256 -> 256 and G -> 256 (Hardswish, dropout 0.5 on G), concatenated,
  -> 256 -> 2. Whole heads are dropped with p = 0.25 in training (their code).

Loss: L = ce_weight x CE + ril_weight x L_RIL (+ CE on the attention-guided
augmented faces). The regional independence loss (Sec. 3.3) pulls the
semantic feature of each head, V_k = BAP(D, A_k) L2-normalised, to that head's
centre c_k and pushes the centres apart:

    L_RIL = mean_i sum_k max(|V_ik - c_k|^2 - m_in(y_i), 0) + sum_{j<k} max(m_out - |c_j - c_k|^2, 0)

with m_in = 0.05 (real) / 0.1 (fake) and m_out = 0.2; the centres are a
moving average c <- c + alpha (mean_i V_i - c), updated once per
training-mode forward pass from that pass's faces (the loss uses the updated
centres, through which the gradient reaches V), alpha = 0.05 decayed by 0.9
after every epoch (`start_epoch`).

Attention-guided data augmentation (AGDA, Sec. 3.4): for every training face
one attention map is drawn (probability proportional to sqrt(sum A_k + 1), the
authors' code), resized to the face and divided by its maximum (A*), and the
face becomes x (1 - A*) + x_d A* with x_d the face degraded (downscaled by
`resize_factor`, Gaussian blur sigma 7, noise, upscaled back): the region that
head looks at is blurred away, so the other heads must find evidence
elsewhere. The augmented faces take a second pass whose cross-entropy is
added (the authors' code). All random draws use torch's generator on the
input's device, so PIM's rewinding and a resumed run repeat them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from dfrobust.core.errors import InputError
from dfrobust.detectors.base import Detector, load_weights_file
from dfrobust.detectors.registry import register


# -- bilinear attention pooling ------------------------------------------------------------------
def bilinear_attention_pooling(features: torch.Tensor, attentions: torch.Tensor, norm: str = "l2") -> torch.Tensor:
    """(B, M, C): sum over space of each attention map times each feature channel.

    features (B, C, H, W), attentions (B, M, h, w), resized bilinearly (align_corners) to
    H x W when the sizes differ. norm "l2": each head's vector divided by its L2 norm
    (the paper's normalised average pooling); "mean": divided by the map's sum (an
    attention-weighted average). Computed in float32.
    """
    with torch.autocast(device_type=features.device.type, enabled=False):
        features, attentions = features.float(), attentions.float()
        if attentions.shape[-2:] != features.shape[-2:]:
            attentions = F.interpolate(attentions, size=features.shape[-2:], mode="bilinear", align_corners=True)
        pooled = torch.einsum("bmhw,bchw->bmc", attentions, features)
        if norm == "l2":
            return F.normalize(pooled, p=2, dim=-1)
        if norm == "mean":
            return pooled / (attentions.sum(dim=(2, 3)) + 1e-8)[..., None]
        raise ValueError(f"unknown BAP norm {norm!r}")


# -- the network's parts -------------------------------------------------------------------------
class AttentionHeads(nn.Module):
    """M attention maps from SL_a's features: a 1x1 convolution, batch norm, ReLU (the paper's Sec. 3.2)."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, heads, 1)
        self.bn = nn.BatchNorm2d(heads)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(f)))


class TextureEnhancement(nn.Module):
    """Textural feature enhancement: D = local average pooling of f to the attention maps' size,
    T = f - upsampled D, a 1x1 convolution, then a dense block of three BN-ReLU-3x3 convolutions
    (each sees all earlier outputs) and a BN-ReLU-1x1 convolution with BN: F (B, 4C, H, W)."""

    def __init__(self, channels: int):
        super().__init__()
        c = channels
        self.conv0 = nn.Conv2d(c, c, 1)
        self.dense = nn.ModuleList(
            nn.Sequential(nn.BatchNorm2d(c * (i + 1)), nn.ReLU(), nn.Conv2d(c * (i + 1), c, 3, padding=1)) for i in range(3))
        self.last = nn.Sequential(nn.BatchNorm2d(4 * c), nn.ReLU(), nn.Conv2d(4 * c, 4 * c, 1), nn.BatchNorm2d(4 * c))
        self.out_channels = 4 * c

    def forward(self, f: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(F, D) for shallow features f and the attention maps' spatial size."""
        d = F.adaptive_avg_pool2d(f, size)
        t = f - F.interpolate(d, size=f.shape[-2:], mode="nearest")
        outs = [self.conv0(t)]
        for layer in self.dense:
            outs.append(layer(torch.cat(outs, dim=1)))
        return self.last(torch.cat(outs, dim=1)), d


class RegionalIndependenceLoss(nn.Module):
    """The regional independence loss and its feature centres (M, C), a moving average kept as a buffer."""

    def __init__(self, heads: int, channels: int, margins_in: tuple[float, float], margin_out: float):
        super().__init__()
        self.register_buffer("centres", torch.zeros(heads, channels))
        self.margins_in = tuple(float(m) for m in margins_in)
        self.margin_out = float(margin_out)
        self.alpha = 0.0  # set per epoch by the detector (start_epoch)

    def update(self, v: torch.Tensor) -> torch.Tensor:
        """c_new = c + alpha (mean_i V_i - c) from this pass's features V (B, M, C), differentiable in V;
        the buffer takes c_new's value."""
        c = self.centres
        new = c + self.alpha * (v.float().mean(dim=0) - c)
        with torch.no_grad():
            self.centres.copy_(new.detach())
        return new

    def forward(self, v: torch.Tensor, centres: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """L_RIL for features V (B, M, C) of faces with `labels`, and centres (M, C)."""
        v, centres = v.float(), centres.float()
        m_in = torch.tensor(self.margins_in, device=v.device)[labels.long().clamp(0, 1)]
        intra = F.relu(((v - centres[None]) ** 2).sum(-1) - m_in[:, None]).sum(1).mean()
        heads = centres.shape[0]
        if heads < 2:
            return intra
        j, k = torch.triu_indices(heads, heads, offset=1, device=v.device)
        inter = F.relu(self.margin_out - ((centres[j] - centres[k]) ** 2).sum(-1)).sum()
        return intra + inter


def gaussian_kernel(size: int, sigma: float) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).float()


class AGDA(nn.Module):
    """Attention-guided data augmentation: blur (soft mode) or drop (hard mode) the region one
    randomly drawn attention map looks at. No parameters; torch's generator only."""

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        self.mode = cfg["mode"]
        self.resize_factor, self.noise = float(cfg["resize_factor"]), float(cfg["noise"])
        self.threshold = cfg["threshold"]
        self.register_buffer("kernel", gaussian_kernel(int(cfg["kernel_size"]), float(cfg["sigma"])), persistent=False)

    def pick(self, attentions: torch.Tensor) -> torch.Tensor:
        """(B,) index of the map used for each face: probability proportional to sqrt(sum A_k + 1)."""
        weights = torch.sqrt(attentions.float().sum(dim=(2, 3)).clamp_min(0) + 1)
        return torch.multinomial(weights, 1).squeeze(1)

    @staticmethod
    def weight(attentions: torch.Tensor, index: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """A* (B, 1, H, W): the chosen maps resized (bilinear, align_corners) to the faces, divided by their maximum."""
        chosen = attentions.float()[torch.arange(len(index), device=index.device), index][:, None]
        chosen = F.interpolate(chosen, size=size, mode="bilinear", align_corners=True)
        return chosen / (chosen.amax(dim=(2, 3), keepdim=True) + 1e-8)

    def blur(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel.to(x)
        pad = len(k) // 2
        c = x.shape[1]
        x = F.pad(x, (pad, pad, pad, pad), mode="reflect") if min(x.shape[-2:]) > pad else F.pad(x, (pad,) * 4, mode="replicate")
        x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
        return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)

    def degrade(self, x: torch.Tensor) -> torch.Tensor:
        """x downscaled by resize_factor (bilinear), blurred, with Gaussian noise, upscaled back to x's size."""
        h, w = x.shape[-2:]
        small = (max(1, round(h * self.resize_factor)), max(1, round(w * self.resize_factor)))
        d = self.blur(F.interpolate(x, size=small, mode="bilinear", align_corners=False))
        if self.noise:
            d = d + self.noise * torch.randn_like(d)
        return F.interpolate(d, size=(h, w), mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor, attentions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(augmented faces, index of the map used for each)."""
        x = x.float()
        index = self.pick(attentions)
        a = self.weight(attentions, index, x.shape[-2:])
        if self.mode == "hard":
            theta = float(self.threshold if self.threshold is not None else 0.5)
            return x * (a < theta), index
        if self.threshold is not None:  # the authors' soft threshold: a sigmoid ramp around theta
            theta, zoom = float(self.threshold), float(5.0)
            low = torch.sigmoid(torch.tensor(-theta * zoom))
            a = (torch.sigmoid((a - theta) * zoom) - low) / (1 - low)
        return x * (1 - a) + self.degrade(x) * a, index


# -- the detector ----------------------------------------------------------------------------------
@register("multi_attention")
class MultiAttention(Detector):
    """Multi-attentional deepfake detection (Zhao et al., CVPR 2021): EfficientNet-B4, M attention maps, textural
    feature enhancement, bilinear attention pooling, regional independence loss and attention-guided augmentation."""

    defaults = {
        "backbone": "tf_efficientnet_b4.ap_in1k",
        "input_size": 380,
        "mean": [0.5, 0.5, 0.5],
        "std": [0.5, 0.5, 0.5],
        "drop_path_rate": 0.2,
        "texture_stage": 2,
        "attention_stage": 5,
        "num_attentions": 4,
        "hidden": 256,
        "attention_dropout": 0.25,
        "final_dropout": 0.5,
        "ce_weight": 1.0,
        "ril_weight": 1.0,
        "ril": {"alpha": 0.05, "alpha_decay": 0.9, "margin_in": [0.05, 0.1], "margin_out": 0.2},
        "agda": {"on": True, "mode": "soft", "resize_factor": 0.3, "kernel_size": 11, "sigma": 7.0, "noise": 0.1,
                 "threshold": None, "loss_weight": 1.0},
        "optimizer": {"name": "adam", "lr": 1.0e-3, "betas": [0.9, 0.999], "weight_decay": 1.0e-6},
        "lr_schedule": {"name": "step", "step_epochs": 5, "gamma": 0.5},
        "epochs": 20,
        "batch_size": 48,
        "frames_per_video": 50,
        "val_frames_per_video": 32,
        "balanced": True,
        "augment": [{"name": "HorizontalFlip", "p": 0.5}],
    }
    settings = {
        "drop_path_rate": {"type": "number", "minimum": 0, "maximum": 1,
                           "description": "Stochastic depth of the backbone's blocks (efficientnet-pytorch's B4: 0.2)."},
        "texture_stage": {"type": "integer", "minimum": 1,
                          "description": "Backbone stage (1-based) whose output is SL_t, the shallow features of the "
                                         "texture enhancement (the paper's L2)."},
        "attention_stage": {"type": "integer", "minimum": 1,
                            "description": "Backbone stage (1-based) whose output is SL_a, where the attention maps "
                                           "are computed (the paper's L5)."},
        "num_attentions": {"type": "integer", "minimum": 1, "description": "M, the number of attention maps (the paper's 4)."},
        "hidden": {"type": "integer", "minimum": 1, "description": "Width of the classifier's hidden layers (authors' code: 256)."},
        "attention_dropout": {"type": "number", "minimum": 0, "exclusiveMaximum": 1,
                              "description": "Probability of dropping a whole attention head per face in training "
                                             "(authors' code: 0.25)."},
        "final_dropout": {"type": "number", "minimum": 0, "exclusiveMaximum": 1,
                          "description": "Dropout on the global feature G (authors' code: 0.5)."},
        "ce_weight": {"type": "number", "minimum": 0, "description": "lambda_1: weight of the cross-entropy (paper: 1)."},
        "ril_weight": {"type": "number", "minimum": 0,
                       "description": "lambda_2: weight of the regional independence loss (paper: 1)."},
        "ril": {"type": "object", "additionalProperties": False,
                "description": "Regional independence loss: centres' moving-average rate and its decay, margins.",
                "properties": {
                    "alpha": {"type": "number", "minimum": 0, "maximum": 1,
                              "description": "Update rate of the feature centres in the first epoch (paper: 0.05)."},
                    "alpha_decay": {"type": "number", "minimum": 0, "maximum": 1,
                                    "description": "alpha is multiplied by this after every epoch (paper: 0.9)."},
                    "margin_in": {"type": "array", "items": {"type": "number", "minimum": 0}, "minItems": 2, "maxItems": 2,
                                  "description": "m_in for real and for fake faces: squared distance to the centre "
                                                 "that costs nothing (paper: 0.05, 0.1)."},
                    "margin_out": {"type": "number", "minimum": 0,
                                   "description": "m_out: squared distance between two centres below which the loss "
                                                  "pushes them apart (paper: 0.2)."}}},
        "agda": {"type": "object", "additionalProperties": False,
                 "description": "Attention-guided data augmentation of every training batch (a second pass on the "
                                "augmented faces, its cross-entropy added).",
                 "properties": {
                     "on": {"type": "boolean", "description": "Whether training batches get the augmented pass."},
                     "mode": {"type": "string", "enum": ["soft", "hard"],
                              "description": "soft: blend with a degraded copy by A* (the paper); hard: zero the face "
                                             "where A* >= threshold (0.5 when null)."},
                     "resize_factor": {"type": "number", "exclusiveMinimum": 0, "maximum": 1,
                                       "description": "Downscaling of the degraded copy (paper: 0.3; authors' code 0.5)."},
                     "kernel_size": {"type": "integer", "minimum": 1, "not": {"multipleOf": 2},
                                     "description": "Side of the Gaussian kernel (authors' code: 11)."},
                     "sigma": {"type": "number", "exclusiveMinimum": 0, "description": "Gaussian sigma (paper: 7)."},
                     "noise": {"type": "number", "minimum": 0,
                               "description": "Standard deviation of the noise added to the degraded copy, in "
                                              "normalised-input units (authors' code: 0.1)."},
                     "threshold": {"type": ["number", "null"], "minimum": 0, "maximum": 1,
                                   "description": "soft: null blends by A* itself, a number by the authors' sigmoid "
                                                  "ramp around it (slope 5); hard: where A* is dropped."},
                     "loss_weight": {"type": "number", "minimum": 0,
                                     "description": "Weight of the augmented pass's cross-entropy (authors' code: 1)."}}},
    }

    def __init__(self, cfg: dict[str, Any]):
        super().__init__(cfg)
        import timm

        pretrained = cfg["pretrained"]
        kwargs = {"num_classes": 0}
        if cfg["drop_path_rate"]:
            kwargs["drop_path_rate"] = float(cfg["drop_path_rate"])
        self.net = timm.create_model(cfg["backbone"], pretrained=pretrained is True, **kwargs)
        if isinstance(pretrained, str):
            self.weights_report = load_weights_file(self.net, pretrained, f"detectors.{self.name}.pretrained")
        for key in ("conv_stem", "bn1", "blocks", "conv_head", "bn2"):
            if not hasattr(self.net, key):
                raise InputError(f"config key 'detectors.{self.name}.backbone': {cfg['backbone']} is not an "
                                 "EfficientNet-style network (conv_stem, blocks, conv_head)")
        stages = len(self.net.blocks)
        self.texture_stage, self.attention_stage = int(cfg["texture_stage"]), int(cfg["attention_stage"])
        if not 1 <= self.texture_stage <= stages or not 1 <= self.attention_stage <= stages:
            raise InputError(f"config key 'detectors.{self.name}': texture_stage and attention_stage must be "
                             f"stages 1..{stages} of {cfg['backbone']}")
        shallow, deep, final = self._probe()
        m, hidden = int(cfg["num_attentions"]), int(cfg["hidden"])
        self.heads = AttentionHeads(deep, m)
        self.texture = TextureEnhancement(shallow)
        self.local = nn.Sequential(nn.Linear(m * self.texture.out_channels, hidden), nn.Hardswish(),
                                   nn.Linear(hidden, hidden), nn.Hardswish())
        self.final_dropout = nn.Dropout(float(cfg["final_dropout"]))
        self.glob = nn.Sequential(nn.Linear(final, hidden), nn.Hardswish())
        self.classifier = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.Hardswish(), nn.Linear(hidden, 2))
        ril = cfg["ril"]
        self.ril = RegionalIndependenceLoss(m, shallow, ril["margin_in"], ril["margin_out"])
        self.ril.alpha = float(ril["alpha"])
        self.agda = AGDA(cfg["agda"])

    @torch.no_grad()
    def _probe(self) -> tuple[int, int, int]:
        """Channels of SL_t, SL_a and the last features (a pass on a small blank image)."""
        was_training = self.net.training
        self.net.eval()
        shallow, deep, final = self.backbone(torch.zeros(1, 3, 64, 64))
        self.net.train(was_training)
        return int(shallow.shape[1]), int(deep.shape[1]), int(final.shape[1])

    def backbone(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(SL_t features, SL_a features, last features) of one pass through the backbone."""
        x = self.net.bn1(self.net.conv_stem(x))
        kept = {}
        for i, stage in enumerate(self.net.blocks, start=1):
            x = stage(x)
            kept[i] = x
        return kept[self.texture_stage], kept[self.attention_stage], self.net.bn2(self.net.conv_head(x))

    def start_epoch(self, epoch: int) -> None:
        """alpha = alpha_0 x alpha_decay^(epoch - 1): decayed after every epoch (the paper's Sec. 4.1)."""
        ril = self.cfg["ril"]
        self.ril.alpha = float(ril["alpha"]) * float(ril["alpha_decay"]) ** (int(epoch) - 1)

    def _pass(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits (B, 2), V (B, M, C_t), attention maps (B, M, h, w)) of one pass."""
        shallow, deep, final = self.backbone(x)
        a = self.heads(deep)
        textural, d = self.texture(shallow, a.shape[-2:])
        b, m = a.shape[:2]
        keep = F.dropout(a.new_ones(b, m, 1, dtype=torch.float32), float(self.cfg["attention_dropout"]), self.training)
        p = bilinear_attention_pooling(textural, a) * keep
        g = bilinear_attention_pooling(final, (a.float() * keep[..., None]).sum(1, keepdim=True), norm="mean")[:, 0]
        logits = self.classifier(torch.cat([self.local(p.flatten(1)), self.glob(self.final_dropout(g))], dim=1))
        v = bilinear_attention_pooling(d, a)
        return logits, v, a

    def forward(self, x: torch.Tensor):
        """Eval: (logits, V, centres (B, M, C)). Training: the centres updated by this pass, and with AGDA
        the augmented pass's (logits, V) and the map index of each face: every element batch-first."""
        logits, v, a = self._pass(x)
        if not self.training:
            return logits, v, self.ril.centres.expand(len(x), *self.ril.centres.shape)
        centres = self.ril.update(v).expand(len(x), *self.ril.centres.shape)
        if not self.cfg["agda"]["on"]:
            return logits, v, centres
        with torch.no_grad():
            augmented, index = self.agda(x, a.detach())
        logits_aug, v_aug, _ = self._pass(augmented.to(x.dtype))
        return logits, v, centres, logits_aug, v_aug, index

    def loss(self, output, labels: torch.Tensor) -> torch.Tensor:
        logits, v, centres = output[:3]
        loss = float(self.cfg["ce_weight"]) * F.cross_entropy(logits, labels)
        if float(self.cfg["ril_weight"]):
            loss = loss + float(self.cfg["ril_weight"]) * self.ril(v, centres[0], labels)
        if len(output) > 3 and float(self.cfg["agda"]["loss_weight"]):
            loss = loss + float(self.cfg["agda"]["loss_weight"]) * F.cross_entropy(output[3], labels)
        return loss

    def proba(self, output) -> torch.Tensor:
        return output[0].float().softmax(dim=1)[:, 1]

