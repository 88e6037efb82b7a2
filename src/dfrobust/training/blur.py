"""Pixel-wise Gaussian blur, the adversary of blurring adversarial training
(Wang, Guo & Zuo, "Deepfake Forensics via an Adversarial Game", Eq. 4-5).

Every pixel has its own sigma; its output is the inner product of its k x k
neighbourhood with the Gaussian kernel of that sigma. The kernel is Eq. 4
normalised to sum 1 over the k x k offsets (Eq. 4 itself is the continuous
density 1/(2 pi sigma^2) exp(-(u^2 + v^2) / (2 sigma^2)), whose sum over a
finite support is not 1: over 9 x 9 it is 3.98 at sigma 0.2, 1.80 at 0.3,
0.95 at 2, 0.75 at 3, so it would brighten or darken the face; normalised,
the paper's own "x_adv -> x as sigma -> 0" holds, and the authors' code
normalises too). The kernel depends on sigma^2
only, so it is valid for every real sigma: a negative sigma (an unsigned
gradient step may cross 0, Eq. 6) is the blur of |sigma|, sigma -> 0 the
identity, sigma -> inf the k x k box filter. No bound on sigma is needed for
the kernel to stay valid; the support k bounds the blur.

The map is given to `pixel_blur` as t = 1/sigma (any real, sign ignored):
the kernel is softmax(-(i^2 + j^2) t^2 / 2) over the k^2 offsets, nothing is
divided by sigma, t -> inf is the identity (the off-centre weights underflow
to exactly 0), t = 0 the box filter, and the gradient in t stays bounded.
`inverse_sigma` turns a sigma map into t.

Vectorised as k^2 shifted views of the reflect-padded image (the border mode
of torchvision's and OpenCV's Gaussian blur), each weighted by its weight map
and summed: the sums of unfold without materialising its k^2-fold copy of
the image, so a call keeps only the k^2 weight maps and the padded image for
its backward. Differentiable (once) in the image and in t.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def offsets(kernel_size: int) -> list[tuple[int, int]]:
    """(dy, dx) of the k x k neighbourhood, row by row."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
    r = kernel_size // 2
    return [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]


#: |sigma| below this is the identity blur (1/sigma would overflow; the off-centre weights are 0 long before)
SIGMA_EPS = 1e-6


def inverse_sigma(sigma: torch.Tensor, sigma_max: float | None = None) -> torch.Tensor:
    """1/|sigma| of a sigma map (any real: the kernel depends on sigma^2), the identity where
    |sigma| < SIGMA_EPS; with sigma_max, |sigma| is first clamped to it (an optional bound, not Eq. 6's)."""
    magnitude = sigma.abs()
    if sigma_max is not None:
        magnitude = magnitude.clamp(max=float(sigma_max))
    return 1.0 / magnitude.clamp(min=SIGMA_EPS)


def gaussian_weights(inv_sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Per-pixel normalised Gaussian kernels: (B, c, H, W) map of 1/sigma -> (B, k^2, c, H, W)."""
    d2 = torch.tensor([dy * dy + dx * dx for dy, dx in offsets(kernel_size)], dtype=inv_sigma.dtype,
                      device=inv_sigma.device)
    logits = -0.5 * d2.view(1, -1, 1, 1, 1) * inv_sigma.unsqueeze(1).square()
    return logits.softmax(dim=1)


def pixel_blur(images: torch.Tensor, inv_sigma: torch.Tensor, kernel_size: int = 9) -> torch.Tensor:
    """Blur each pixel of `images` (B, C, H, W) with its own sigma.

    inv_sigma: 1/sigma, shape (B, 1, H, W) (one sigma per pixel, the paper's
    single-channel map) or (B, C, H, W) (one per pixel and channel); any real
    (the kernel depends on its square).
    The weights sum to 1, so the blur commutes with a per-channel affine
    normalisation and keeps pixel values in their range.
    """
    if images.dim() != 4 or inv_sigma.dim() != 4:
        raise ValueError(f"expected (B, C, H, W) images and sigma map, got {tuple(images.shape)}, {tuple(inv_sigma.shape)}")
    b, c, h, w = images.shape
    if inv_sigma.shape[0] != b or inv_sigma.shape[1] not in (1, c) or inv_sigma.shape[2:] != images.shape[2:]:
        raise ValueError(f"sigma map {tuple(inv_sigma.shape)} does not fit images {tuple(images.shape)}")
    r = kernel_size // 2
    weights = gaussian_weights(inv_sigma, kernel_size)
    if r == 0:
        return images * weights[:, 0]
    return _WeightedShifts.apply(F.pad(images, (r, r, r, r), mode="reflect"), weights)


class _WeightedShifts(torch.autograd.Function):
    """out = sum_i weights[:, i] * (padded image shifted by offset i), with a
    hand-written backward: autograd of the same loop would keep a gradient
    per offset and sum broadcasts k^2 times (several times slower)."""

    @staticmethod
    def forward(ctx, padded: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(padded, weights)
        out = None
        for window, weight in zip(_windows(padded, weights.shape[1]), weights.unbind(1)):
            out = window * weight if out is None else out.addcmul_(window, weight)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        padded, weights = ctx.saved_tensors
        grad_padded = grad_weights = None
        if ctx.needs_input_grad[0]:
            grad_padded = torch.zeros_like(padded)
            for window, weight in zip(_windows(grad_padded, weights.shape[1]), weights.unbind(1)):
                window.addcmul_(grad, weight)  # window is a view: accumulates in place
        if ctx.needs_input_grad[1]:
            grad_weights = torch.empty_like(weights)
            per_channel = weights.shape[2] != 1
            for i, window in enumerate(_windows(padded, weights.shape[1])):
                product = grad * window
                grad_weights[:, i] = product if per_channel else product.sum(dim=1, keepdim=True)
        return grad_padded, grad_weights


def _windows(padded: torch.Tensor, k2: int):
    """The k^2 views of a reflect-padded (B, C, H + 2r, W + 2r) tensor, one per offset, row by row."""
    k = int(round(k2 ** 0.5))
    r = k // 2
    h, w = padded.shape[-2] - 2 * r, padded.shape[-1] - 2 * r
    for dy, dx in offsets(k):
        yield padded[:, :, r + dy: r + dy + h, r + dx: r + dx + w]
