"""Self-blending (Shiohara & Yamasaki, CVPR 2022): a pseudo-fake made from one
real face by blending a slightly altered copy of it back into itself.

Follows the authors' code (github.com/mapooon/SelfBlendedImages,
src/utils/sbi.py and blend.py):

1. mask: convex hull of the 68 landmarks;
2. one of the two copies (source or target, 50/50) gets colour and
   frequency changes: RGB shift, hue/saturation/value, brightness/contrast,
   then either down-and-up scaling (x2 or x4) or sharpening;
3. the source and the mask get the same small affine warp (shift
   +-3% x, +-1.5% y, scale 0.95..1/0.95); the mask alone is then deformed
   (elastic warp, random dilation or erosion);
4. the mask is blurred: resized to a random 192..256 square-ish size, its
   outline smoothed, blurred with a random kernel (5..25) and sigma (5..45),
   normalised to a maximum of 1, and multiplied by a blend ratio drawn
   from {0.25, 0.5, 0.75, 1, 1, 1};
5. fake = mask * source + (1 - mask) * target; the real of the pair is the
   target, so the two differ only where the mask is non-zero.

Mask operations run at a fixed 256-pixel reference so that the deformation
and blur are the same fraction of the face at any crop size. The HSV
limits of the code (+-0.3 on the uint8 scale) round to nothing in
albumentations; we use a small visible shift instead (hue +-3 OpenCV units,
saturation and value x0.9..1.1). Every random draw comes from the given
numpy Generator, so a sample is reproducible from its seed.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

REF = 256  # reference resolution of the mask operations
BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)

# 68-point (iBUG) landmark order after a horizontal flip, as in SBI's hflip
_FLIP = np.concatenate([
    np.arange(16, -1, -1), np.arange(26, 16, -1), np.arange(27, 31), np.arange(35, 30, -1),
    np.arange(45, 41, -1), np.arange(47, 45, -1), np.arange(39, 35, -1), np.arange(41, 39, -1),
    np.arange(54, 47, -1), np.arange(59, 54, -1), np.arange(64, 59, -1), np.arange(67, 64, -1),
])


def hflip(img: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror a face and its landmarks (left eye stays index 36..41)."""
    w = img.shape[1]
    lm = landmarks[_FLIP].copy()
    lm[:, 0] = w - 1 - lm[:, 0]
    return np.ascontiguousarray(img[:, ::-1]), lm


def landmarks_usable(landmarks: np.ndarray, size: int, min_area: float = 0.01) -> bool:
    """Finite landmarks whose hull covers at least `min_area` of the crop."""
    if landmarks.shape != (68, 2) or not np.isfinite(landmarks).all():
        return False
    area = cv2.contourArea(cv2.convexHull(landmarks.astype(np.float32)))
    return area >= min_area * size * size


def hull_mask(landmarks: np.ndarray, size: int) -> np.ndarray:
    """float32 (size, size) mask: 1 inside the landmarks' convex hull."""
    mask = np.zeros((size, size), np.float32)
    hull = cv2.convexHull(np.round(landmarks).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1.0)
    return mask


def _affine_matrix(size: int, tx: float, ty: float, scale: float) -> np.ndarray:
    """Scale about the centre, then shift by a fraction of the size."""
    c = (size - 1) / 2.0
    return np.array([[scale, 0, c - scale * c + tx * size], [0, scale, c - scale * c + ty * size]], np.float32)


def elastic(mask: np.ndarray, rng: np.random.Generator, alpha: float = 50.0, sigma: float = 7.0) -> np.ndarray:
    """Elastic warp (albumentations' ElasticTransform with alpha 50, sigma 7, as in SBI)."""
    h, w = mask.shape
    dx = cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma) * alpha
    dy = cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma) * alpha
    x, y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(mask, x + dx, y + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def dilate_or_erode(mask: np.ndarray, rng: np.random.Generator, max_px: int = 9) -> np.ndarray:
    """Grow, shrink or keep the mask (one third each), by up to `max_px` reference pixels."""
    choice = rng.integers(3)
    if choice == 2:
        return mask
    k = int(rng.integers(1, max_px + 1)) * 2 + 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    return (cv2.dilate if choice == 0 else cv2.erode)(mask, kernel)


def blend_mask(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """SBI's get_blend_mask: random resize, smooth outline, random Gaussian blur, max 1."""
    h, w = mask.shape
    size_h, size_w = int(rng.integers(192, 257)), int(rng.integers(192, 257))
    m = cv2.resize(mask, (size_w, size_h), interpolation=cv2.INTER_LINEAR)
    k1 = int(rng.choice(np.arange(5, 26, 2)))
    # SBI's first blur acts on a 0/1 uint8 mask, i.e. it smooths the outline
    m = (cv2.GaussianBlur(m, (k1, k1), 0) >= 0.5).astype(np.float32)
    if m.max() <= 0:
        return np.zeros((h, w), np.float32)
    k2 = int(rng.choice(np.arange(5, 26, 2)))
    m = cv2.GaussianBlur(m, (k2, k2), float(rng.integers(5, 46)))
    m = m / m.max()
    return cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)


# -- colour and frequency changes -----------------------------------------------------------
def rgb_shift(img: np.ndarray, rng: np.random.Generator, limit: int = 20) -> np.ndarray:
    return np.clip(img.astype(np.int16) + rng.integers(-limit, limit + 1, 3).astype(np.int16), 0, 255).astype(np.uint8)


def hsv_shift(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.integers(-3, 4)) % 180
    hsv[..., 1] *= rng.uniform(0.9, 1.1)
    hsv[..., 2] *= rng.uniform(0.9, 1.1)
    return cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB)


def brightness_contrast(img: np.ndarray, rng: np.random.Generator, limit: float) -> np.ndarray:
    """albumentations' RandomBrightnessContrast: x (1 + c) + b * 255."""
    c, b = rng.uniform(-limit, limit, 2)
    return np.clip(img.astype(np.float32) * (1 + c) + b * 255, 0, 255).astype(np.uint8)


def down_up(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """SBI's RandomDownScale: nearest down by 2 or 4, bilinear back up."""
    h, w = img.shape[:2]
    r = int(rng.choice([2, 4]))
    small = cv2.resize(img, (max(1, w // r), max(1, h // r)), interpolation=cv2.INTER_NEAREST)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def sharpen(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """albumentations' Sharpen(alpha 0.2..0.5, lightness 0.5..1)."""
    alpha, lightness = rng.uniform(0.2, 0.5), rng.uniform(0.5, 1.0)
    identity = np.zeros((3, 3), np.float32)
    identity[1, 1] = 1
    effect = -np.ones((3, 3), np.float32)
    effect[1, 1] = 8 + lightness
    kernel = (1 - alpha) * identity + alpha * effect
    return np.clip(cv2.filter2D(img.astype(np.float32), -1, kernel), 0, 255).astype(np.uint8)


def source_transform(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The change applied to one copy before blending (SBI's source transforms)."""
    if rng.random() < 0.3:
        img = rgb_shift(img, rng)
    img = hsv_shift(img, rng)
    img = brightness_contrast(img, rng, 0.1)
    return down_up(img, rng) if rng.random() < 0.5 else sharpen(img, rng)


def self_blend(img: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator,
               ratios: Sequence[float] = BLEND_RATIOS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(real, fake, mask) from one uint8 RGB face and its 68 landmarks (pixels).

    `real` is the target of the blend (the original, or its altered copy when
    the target was the one altered); `fake` equals `real` wherever `mask` is 0.
    """
    size = img.shape[0]
    mask = hull_mask(landmarks * (REF / size), REF)
    source, target = img.copy(), img.copy()
    if rng.random() < 0.5:
        source = source_transform(source, rng)
    else:
        target = source_transform(target, rng)
    tx, ty, scale = rng.uniform(-0.03, 0.03), rng.uniform(-0.015, 0.015), rng.uniform(0.95, 1 / 0.95)
    source = cv2.warpAffine(source, _affine_matrix(size, tx, ty, scale), (size, size),
                            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    mask = cv2.warpAffine(mask, _affine_matrix(REF, tx, ty, scale), (REF, REF),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    mask = dilate_or_erode(elastic(mask, rng), rng)
    mask = blend_mask(mask, rng)
    mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_LINEAR) * float(rng.choice(np.asarray(ratios)))
    m = mask[..., None]
    fake = np.rint(m * source.astype(np.float32) + (1 - m) * target.astype(np.float32))
    return target, np.clip(fake, 0, 255).astype(np.uint8), mask.astype(np.float32)


def augment_pair(real: np.ndarray, fake: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """SBI's training augmentation, with the same random parameters on both
    images so that the pair still differs only by the blend: RGB shift,
    HSV and brightness/contrast (each p=0.3), JPEG quality 40..100 (p=0.5)."""
    out = []
    seed = int(rng.integers(2**63))
    for img in (real, fake):
        r = np.random.default_rng(seed)
        if r.random() < 0.3:
            img = rgb_shift(img, r)
        if r.random() < 0.3:
            img = hsv_shift(img, r)
        if r.random() < 0.3:
            img = brightness_contrast(img, r, 0.3)
        if r.random() < 0.5:
            quality = int(r.integers(40, 101))
            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
            img = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        out.append(img)
    return out[0], out[1]
