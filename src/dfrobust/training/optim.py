"""Optimisers and learning-rate schedules from a config block (a detector's,
or a training procedure's for its own networks)."""

from __future__ import annotations

import torch

from dfrobust.core.errors import InputError
from dfrobust.training.sam import SAM

_BASE = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "radam": torch.optim.RAdam}


def _kwargs(name: str, cfg: dict) -> dict:
    if name in ("adam", "radam"):
        kwargs = {"lr": float(cfg["lr"]), "betas": tuple(float(b) for b in cfg["betas"]),
                  "weight_decay": float(cfg["weight_decay"])}
        if name == "radam":
            # as the reference RAdam code (Liu et al.) that the BAT authors trained with:
            # weight decay shrinks the weights directly (w -= lr * wd * w), it is not added to the gradient
            kwargs["decoupled_weight_decay"] = True
        return kwargs
    return {"lr": float(cfg["lr"]), "momentum": float(cfg["momentum"]), "weight_decay": float(cfg["weight_decay"])}


def build_optimizer(params, cfg: dict, where: str = "optimizer") -> torch.optim.Optimizer:
    """adam | radam | sgd | sam (over `base`: sgd or adam)."""
    name = cfg["name"]
    if name in _BASE:
        return _BASE[name](params, **_kwargs(name, cfg))
    if name == "sam":
        base = cfg["base"]
        if base not in ("sgd", "adam"):
            raise InputError(f"config key '{where}.base': expected sgd or adam, got {base!r}")
        return SAM(params, _BASE[base], rho=float(cfg["rho"]), **_kwargs(base, cfg))
    raise InputError(f"config key '{where}.name': expected adam, radam, sgd or sam, got {name!r}")


class LinearDecay:
    """Learning-rate factor after `epoch` scheduler steps: 1 until
    int(decay_start * epochs), then linearly down towards 0 at `epochs`
    (SBI's LinearDecayLR). A class, not a lambda, so its state pickles."""

    def __init__(self, epochs: int, decay_start: float):
        self.epochs = int(epochs)
        self.start = int(self.epochs * float(decay_start))

    def __call__(self, epoch: int) -> float:
        if epoch <= self.start or self.epochs <= self.start:
            return 1.0
        return 1.0 - (epoch - self.start) / (self.epochs - self.start)


class StepDecay:
    """Factor gamma ** (epoch // step_epochs): epochs 1..step_epochs at the
    base rate, the next step_epochs at gamma times it, ... (the BAT paper:
    x0.1 every 10 epochs)."""

    def __init__(self, step_epochs: int, gamma: float):
        self.step_epochs, self.gamma = int(step_epochs), float(gamma)

    def __call__(self, epoch: int) -> float:
        return self.gamma ** (epoch // self.step_epochs)


class Constant:
    def __call__(self, epoch: int) -> float:
        return 1.0


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: dict, epochs: int, where: str = "lr_schedule"):
    """A per-epoch LambdaLR: constant | linear_decay | step; or plateau (stepped with the validation loss)."""
    name = cfg["name"]
    if name == "plateau":
        return plateau(optimizer, cfg, where)
    if name == "constant":
        factor = Constant()
    elif name == "linear_decay":
        factor = LinearDecay(epochs, cfg["decay_start"])
    elif name == "step":
        if int(cfg["step_epochs"]) < 1 or float(cfg["gamma"]) <= 0:
            raise InputError(f"config key '{where}': step_epochs must be >= 1 and gamma > 0")
        factor = StepDecay(cfg["step_epochs"], cfg["gamma"])
    else:
        raise InputError(f"config key '{where}.name': expected constant, linear_decay, step or plateau, got {name!r}")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def plateau(optimizer: torch.optim.Optimizer, cfg: dict, where: str = "lr_schedule"):
    """Every group's lr x `factor` when the validation loss has not improved for
    more than `patience` epochs, at most `max_reductions` times (a floor at
    lr x factor^max_reductions per group; eps 0 so small group lrs still drop)."""
    missing = [k for k in ("factor", "patience", "max_reductions") if k not in cfg]
    if missing:
        raise InputError(f"config key '{where}': the plateau schedule needs {', '.join(missing)}")
    factor = float(cfg["factor"])
    floors = [group["lr"] * factor ** int(cfg["max_reductions"]) for group in optimizer.param_groups]
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=factor, patience=int(cfg["patience"]),
                                                      min_lr=floors, eps=0.0)


def steps_on_val_loss(scheduler) -> bool:
    """The loop steps this scheduler after validation, with the validation loss."""
    return isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
