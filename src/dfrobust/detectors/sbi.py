"""Self-Blended Images (Shiohara & Yamasaki, CVPR 2022): EfficientNet-B4
trained on real faces only; each real face in a batch comes with a
pseudo-fake self-blended from it on the fly (sbi_blend.py), so a batch is
half real, half blended.

Paper settings: input 380, SAM over SGD (lr 1e-3, momentum 0.9, rho 0.05),
batch 32, 100 epochs, 8 frames per video, learning rate decayed linearly to
zero over the last quarter. As the authors' code: the backbone is AdvProp
EfficientNet-B4 (timm `tf_efficientnet_b4.ap_in1k`, the same TF AdvProp
weights as their efficientnet-pytorch `advprop=True`, TF "same" padding)
fed [0, 1] pixels without mean/std (mean 0, std 1 here), dropout 0.4 and
drop-path 0.2; faces are cut around the RetinaFace box (1.25x each side
for validation and test, 1.1-1.4x drawn per side in training, not square)
from the stored crop at the video's resolution; blend masks cover the
forehead in 75% of the samples; the checkpoint is chosen on validation
reals and their self-blended copies (fixed seed, no augmentation; the
method never sees a manipulated video, not even for model selection:
`val_fakes: dataset` uses the split's real fakes instead), and the weights
kept are the latest of the five epochs with the best validation AUC.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from dfrobust.core.errors import InputError
from dfrobust.detectors.augment import Augmenter
from dfrobust.detectors.base import TimmClassifier
from dfrobust.detectors.crop import FaceCrop, geometry_of
from dfrobust.detectors.data import FaceData
from dfrobust.detectors.tensors import to_tensor
from dfrobust.media.crops import frame_landmarks, pick_boxes
from dfrobust.detectors.registry import register
from dfrobust.detectors.sbi_blend import (BLEND_RATIOS, HULLS, StoredFace, Transforms, blend_face, face_for_scoring,
                                          landmarks_usable)


class SelfBlendFaces(Dataset):
    """Real faces, each item a (real, self-blended fake) pair with labels (0, 1).

    The pool keeps the stored crops and their geometry (FaceData.pool_view).
    Training items are flipped, jittered and augmented, in a seeded shuffled
    order; validation items are none of these, in pool order. Item i draws
    from its own Generator seeded by (seed, i), so the result does not depend
    on loader workers or on earlier items. Faces without usable landmarks are
    left out; so are faces without a RetinaFace box when the crop is around
    RetinaFace boxes and the shards have them (the authors train only on
    frames with both).
    """

    images_per_item = 2

    def __init__(self, pool, seed: int, train: bool, crop: FaceCrop, ratios=BLEND_RATIOS, hull: str = "landmarks",
                 forehead: float = 0.75, augment: Augmenter | None = None):
        geometry = getattr(pool, "geometry", None)
        if geometry is None:
            raise InputError("sbi: the face pool has no stored crops and boxes to self-blend from")
        size = pool.crops.shape[1]
        self.notes = []
        retina = np.isfinite(geometry["retina_boxes"]).all(axis=1)
        need_retina = crop.spec.box == "retinaface" and retina.any()
        if crop.spec.box == "retinaface" and not retina.any():
            self.notes.append("sbi: the shards hold no RetinaFace boxes (faces.retinaface.weights not set): "
                              "faces are cut around the face detector's boxes")
        usable = [i for i in range(len(pool)) if int(pool.labels[i]) == 0 and landmarks_usable(pool.landmarks[i], size)
                  and (retina[i] or not need_retina)]
        if not usable:
            raise InputError("sbi: no real face with usable landmarks to self-blend "
                             f"({len(pool)} faces; landmarks missing or degenerate)")
        self.pool, self.seed, self.train, self.crop = pool, seed, train, crop
        self.ratios, self.hull, self.forehead, self.augment = tuple(ratios), hull, float(forehead), augment
        self.boxes = pick_boxes(crop.spec, geometry["boxes"], geometry["retina_boxes"])
        self.n_unusable = int((np.asarray(pool.labels) == 0).sum()) - len(usable)
        self.order = np.random.default_rng(seed).permutation(usable) if train else np.asarray(usable)
        self.transforms = Transforms()

    def __len__(self) -> int:
        return len(self.order)

    def face(self, j: int) -> StoredFace:
        g = self.pool.geometry
        crop_box = np.asarray(g["crop_boxes"][j])
        landmarks = frame_landmarks(np.asarray(self.pool.landmarks[j : j + 1], np.float64), crop_box[None], self.pool.crops.shape[1])[0]
        return StoredFace(np.asarray(self.pool.crops[j]), crop_box, landmarks, self.boxes[j], tuple(int(v) for v in g["frames"][j]))

    def __getitem__(self, i: int):
        j = int(self.order[i])
        rng = np.random.default_rng([self.seed, i])
        real, fake = blend_face(self.face(j), rng, self.crop.spec, self.crop.size, self.transforms, self.train,
                                self.ratios, self.hull, self.forehead)
        if self.train and self.augment:
            seed = int(rng.integers(2**32))
            real, fake = self.augment(real, seed), self.augment(fake, seed)
        return to_tensor(np.stack([real, fake])), torch.tensor([0, 1])


class TestLikeFaces(Dataset):
    """Every face of a pool once, cut as for scoring (validation on the split's real fakes)."""

    images_per_item = 1

    def __init__(self, pool, crop: FaceCrop):
        self.pool, self.crop = pool, crop
        g = pool.geometry
        self.boxes = pick_boxes(crop.spec, g["boxes"], g["retina_boxes"])

    def __len__(self) -> int:
        return len(self.pool)

    def __getitem__(self, j: int):
        crop_box = np.asarray(self.pool.geometry["crop_boxes"][j])
        face = StoredFace(np.asarray(self.pool.crops[j]), crop_box, np.zeros((68, 2)), self.boxes[j])
        image = face_for_scoring(face, self.crop.spec, self.crop.size)
        return to_tensor(image[None]), torch.tensor([int(self.pool.labels[j])])


class SelfBlendData(FaceData):
    """SBI's data: real faces only, each with its self-blended copy; checkpoint selection on
    the validation reals and their self-blends (or the split's real fakes, `val_fakes`)."""

    train_labels = (0,)

    @property
    def val_labels(self) -> tuple[int, ...]:
        return (0,) if self.cfg["val_fakes"] == "self_blended" else (0, 1)

    @property
    def keeps_stored_crops(self) -> bool:
        return True  # blending works on the stored crop at the video's resolution

    def _dataset(self, pool, seed: int, train: bool) -> SelfBlendFaces:
        return SelfBlendFaces(pool, seed, train, self.crop, self.cfg["blend_ratios"], self.cfg["hull"],
                              self.cfg["forehead"], self.augmenter())

    def train_dataset(self, pool, seed: int) -> Dataset:
        return self._dataset(pool, seed, train=True)

    def val_dataset(self, pool, seed: int) -> Dataset:
        if self.cfg["val_fakes"] == "self_blended":
            return self._dataset(pool, seed, train=False)
        return TestLikeFaces(pool, self.crop)

    def view_faces(self, record) -> np.ndarray:
        """Test faces: the fixed crop around each face's RetinaFace box (its face box where none was
        found), from the stored crop at the video's resolution, as the validation faces."""
        geometry = geometry_of(record)
        boxes = pick_boxes(self.crop.spec, geometry["boxes"], geometry["retina_boxes"])
        lms = frame_landmarks(np.asarray(record.landmarks, np.float64), np.asarray(record.crop_boxes), record.crops.shape[1])
        out = np.empty((record.n_faces, self.input_size, self.input_size, 3), np.uint8)
        for i in range(record.n_faces):
            face = StoredFace(np.asarray(record.crops[i]), np.asarray(record.crop_boxes[i]), lms[i], boxes[i])
            out[i] = face_for_scoring(face, self.crop.spec, self.input_size)
        return out


@register("sbi")
class SBI(TimmClassifier):
    """Self-Blended Images: AdvProp EfficientNet-B4 trained on real faces and their on-the-fly self-blends, SAM over SGD."""

    defaults = {
        "backbone": "tf_efficientnet_b4.ap_in1k",
        "input_size": 380,
        "mean": [0.0, 0.0, 0.0],
        "std": [1.0, 1.0, 1.0],
        "drop_rate": 0.4,
        "drop_path_rate": 0.2,
        "optimizer": {"name": "sam", "base": "sgd", "lr": 1.0e-3, "momentum": 0.9, "rho": 0.05},
        "lr_schedule": {"name": "linear_decay", "decay_start": 0.75},
        "epochs": 100,
        "batch_size": 32,
        "frames_per_video": 8,
        "val_frames_per_video": 8,
        "crop": {"box": "retinaface", "scale": 1.25, "shape": "box", "jitter": [1.1, 1.4]},
        "selection": "latest_of_top5",
        "blend_ratios": list(BLEND_RATIOS),
        "forehead": 0.75,
        "hull": "landmarks",
        "val_fakes": "self_blended",
    }
    settings = {
        "batch_size": {"type": "integer", "minimum": 2, "description": "Images per training step, half real, half self-blended."},
        "blend_ratios": {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0, "maximum": 1}, "minItems": 1,
                         "description": "Blend ratios drawn uniformly for each self-blended face (repeats weight a value)."},
        "forehead": {"type": "number", "minimum": 0, "maximum": 1,
                     "description": "Share of blend masks over the 81 landmarks, forehead included (dfrobust.media.forehead; "
                                    "the authors' 81-point model in 75% of samples); the rest use the 68."},
        "hull": {"type": "string", "enum": list(HULLS),
                 "description": "Initial blend mask: landmarks (their convex hull, SBI's code as shipped) or face_xray "
                                "(one of Face X-ray's four hulls per sample, the optional library SBI's authors recommend)."},
        "val_fakes": {"type": "string", "enum": ["self_blended", "dataset"],
                      "description": "Fakes for checkpoint selection: self_blended (copies of the validation reals, "
                                     "as SBI's code) or dataset (the split's manipulated videos)."},
    }
    data_class = SelfBlendData
