"""Spatially transformed images (Xiao et al., "Spatially Transformed
Adversarial Examples", ICLR 2018): each output pixel is the input sampled
bilinearly at its own position plus a flow vector, and the flow's
smoothness penalty, which keeps the displacement locally coherent.
Flows are in pixels: (B, 2, H, W), channel 0 the x (column) displacement,
channel 1 the y (row) displacement.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def warp(images: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """images (B, C, H, W) sampled at p + flow(p), bilinear, borders replicated;
    a zero flow returns the images."""
    b, _, h, w = images.shape
    if flow.shape != (b, 2, h, w):
        raise ValueError(f"flow {tuple(flow.shape)} does not fit images {tuple(images.shape)}")
    ys, xs = torch.meshgrid(torch.arange(h, dtype=flow.dtype, device=flow.device),
                            torch.arange(w, dtype=flow.dtype, device=flow.device), indexing="ij")
    # align_corners=True: -1 and 1 are the centres of the first and last pixels
    gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    return F.grid_sample(images, torch.stack((gx, gy), dim=-1), mode="bilinear", padding_mode="border",
                         align_corners=True)


def flow_smoothness(flow: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Xiao et al.'s L_flow per image, (B,): the sum over every pixel p and each of its 4 neighbours q
    inside the image of sqrt(|du(p) - du(q)|^2 + |dv(p) - dv(q)|^2 + eps) (their Eq. 4, a sum over
    pixels, so its weight tau = 0.05 is theirs; eps, not in theirs, keeps the gradient finite where
    the flow is locally constant)."""
    total = flow.new_zeros(flow.shape[0])
    for dy, dx in ((0, 1), (1, 0)):  # right and down; each neighbour pair appears twice in the 4-neighbourhood sum
        a = flow[:, :, dy:, dx:]
        b = flow[:, :, : flow.shape[2] - dy, : flow.shape[3] - dx]
        total = total + 2 * ((a - b).square().sum(dim=1) + eps).sqrt().flatten(1).sum(dim=1)
    return total
