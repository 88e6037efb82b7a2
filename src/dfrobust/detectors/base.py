"""What every detector shares: preprocessing, the fake-probability interface,
weight loading, and the default way training batches are formed.

A detector is an `nn.Module` built from its resolved config block. It sees
faces as uint8 NCHW tensors at `input_size`, cut from the stored crops by
its `crop` setting (dfrobust.detectors.crop; the same code for training and
for scoring, so the two never differ), normalises them itself, and defines
its own loss and its own training data (which faces, how real and fake are
balanced, what is made on the fly).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from dfrobust.core.configurable import Configurable
from dfrobust.core.errors import InputError
from dfrobust.detectors.augment import Augmenter
from dfrobust.detectors.crop import FaceCrop, geometry_of


def resize_crops(crops: np.ndarray, size: int) -> np.ndarray:
    """Square uint8 RGB crops (n, S, S, 3) -> (n, size, size, 3).

    Area interpolation when shrinking (no aliasing), bilinear when enlarging.
    The single resize used for training and scoring.
    """
    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[-1] != 3 or crops.shape[1] != crops.shape[2]:
        raise ValueError(f"expected square RGB crops (n, S, S, 3), got shape {crops.shape}")
    if crops.dtype != np.uint8:
        raise ValueError(f"expected uint8 crops, got {crops.dtype}")
    if crops.shape[1] == size:
        return crops
    interp = cv2.INTER_AREA if crops.shape[1] > size else cv2.INTER_LINEAR
    out = np.empty((len(crops), size, size, 3), np.uint8)
    for i, crop in enumerate(crops):
        out[i] = cv2.resize(crop, (size, size), interpolation=interp)
    return out


def pick_frames(n: int, k: int) -> np.ndarray:
    """k indices spread evenly over n faces (all of them when k >= n)."""
    if k >= n:
        return np.arange(n)
    if k == 1:
        return np.array([n // 2])
    return np.round(np.linspace(0, n - 1, k)).astype(np.int64)


def to_tensor(crops: np.ndarray) -> torch.Tensor:
    """uint8 NHWC numpy -> uint8 NCHW tensor (a copy: crops may be a read-only memory map)."""
    return torch.from_numpy(np.array(crops, dtype=np.uint8)).permute(0, 3, 1, 2).contiguous()


def read_weights_file(path: str | Path, key: str) -> dict[str, torch.Tensor]:
    """The tensors of a local state-dict file: a bare state dict, or one wrapped
    in "state_dict" or "model" (checkpoints, this workflow's weights.pt), with
    DataParallel's "module." prefix removed. `key` is the config key that named it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"config key '{key}': weights file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same user problem
        raise InputError(f"{path}: cannot read weights ({err})") from err
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise InputError(f"{path}: not a state dict")
    return {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def load_matching(module: nn.Module, state: dict[str, torch.Tensor], path: str | Path) -> str:
    """Load the tensors of `state` (read from `path`) whose name and shape match `module`'s.

    Tensors whose name or shape do not match (typically a 1000-class ImageNet
    head where the detector has 2 classes) are skipped, as timm does for
    pretrained heads. Fails when nothing matches: that is the wrong file.
    Returns a one-line report for the training log.
    """
    own = module.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise InputError(f"{path}: no tensor matches the {type(module).__name__} backbone (wrong file?)")
    module.load_state_dict(matched, strict=False)
    skipped = sorted(set(state) - set(matched))
    missing = sorted(set(own) - set(matched))
    return (f"loaded {len(matched)} tensors from {path}; skipped {len(skipped)} {skipped[:4]}; "
            f"kept {len(missing)} initialised {missing[:4]}")


def load_weights_file(module: nn.Module, path: str | Path, key: str) -> str:
    """Load a local state-dict file into `module`, keeping only matching tensors (load_matching)."""
    return load_matching(module, read_weights_file(path, key), path)


def cat_collate(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Items are (images (k,3,H,W) uint8, labels (k,)); a batch is their concatenation."""
    images, labels = zip(*batch)
    return torch.cat(images), torch.cat(labels)


def pool_face(pool, j: int, crop: FaceCrop | None, rng: np.random.Generator | None = None) -> np.ndarray:
    """Face j of a pool as the detector sees it, (1, S, S, 3): as stored in the pool, or cut from
    the stored crop the pool keeps (`pool.geometry`) by `crop`, drawn with `rng` in training."""
    if getattr(pool, "geometry", None) is None or crop is None:
        return pool.crops[j : j + 1]
    return crop.faces(pool.crops[j : j + 1], {k: v[j : j + 1] for k, v in pool.geometry.items()}, rng)


class PoolFaces(Dataset):
    """Every face of a pool once, in order (validation)."""

    images_per_item = 1

    def __init__(self, pool, crop: FaceCrop | None = None):
        self.pool, self.crop = pool, crop

    def __len__(self) -> int:
        return len(self.pool)

    def __getitem__(self, i: int):
        return to_tensor(pool_face(self.pool, i, self.crop)), torch.tensor([int(self.pool.labels[i])])


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

    def __init__(self, pool, seed: int, balanced: bool = True, augment: Augmenter | None = None, crop: FaceCrop | None = None):
        self.pool, self.seed, self.augment, self.crop = pool, seed, augment, crop
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
        crops = pool_face(self.pool, j, self.crop, np.random.default_rng([self.seed, i]))
        if self.augment:
            crops = self.augment(crops[0], np.random.SeedSequence([self.seed, i]).generate_state(1)[0])[None]
        return to_tensor(crops), torch.tensor([int(self.pool.labels[j])])


class Detector(Configurable, nn.Module):
    """Base class: a binary real/fake classifier of face crops.

    Subclasses set `defaults` (the paper's settings; the config block
    overrides them) and implement `forward`, `loss` and `proba`. The split
    keeps the interface open for models that are not plain classifiers
    (capsules, the two-branch sequence model): the training loop only calls
    `preprocess`, `forward`, `loss`, `proba`, the data hooks (`pool_rows`,
    `train_dataset`, `val_dataset`) and `prepare`; scoring calls `score_records`.
    """

    name: ClassVar[str] = ""
    #: the paper's settings; a subclass states only what differs from its parent's
    defaults: ClassVar[dict[str, Any]] = {
        "pretrained": True,
        "input_size": 224,
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "optimizer": {"name": "adam", "base": "sgd", "lr": 1.0e-3, "betas": [0.9, 0.999],
                      "momentum": 0.0, "weight_decay": 0.0, "rho": 0.05},
        "lr_schedule": {"name": "constant", "decay_start": 0.75},
        "epochs": 10,
        "batch_size": 64,
        "frames_per_video": 100,
        "val_frames_per_video": 32,
        "balanced": True,
        "augment": [],
        "crop": {"box": "face", "scale": 1.3, "shape": "square", "jitter": None},
        "selection": "best_val_auc",
    }
    #: schema (or a description) of each setting this class adds; shared ones are in defs.yaml ($defs/detector)
    settings: ClassVar[dict[str, Any]] = {}
    #: labels of the training faces the method reads (SBI: reals only)
    train_labels: ClassVar[tuple[int, ...]] = (0, 1)

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        self.cfg = cfg
        self.input_size = int(cfg["input_size"])
        self.face_crop = FaceCrop(cfg.get("crop") or {}, self.input_size, f"detectors.{self.name}.crop")
        self.weights_report = ""
        # mean/std on the 0..255 scale: x_norm = (x - 255 mean) / (255 std)
        self.register_buffer("_mean", torch.tensor(cfg["mean"], dtype=torch.float32).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("_std", torch.tensor(cfg["std"], dtype=torch.float32).view(1, 3, 1, 1) * 255, persistent=False)

    # -- model -------------------------------------------------------------
    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 NCHW at input_size -> normalised float NCHW on the model's device.
        Float images on the 0..255 scale (adversarial examples) are normalised the same way."""
        if images.shape[-1] != self.input_size or images.shape[-2] != self.input_size:
            raise ValueError(f"{self.name}: expected {self.input_size}px faces, got {tuple(images.shape)}")
        images = images.to(self._mean.device, non_blocking=True)
        images = (images.float() - self._mean) / self._std
        if self.compute["channels_last"] and images.dim() == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    # -- how it computes (the `compute` config block): not part of the model -------
    compute: ClassVar[dict[str, Any]] = {"precision": "fp32", "channels_last": False}

    def set_compute(self, cfg: dict | None) -> "Detector":
        """bf16 autocast and channels-last memory for training and scoring; the
        weights stay float32, so a model saved either way is the same model."""
        cfg = {**Detector.compute, **(cfg or {})}
        if cfg["precision"] not in ("fp32", "bf16"):
            raise InputError(f"config key 'compute.precision': expected fp32 or bf16, got {cfg['precision']!r}")
        self.compute = cfg
        if cfg["channels_last"]:
            self.to(memory_format=torch.channels_last)
        return self

    def autocast(self):
        """The context of every forward pass: bf16 autocast on the model's device, or nothing."""
        if self.compute["precision"] == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self._mean.device.type, dtype=torch.bfloat16)

    def loss(self, output: Any, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def proba(self, output: Any) -> torch.Tensor:
        """Fake probability per face, shape (B,), from the output of forward."""
        raise NotImplementedError

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Fake probability per face of a normalised batch (no_grad is the caller's)."""
        return self.proba(self(x))

    def trainable_parameters(self) -> list:
        """What the optimiser updates: parameters, or param groups (dicts with their own "lr")."""
        return [p for p in self.parameters() if p.requires_grad]

    def prepare(self, train_pool) -> None:
        """Called once before the first epoch of a fresh run (not on resume), with the
        initial weights: a loss that needs statistics of the training data (a
        hypersphere centre) computes them here into buffers, which checkpoints keep."""

    def score_records(self, records: list, window_length: int, batch_size: int, log=print) -> list[tuple[np.ndarray, np.ndarray]]:
        """Scored rows of each video's faces: (frame_index, score) arrays per record.

        Default: one row per face. A sequence model scores windows instead
        (`window_length`: the shard's faces.windows.length, 0 for single
        frames), one row per window. Faces of all records go through the
        network together, so batches are full.
        """
        from dfrobust.detectors.inference import predict_records

        scores = predict_records(self, records, batch_size=batch_size)  # each face as the detector's `crop` cuts it
        split = np.cumsum([r.n_faces for r in records])[:-1]
        return [(r.frame_indices, s) for r, s in zip(records, np.split(scores, split))]

    # -- data --------------------------------------------------------------
    def pool_rows(self, record, window_length: int, k: int) -> np.ndarray:
        """Rows of a video's faces the training (validation) pool keeps, given
        frames_per_video (val_frames_per_video) `k`: k faces spread evenly."""
        return pick_frames(record.n_faces, k)

    @property
    def val_labels(self) -> tuple[int, ...]:
        """Labels of the validation faces the method reads."""
        return (0, 1)

    @property
    def keeps_stored_crops(self) -> bool:
        """Whether the training pool keeps the stored crops (faces cut per sample) rather than
        the detector's fixed faces at its input size."""
        return self.face_crop.per_sample

    def pool_view(self, record, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict | None]:
        """What the training pool keeps of faces `index` of a FaceRecord: (crops, landmarks in
        their pixels, geometry or None). Fixed crops are cut once, at the input size; crops drawn
        per sample keep the stored crop and its boxes (frame pixels) and frame size."""
        geometry = geometry_of(record, index)
        crops, landmarks = np.asarray(record.crops[index]), np.asarray(record.landmarks[index], np.float32)
        if not self.keeps_stored_crops:
            return (self.face_crop.faces(crops, geometry),
                    self.face_crop.landmarks(landmarks, record.crops.shape[1], geometry), None)
        size = [record.meta.get("width") or 0, record.meta.get("height") or 0]
        geometry["frames"] = np.tile(np.asarray(size, np.int64), (len(crops), 1))
        return crops, landmarks, geometry

    def view_faces(self, record) -> np.ndarray:
        """(n, input_size, input_size, 3) uint8: a FaceRecord's faces as the detector scores them."""
        return self.face_crop.faces(record.crops, geometry_of(record))

    def train_dataset(self, pool, seed: int) -> Dataset:
        """One epoch of training items; `seed` is the epoch's own seed."""
        return BalancedFaces(pool, seed, balanced=bool(self.cfg.get("balanced", True)),
                             augment=Augmenter(self.cfg.get("augment"), f"detectors.{self.name}.augment"),
                             crop=self.face_crop)

    def val_dataset(self, pool, seed: int) -> Dataset:
        """The fixed validation set (same every epoch); `seed` is the run's validation seed."""
        return PoolFaces(pool, self.face_crop)


class TimmClassifier(Detector):
    """A timm image classifier with a 2-class head and cross-entropy loss."""

    defaults = {"drop_rate": 0.0, "drop_path_rate": 0.0}

    def __init__(self, cfg: dict[str, Any]):
        super().__init__(cfg)
        import timm

        pretrained = cfg["pretrained"]
        kwargs = {"num_classes": 2, "drop_rate": float(cfg.get("drop_rate", 0.0))}
        if cfg.get("drop_path_rate"):
            kwargs["drop_path_rate"] = float(cfg["drop_path_rate"])
        self.net = timm.create_model(cfg["backbone"], pretrained=pretrained is True, **kwargs)
        head = self.net.get_classifier()
        if isinstance(head, nn.Linear):
            # PyTorch's default init of a new head, as the FF++ and SBI codes had
            # (timm's EfficientNet init gives a 2-class head logits in the tens)
            head.reset_parameters()
        if isinstance(pretrained, str):
            self.weights_report = load_weights_file(self.net, pretrained, f"detectors.{self.name}.pretrained")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def loss(self, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(output, labels)

    def proba(self, output: torch.Tensor) -> torch.Tensor:
        return output.softmax(dim=1)[:, 1]
