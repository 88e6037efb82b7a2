"""The blur generator of Gen-BAT: a CycleGAN-style ResNet generator (Johnson
et al.'s architecture as in Zhu et al.'s CycleGAN code) that maps a face to
a 1/sigma map for the pixel-wise Gaussian blur (dfrobust.training.blur).

    c7s1-w, d2w, d4w, `blocks` x R4w, u2w, uw, c7s1-1

(reflection padding, batch norm as in the BAT authors' generator, ReLU).
The last layer's output t is 1/sigma, as the authors' generator outputs it
(their kernel takes t^2 = 1/sigma^2): any real t is a valid kernel (t = 0
the k x k box filter, |t| -> inf the identity), so no bound is needed and
none is imposed by default (the paper states none; the k x k support bounds
the blur). With sigma_max, |t| is clamped to >= 1/sigma_max, as the
authors' code clamps t^2 >= 1 (sigma <= 1; the clamp passes no gradient).
"""

from __future__ import annotations

import torch
from torch import nn


class ResnetBlock(nn.Module):
    """x + conv3-norm-relu-conv3-norm(x), reflection padded."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=False), nn.BatchNorm2d(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """CycleGAN's ResNet generator with `width` filters in its first layer and
    `blocks` residual blocks at 1/4 resolution; any input size (the output is
    cropped back to it, as the BAT code does for Xception's 299 px)."""

    def __init__(self, in_channels: int, out_channels: int, width: int, blocks: int):
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, width, 7, bias=False),
                                   nn.BatchNorm2d(width), nn.ReLU(True)]
        for mult in (1, 2):  # two stride-2 downsamplings
            layers += [nn.Conv2d(width * mult, width * mult * 2, 3, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(width * mult * 2), nn.ReLU(True)]
        layers += [ResnetBlock(width * 4) for _ in range(blocks)]
        for mult in (4, 2):  # two stride-2 upsamplings
            layers += [nn.ConvTranspose2d(width * mult, width * mult // 2, 3, stride=2, padding=1, output_padding=1, bias=False),
                       nn.BatchNorm2d(width * mult // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, out_channels, 7)]
        self.net = nn.Sequential(*layers)
        self.apply(_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        return self.net(x)[..., :h, :w]


def _init(module: nn.Module) -> None:
    """The BAT code's initialisation: Kaiming-normal convolutions, zero biases, batch-norm scales ~ N(1, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.kaiming_normal_(module.weight, a=0, mode="fan_in")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class BlurGenerator(nn.Module):
    """Faces (float, 0..255) -> a 1/sigma map (B, 1, H, W); with sigma_max, |1/sigma| >= 1/sigma_max."""

    def __init__(self, width: int, blocks: int, sigma_max: float | None = None):
        super().__init__()
        if sigma_max is not None and sigma_max <= 0:
            raise ValueError(f"sigma_max must be > 0, got {sigma_max}")
        self.net = ResnetGenerator(3, 1, width, blocks)
        self.min_inv_sigma = None if sigma_max is None else 1.0 / float(sigma_max)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        t = self.net(images / 127.5 - 1.0)
        return t if self.min_inv_sigma is None else t.abs().clamp(min=self.min_inv_sigma)
