"""The multi-scale Laplacian-of-Gaussian layer of the two-branch network
(Masi et al., ECCV 2020): on feature maps x, each scale keeps the band
x - up(down(G * x)) with a fixed Gaussian G (a Laplacian pyramid), which
removes the smooth face content (a constant map gives exactly zero) and keeps
high frequencies at S scales; the bands, brought back to the input size, are
mixed by a learned 1x1 convolution, then batch-normalised and rectified (the
form of the multi-scale Laplacian layer in the code of a later paper by the
same group, HiFi-Net: github.com/CHELSEA234/HiFi_IFDL,
applications/deepfake_detection/sequence/models/LaPlacianMs.py: bands
x - up(down(G_s * x)), concatenated, 1x1 conv, BatchNorm, ReLU). In the
two-branch network the layer maps the stem's 64 channels to 64 channels, the
input width of the dense block that follows it (a copy of DenseNet's first).

G is a buffer, not a parameter: no optimiser, weight decay or checkpoint
restore can change it. Borders replicate (so constants stay constant on any
map size, even 1 px at the coarsest scale of a small face); `down` averages
2x2 blocks of the blurred map and `up` is bilinear on the same pixel-centre
grid (align_corners false), so the bands of an edge stay centred on it at
every scale instead of drifting half a pixel per octave.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """Normalised 2-D Gaussian, side 2 ceil(2 sigma) + 1 (5 taps for sigma 1)."""
    radius = max(1, math.ceil(2 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g).float()


class MultiScaleLoG(nn.Module):
    """(N, C, H, W) -> (N, out_channels, H, W): ReLU(BN(1x1 conv of the S band-pass maps))."""

    def __init__(self, in_channels: int, out_channels: int, scales: int = 3, sigma: float = 1.0):
        super().__init__()
        if scales < 1:
            raise ValueError(f"MultiScaleLoG: scales must be >= 1, got {scales}")
        self.in_channels, self.scales = in_channels, scales
        self.register_buffer("gaussian", gaussian_kernel(sigma)[None, None].repeat(in_channels, 1, 1, 1))
        self.mix = nn.Conv2d(in_channels * scales, out_channels, kernel_size=1, bias=False)
        self.norm = nn.BatchNorm2d(out_channels)

    def blur(self, x: torch.Tensor) -> torch.Tensor:
        pad = self.gaussian.shape[-1] // 2
        return F.conv2d(F.pad(x, (pad, pad, pad, pad), mode="replicate"), self.gaussian.to(x.dtype), groups=self.in_channels)

    def bands(self, x: torch.Tensor) -> torch.Tensor:
        """The S band-pass maps before the 1x1 convolution, each at x's size: (N, S*C, H, W)."""
        size, out, level = x.shape[-2:], [], x
        for _ in range(self.scales):
            down = F.avg_pool2d(self.blur(level), 2, ceil_mode=True)
            band = level - F.interpolate(down, size=level.shape[-2:], mode="bilinear", align_corners=False)
            out.append(band if band.shape[-2:] == size else F.interpolate(band, size=size, mode="bilinear", align_corners=False))
            level = down
        return torch.cat(out, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.mix(self.bands(x))))
