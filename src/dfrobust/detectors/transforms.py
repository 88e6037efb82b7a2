"""Training transforms albumentations 2.x cannot express, usable by name in an
`augment` list beside albumentations' own (dfrobust.detectors.augment).

The blurring-adversarial-training paper's traditional baselines (Wang, Guo &
Zuo, TIP 2022, the data-augmentation comparison) draw a *variance* uniformly:
Gaussian noise of mean 0 and variance U[0, 30], a 9 x 9 Gaussian blur of
variance U[0, 30] (grey levels^2 and pixels^2). albumentations 1.x drew the
noise that way (GaussNoise(var_limit)); 2.x draws the standard deviation
uniformly, and its GaussianBlur draws sigma, so neither can give the paper's
distribution:

    {name: GaussNoiseVariance, var_range: [0, 30], mean: 0, p: 0.5}
    {name: GaussianBlurVariance, kernel_size: 9, var_range: [0, 30], p: 0.5}

Both draw from the transform's own random state (albumentations'
`py_random` for the variance, `random_generator` for the noise), so the
Augmenter's per-face seed fixes them.
"""

from __future__ import annotations

from typing import Any, Sequence

import cv2
import numpy as np
from albumentations.core.transforms_interface import ImageOnlyTransform


def _variance_range(var_range: Sequence[float]) -> tuple[float, float]:
    low, high = (float(v) for v in var_range)
    if not 0 <= low <= high:
        raise ValueError(f"var_range must be [low, high] with 0 <= low <= high, got {list(var_range)}")
    return low, high


class GaussNoiseVariance(ImageOnlyTransform):
    """Add Gaussian noise N(mean, var) to every pixel and channel of a uint8 image, var ~ U(var_range)
    per image (grey levels^2, albumentations 1.x's GaussNoise(var_limit) draw); rounded and clipped to 0..255."""

    def __init__(self, var_range: Sequence[float] = (0.0, 30.0), mean: float = 0.0, p: float = 0.5):
        super().__init__(p=p)
        self.var_range = _variance_range(var_range)
        self.mean = float(mean)

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        variance = self.py_random.uniform(*self.var_range)
        return {"noise": self.random_generator.normal(self.mean, variance ** 0.5, data["image"].shape)}

    def apply(self, img: np.ndarray, noise: np.ndarray, **params: Any) -> np.ndarray:
        return np.clip(np.rint(img.astype(np.float64) + noise), 0, 255).astype(np.uint8)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("var_range", "mean")


class GaussianBlurVariance(ImageOnlyTransform):
    """OpenCV's k x k Gaussian blur (reflect-101 borders) with sigma = sqrt(var), var ~ U(var_range) per
    image (pixels^2); var = 0 is the identity (the limit; OpenCV would derive a sigma from k instead)."""

    def __init__(self, kernel_size: int = 9, var_range: Sequence[float] = (0.0, 30.0), p: float = 0.5):
        super().__init__(p=p)
        if int(kernel_size) != kernel_size or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
        self.kernel_size = int(kernel_size)
        self.var_range = _variance_range(var_range)

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        return {"sigma": self.py_random.uniform(*self.var_range) ** 0.5}

    def apply(self, img: np.ndarray, sigma: float, **params: Any) -> np.ndarray:
        if sigma <= 0:
            return img
        k = self.kernel_size
        return cv2.GaussianBlur(img, (k, k), sigmaX=sigma, sigmaY=sigma)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("kernel_size", "var_range")


#: the transforms an `augment` entry may name besides albumentations'
TRANSFORMS = {cls.__name__: cls for cls in (GaussNoiseVariance, GaussianBlurVariance)}
