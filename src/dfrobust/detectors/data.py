"""What a detector reads, apart from its network: which training faces (their
labels, which rows of a video), what the training pool keeps of them, one
epoch's items, the validation items, statistics the loss takes from the
training data, and the faces and rows it scores.

A detector class names its data class (`Detector.data_class`); this one is
the default: every face of a video its own sample, cut by the detector's
`crop` setting (dfrobust.detectors.crop: the same code for training and for
scoring, so the two never differ), classes balanced per epoch, the
detector's `augment` list applied. A method that makes its own training data
(SBI's self-blends) or reads windows of faces (the two-branch network)
subclasses it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from dfrobust.detectors.augment import Augmenter
from dfrobust.detectors.crop import FaceCrop, geometry_of
from dfrobust.detectors.tensors import pick_frames, resize_crops, to_tensor
from dfrobust.media.crops import cut


def pool_face(pool, j: int, crop: FaceCrop | None, rng: np.random.Generator | None = None) -> np.ndarray:
    """Face j of a pool as the detector sees it, (1, S, S, 3): as stored in the pool, or cut from
    the stored crop the pool keeps (`pool.geometry`) by `crop`, drawn with `rng` in training."""
    if getattr(pool, "geometry", None) is None or crop is None:
        return pool.crops[j : j + 1]
    return crop.faces(pool.crops[j : j + 1], {k: v[j : j + 1] for k, v in pool.geometry.items()}, rng)


def pool_face_and_mask(pool, j: int, crop: FaceCrop | None,
                       rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Face j of a pool and its manipulation mask, (1, S, S, 3) and (1, S, S), cut by one draw of
    the crop: the face is pool_face's for the same `rng`."""
    if getattr(pool, "geometry", None) is None or crop is None:
        return pool.crops[j : j + 1], pool.masks[j : j + 1]
    geometry = {k: v[j : j + 1] for k, v in pool.geometry.items()}
    region, box = crop.regions(geometry, rng)[0], geometry["crop_boxes"][0]
    return (cut(np.asarray(pool.crops[j]), box, region, crop.size)[None],
            cut(np.asarray(pool.masks[j]), box, region, crop.size)[None])


def mask_extras(masks: np.ndarray, known: bool) -> dict[str, torch.Tensor]:
    """A dataset item's extras (dfrobust.detectors.base.Detector.batch_extras): masks (k, S, S) uint8
    and whether each is known (mask_known, (k,) bool)."""
    masks = np.asarray(masks, np.uint8)
    return {"masks": torch.from_numpy(np.array(masks)), "mask_known": torch.full((len(masks),), bool(known))}


class PoolFaces(Dataset):
    """Every face of a pool once, in order (validation); with `masks`, each item also carries
    the face's manipulation mask (the pool's masks, cut like the face)."""

    images_per_item = 1

    def __init__(self, pool, crop: FaceCrop | None = None, masks: bool = False):
        self.pool, self.crop, self.masks = pool, crop, masks

    def __len__(self) -> int:
        return len(self.pool)

    def __getitem__(self, i: int):
        label = torch.tensor([int(self.pool.labels[i])])
        if not self.masks:
            return to_tensor(pool_face(self.pool, i, self.crop)), label
        face, mask = pool_face_and_mask(self.pool, i, self.crop)
        return to_tensor(face), label, mask_extras(mask, self.pool.mask_known[i])


class BalancedFaces(Dataset):
    """One epoch of training faces, classes drawn equally often.

    FF++ has four fakes per real, so without balancing a detector can reach
    a low loss by leaning to "fake". As with a class-weighted sampler, the
    epoch has as many draws as the pool has faces, half from each class;
    within a class faces are drawn without replacement, cycling through
    fresh permutations when a class is short. The order depends only on
    `seed`, so an epoch is the same with any number of loader workers.
    """

    images_per_item = 1

    def __init__(self, pool, seed: int, balanced: bool, augment: Augmenter | None = None, crop: FaceCrop | None = None,
                 masks: bool = False):
        self.pool, self.seed, self.augment, self.crop, self.masks = pool, seed, augment, crop, masks
        rng = np.random.default_rng(seed)
        labels = np.asarray(pool.labels)
        classes = np.unique(labels)
        if not balanced or len(classes) < 2:
            self.order = rng.permutation(len(labels))
            return
        per_class = len(labels) // len(classes)
        draws = []
        for c in classes:
            idx = np.flatnonzero(labels == c)
            reps = -(-per_class // len(idx))
            draws.append(np.concatenate([rng.permutation(idx) for _ in range(reps)])[:per_class])
        self.order = rng.permutation(np.concatenate(draws))

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int):
        j = int(self.order[i])
        label = torch.tensor([int(self.pool.labels[j])])
        if self.masks:  # the face and its mask under the same crop draw and augmentation
            crops, mask = pool_face_and_mask(self.pool, j, self.crop, np.random.default_rng([self.seed, i]))
            if self.augment:
                face, mask2d = self.augment.with_mask(crops[0], mask[0], np.random.SeedSequence([self.seed, i]).generate_state(1)[0])
                crops, mask = face[None], mask2d[None]
            return to_tensor(crops), label, mask_extras(mask, self.pool.mask_known[j])
        crops = pool_face(self.pool, j, self.crop, np.random.default_rng([self.seed, i]))
        if self.augment:
            crops = self.augment(crops[0], np.random.SeedSequence([self.seed, i]).generate_state(1)[0])[None]
        return to_tensor(crops), label


def predict_faces(detector, faces: np.ndarray, batch_size: int) -> np.ndarray:
    """Fake probability (float32, shape (n,)) of each uint8 RGB face (n, S, S, 3), in
    eval mode without gradients; faces not at the detector's input size are resized
    to it as the whole face (stored crops a detector cuts differently go through
    its data's `view_faces` first)."""
    faces = np.asarray(faces)
    if len(faces) == 0:
        return np.zeros(0, np.float32)
    was_training = detector.training
    detector.eval()
    out = []
    try:
        with torch.inference_mode():
            for start in range(0, len(faces), batch_size):
                x = to_tensor(resize_crops(faces[start : start + batch_size], detector.input_size))
                out.append(detector.predict_proba(detector.preprocess(x)).float().cpu().numpy())
    finally:
        detector.train(was_training)
    return np.concatenate(out)


class FaceData:
    """The default data of a detector built from its resolved config block:
    single faces cut by its `crop`, classes balanced (`balanced`), its `augment`."""

    #: labels of the training faces the method reads (SBI: reals only)
    train_labels: tuple[int, ...] = (0, 1)
    #: whether the training and validation pools keep each face's manipulation mask (pool_masks)
    needs_masks: bool = False

    def __init__(self, cfg: dict[str, Any], name: str):
        self.cfg, self.name = cfg, name
        self.input_size = int(cfg["input_size"])
        self.crop = FaceCrop(cfg["crop"], self.input_size, f"detectors.{name}.crop")

    @property
    def val_labels(self) -> tuple[int, ...]:
        """Labels of the validation faces the method reads."""
        return (0, 1)

    @property
    def keeps_stored_crops(self) -> bool:
        """Whether the training pool keeps the stored crops (faces cut per sample) rather than
        the detector's fixed faces at its input size."""
        return self.crop.per_sample

    def augmenter(self) -> Augmenter:
        return Augmenter(self.cfg["augment"], f"detectors.{self.name}.augment")

    # -- the training pool -------------------------------------------------
    def pool_rows(self, record, window_length: int, k: int) -> np.ndarray:
        """Rows of a video's faces the training (validation) pool keeps, given
        frames_per_video (val_frames_per_video) `k`: k faces spread evenly."""
        return pick_frames(record.n_faces, k)

    def pool_view(self, record, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict | None]:
        """What the training pool keeps of faces `index` of a FaceRecord: (crops, landmarks in
        their pixels, geometry or None). Fixed crops are cut once, at the input size; crops drawn
        per sample keep the stored crop and its boxes (frame pixels) and frame size."""
        geometry = geometry_of(record, index)
        crops, landmarks = np.asarray(record.crops[index]), np.asarray(record.landmarks[index], np.float32)
        if not self.keeps_stored_crops:
            return (self.crop.faces(crops, geometry), self.crop.landmarks(landmarks, record.crops.shape[1], geometry), None)
        size = [record.meta.get("width") or 0, record.meta.get("height") or 0]
        geometry["frames"] = np.tile(np.asarray(size, np.int64), (len(crops), 1))
        return crops, landmarks, geometry

    # -- epochs ------------------------------------------------------------
    def train_dataset(self, pool, seed: int) -> Dataset:
        """One epoch of training items; `seed` is the epoch's own seed."""
        return BalancedFaces(pool, seed, balanced=bool(self.cfg["balanced"]), augment=self.augmenter(), crop=self.crop)

    def val_dataset(self, pool, seed: int) -> Dataset:
        """The fixed validation set (same every epoch); `seed` is the run's validation seed."""
        return PoolFaces(pool, self.crop)

    def prepare(self, detector, train_pool) -> None:
        """Called once before the first epoch of a fresh run (not on resume), with the
        initial weights: a loss that needs statistics of the training data (a
        hypersphere centre) computes them here into the detector's buffers, which
        checkpoints keep. Nothing by default."""

    # -- scoring -----------------------------------------------------------
    def view_faces(self, record) -> np.ndarray:
        """(n, input_size, input_size, 3) uint8: a FaceRecord's faces as the detector scores them."""
        return self.crop.faces(record.crops, geometry_of(record))

    def score_records(self, detector, records: list, window_length: int, batch_size: int,
                      log=print) -> list[tuple[np.ndarray, np.ndarray]]:
        """Scored rows of each video's faces: (frame_index, score) arrays per record.

        Default: one row per face, each cut as in training. A sequence model
        scores windows instead (`window_length`: the shard's
        faces.windows.length, 0 for single frames), one row per window. Faces
        of all records go through the network together, so batches are full.
        """
        faces = [self.view_faces(r) for r in records if r.n_faces]
        scores = predict_faces(detector, np.concatenate(faces), batch_size) if faces else np.zeros(0, np.float32)
        split = np.cumsum([r.n_faces for r in records])[:-1]
        return [(r.frame_indices, s) for r, s in zip(records, np.split(scores, split))]


class MaskData(FaceData):
    """FaceData whose training and validation items also carry each face's manipulation mask
    (its extras: masks (1, S, S) uint8 and mask_known, for a loss that reads them through
    Detector.batch_extra): FFD's map supervision. A real face's mask is all zero (known); a
    fake whose shard holds no mask (a method without masks, or a dataset without any) has an
    all-zero mask marked unknown."""

    needs_masks = True

    def pool_masks(self, record, index: np.ndarray) -> tuple[np.ndarray, bool]:
        """(masks (n, s, s) uint8, known) of faces `index` of a FaceRecord, cut as pool_view cuts
        the faces: at the input size for fixed crops, the stored crops' size otherwise."""
        index = np.asarray(index)
        size = record.crops.shape[1] if self.keeps_stored_crops else self.input_size
        stored = record.masks
        if record.label == 0 or stored is None:
            return np.zeros((len(index), size, size), np.uint8), record.label == 0
        masks = np.asarray(stored[index])
        if self.keeps_stored_crops:
            return masks, True
        geometry = geometry_of(record, index)
        regions = self.crop.regions(geometry)
        out = np.empty((len(index), size, size), np.uint8)
        for i, (mask, box, region) in enumerate(zip(masks, geometry["crop_boxes"], regions)):
            out[i] = cut(mask, box, region, size)
        return out, True

    def train_dataset(self, pool, seed: int) -> Dataset:
        return BalancedFaces(pool, seed, balanced=bool(self.cfg["balanced"]), augment=self.augmenter(), crop=self.crop,
                             masks=True)

    def val_dataset(self, pool, seed: int) -> Dataset:
        return PoolFaces(pool, self.crop, masks=True)
