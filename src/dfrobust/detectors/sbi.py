"""Self-Blended Images (Shiohara & Yamasaki, CVPR 2022): EfficientNet-B4
trained on real faces only; each real face in a batch comes with a
pseudo-fake self-blended from it on the fly (see sbi_blend.py), so a batch
is half real, half blended.

Paper settings: input 380, SAM over SGD (lr 1e-3, momentum 0.9, rho 0.05),
batch 32, 100 epochs, 8 frames per video, learning rate decayed linearly to
zero over the last quarter. As in the authors' code, the checkpoint is
chosen on validation reals and their self-blended copies (fixed seed, no
augmentation): the method never sees a manipulated video, not even for
model selection (`val_fakes: dataset` uses the split's real fakes instead).

The authors' backbone was efficientnet-pytorch's AdvProp B4 fed [0, 1]
pixels; here it is timm's `efficientnet_b4` with ImageNet weights and
normalisation (dropout 0.4 and drop-path 0.2 as that B4 had). timm's
`tf_efficientnet_b4.ap_in1k` (mean = std = 0.5) is the AdvProp equivalent.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from dfrobust.detectors.base import TimmClassifier, to_tensor
from dfrobust.detectors.registry import register
from dfrobust.detectors.sbi_blend import BLEND_RATIOS, augment_pair, hflip, landmarks_usable, self_blend
from dfrobust.core.errors import InputError


class SelfBlendFaces(Dataset):
    """Real faces, each item a (real, self-blended fake) pair with labels (0, 1).

    Training items are flipped (p=0.5) before blending and augmented after
    it, in a seeded shuffled order; validation items are neither, in pool
    order. Item i draws from its own Generator seeded by (seed, i), so the
    result does not depend on loader workers or on earlier items.
    """

    images_per_item = 2

    def __init__(self, pool, seed: int, train: bool, ratios=BLEND_RATIOS):
        size = pool.crops.shape[1]
        usable = [i for i in range(len(pool))
                  if int(pool.labels[i]) == 0 and landmarks_usable(pool.landmarks[i], size)]
        if not usable:
            raise InputError("sbi: no real face with usable landmarks to self-blend "
                             f"({len(pool)} faces; landmarks missing or degenerate)")
        self.pool, self.seed, self.train, self.ratios = pool, seed, train, tuple(ratios)
        self.n_unusable = int((np.asarray(pool.labels) == 0).sum()) - len(usable)
        self.order = np.random.default_rng(seed).permutation(usable) if train else np.asarray(usable)

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int):
        j = int(self.order[i])
        rng = np.random.default_rng([self.seed, i])
        img, lm = np.asarray(self.pool.crops[j]), np.asarray(self.pool.landmarks[j], np.float32)
        if self.train and rng.random() < 0.5:
            img, lm = hflip(img, lm)
        real, fake, _ = self_blend(img, lm, rng, self.ratios)
        if self.train:
            real, fake = augment_pair(real, fake, rng)
        return to_tensor(np.stack([real, fake])), torch.tensor([0, 1])


@register("sbi")
class SBI(TimmClassifier):
    """Self-Blended Images: EfficientNet-B4 trained on real faces and their on-the-fly self-blends, SAM over SGD."""

    defaults = {
        "backbone": "efficientnet_b4",
        "input_size": 380,
        "drop_rate": 0.4,
        "drop_path_rate": 0.2,
        "optimizer": {"name": "sam", "base": "sgd", "lr": 1.0e-3, "momentum": 0.9, "rho": 0.05},
        "lr_schedule": {"name": "linear_decay", "decay_start": 0.75},
        "epochs": 100,
        "batch_size": 32,
        "frames_per_video": 8,
        "val_frames_per_video": 8,
        "blend_ratios": list(BLEND_RATIOS),
        "val_fakes": "self_blended",
    }
    settings = {
        "batch_size": {"type": "integer", "minimum": 2, "description": "Images per training step, half real, half self-blended."},
        "blend_ratios": {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0, "maximum": 1}, "minItems": 1,
                         "description": "Blend ratios drawn uniformly for each self-blended face (repeats weight a value)."},
        "val_fakes": {"type": "string", "enum": ["self_blended", "dataset"],
                      "description": "Fakes for checkpoint selection: self_blended (copies of the validation reals, "
                                     "as SBI's code) or dataset (the split's manipulated videos)."},
    }
    train_labels = (0,)

    @property
    def val_labels(self) -> tuple[int, ...]:
        return (0,) if self.cfg["val_fakes"] == "self_blended" else (0, 1)

    def train_dataset(self, pool, seed: int) -> Dataset:
        return SelfBlendFaces(pool, seed, train=True, ratios=self.cfg["blend_ratios"])

    def val_dataset(self, pool, seed: int) -> Dataset:
        if self.cfg["val_fakes"] == "self_blended":
            return SelfBlendFaces(pool, seed, train=False, ratios=self.cfg["blend_ratios"])
        return super().val_dataset(pool, seed)
