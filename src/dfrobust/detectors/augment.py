"""Training augmentation from config: a list of albumentations transforms by
name, applied to each training face before it is batched.

    augment: [{name: HorizontalFlip, p: 0.5}, {name: ImageCompression, quality_range: [60, 100], p: 0.5}]

Each entry is one albumentations transform (its class name, its keyword
arguments; lists become tuples), composed in order, or one of the few
transforms albumentations 2.x cannot express (dfrobust.detectors.transforms:
a noise or blur whose variance is drawn uniformly, the blurring-adversarial-
training paper's baselines). The papers' pipelines (the gradient-
regularisation paper's list, blurring adversarial training's traditional
baselines, SBI's) are such lists in their detectors' defaults or in protocol
configs. Every face draws from its own seed, so an epoch does not depend on
loader workers.
"""

from __future__ import annotations

import random
import warnings
from typing import Sequence

import numpy as np

from dfrobust.core.errors import InputError


def _arguments(value):
    return tuple(_arguments(v) for v in value) if isinstance(value, list) else value


def build_augmentation(spec: Sequence[dict] | None, where: str = "augment"):
    """An albumentations Compose of `spec`'s transforms (None when empty).
    An unknown transform or argument is an InputError naming the entry."""
    if not spec:
        return None
    import albumentations as A

    from dfrobust.detectors.transforms import TRANSFORMS

    transforms = []
    for i, entry in enumerate(spec):
        entry = dict(entry)
        name = entry.pop("name", None)
        cls = TRANSFORMS.get(str(name)) or getattr(A, str(name), None)
        if not isinstance(cls, type) or not issubclass(cls, A.BasicTransform):
            raise InputError(f"config key '{where}.{i}.name': {name!r} is not an albumentations transform "
                             f"(nor one of {', '.join(TRANSFORMS)})")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                transforms.append(cls(**{k: _arguments(v) for k, v in entry.items()}))
            except (TypeError, ValueError) as err:
                raise InputError(f"config key '{where}.{i}': {name}({entry}) is not valid ({err})") from None
        # albumentations only warns about an argument it does not know: a typo must not train without it
        unknown = [str(w.message) for w in caught if "not valid" in str(w.message)]
        if unknown:
            raise InputError(f"config key '{where}.{i}': {name}({entry}) is not valid ({unknown[0]})")
    return A.Compose(transforms)


class Augmenter:
    """Applies a composed pipeline to one uint8 RGB face with a given seed."""

    def __init__(self, spec: Sequence[dict] | None, where: str = "augment"):
        self.compose = build_augmentation(spec, where)

    def __bool__(self) -> bool:
        return self.compose is not None

    def __call__(self, image: np.ndarray, seed: int) -> np.ndarray:
        if self.compose is None:
            return image
        # set_random_seed would give every transform the same seed (their draws then all fire together):
        # one generator pair, drawn from in turn, keeps them independent
        seed = int(seed) % 2**32
        self.compose.set_random_state(np.random.default_rng(seed), random.Random(seed))
        return self.compose(image=np.ascontiguousarray(image))["image"]

    def with_mask(self, image: np.ndarray, mask: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """The face and its (H, W) manipulation mask under one draw: spatial transforms move both,
        the others change the face only (albumentations' `mask` target); the face is the
        same as __call__'s with that seed."""
        if self.compose is None:
            return image, mask
        seed = int(seed) % 2**32
        self.compose.set_random_state(np.random.default_rng(seed), random.Random(seed))
        out = self.compose(image=np.ascontiguousarray(image), mask=np.ascontiguousarray(mask))
        return out["image"], out["mask"]
