"""What every detector shares: its input normalisation, the fake-probability
interface, and weight loading.

A detector is an `nn.Module` built from its resolved config block: its
network, its loss and its paper's defaults. It sees faces as uint8 NCHW
tensors at `input_size` and normalises them itself (`preprocess`). What it
reads (which faces, how an epoch is formed, what is made on the fly, how a
video is scored) is its data class (`data_class`, dfrobust.detectors.data).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from dfrobust.core.config import block
from dfrobust.core.configurable import Configurable
from dfrobust.core.errors import InputError
from dfrobust.core.settings import Settings
from dfrobust.detectors.data import FaceData


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


class Detector(Configurable, nn.Module):
    """Base class: a binary real/fake classifier of face crops.

    Subclasses set `defaults` (the paper's settings; the config block
    overrides them) and implement `forward`, `loss` and `proba`. The split
    keeps the interface open for models that are not plain classifiers
    (capsules, the two-branch sequence model): training and scoring call
    `preprocess`, `forward`, `loss`, `proba`; everything about the data is
    `data_class`'s.
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
    #: what the detector reads: its training faces and epochs, and how it scores a video
    data_class: ClassVar[type[FaceData]] = FaceData

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        self.cfg = cfg
        self.input_size = int(cfg["input_size"])
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
        if self.compute.channels_last and images.dim() == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    # -- how it computes (the `compute` config block): not part of the model -------
    #: until set_compute: the block's defaults (float32, NCHW)
    compute: ClassVar[Settings] = block("compute", {})

    def set_compute(self, cfg: dict | Settings | None) -> "Detector":
        """bf16 autocast and channels-last memory for training and scoring (the `compute`
        block; None: its defaults); the weights stay float32, so a model saved either way
        is the same model."""
        self.compute = block("compute", cfg)
        if self.compute.channels_last:
            self.to(memory_format=torch.channels_last)
        return self

    def autocast(self):
        """The context of every forward pass: bf16 autocast on the model's device, or nothing."""
        if self.compute.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self._mean.device.type, dtype=torch.bfloat16)

    # -- hooks of the training loop: per-face data besides images and labels, epochs ------
    #: per-face data of the batch being trained on or evaluated (set by batch_extras)
    _extras: dict[str, torch.Tensor] = {}

    @contextlib.contextmanager
    def batch_extras(self, extras: dict[str, torch.Tensor] | None):
        """Inside: the per-face data the batch's items carry besides images and labels (e.g. FFD's
        manipulation masks), for `loss` to read with `batch_extra`. The training loop sets them
        around each procedure step and validation batch; procedures never see them, so a
        detector whose loss needs them works under every procedure unchanged."""
        previous = self._extras
        self._extras = dict(extras or {})
        try:
            yield
        finally:
            self._extras = previous

    def batch_extra(self, key: str) -> torch.Tensor | None:
        """One of the current batch's extras (see batch_extras), None when the batch has none."""
        return self._extras[key] if key in self._extras else None

    def start_epoch(self, epoch: int) -> None:
        """Called by the training loop before epoch `epoch` (1-based) trains, also on the first
        epoch after a resume: a setting that changes per epoch is set here. Nothing by default."""

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


class TimmClassifier(Detector):
    """A timm image classifier with a 2-class head and cross-entropy loss."""

    defaults = {"drop_rate": 0.0, "drop_path_rate": 0.0}

    def __init__(self, cfg: dict[str, Any]):
        super().__init__(cfg)
        import timm

        pretrained = cfg["pretrained"]
        kwargs = {"num_classes": 2, "drop_rate": float(cfg["drop_rate"])}
        if cfg["drop_path_rate"]:
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
