"""The procedure interface, its registry, and the plain training step."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from dfrobust.core.configurable import Configurable, Registry
from dfrobust.detectors.base import Detector

PROCEDURES = Registry("training procedure", "procedures")
register = PROCEDURES.register


class TrainingDiverged(RuntimeError):
    """The loss (or a validation score) became NaN or infinite."""


class Procedure(Configurable):
    """One training step on a batch, and any state of its own.

    The loop calls `step` once per batch with the detector in train mode.
    State the procedure trains besides the detector (a generator, its
    optimiser) goes in `modules` / `state_dict` so a checkpoint restores it;
    only the detector is saved as the model and scored.
    """

    name: ClassVar[str] = ""

    def __init__(self, cfg: dict[str, Any], detector: Detector):
        self.cfg, self.detector = cfg, detector

    def modules(self) -> dict[str, nn.Module]:
        """Trainable modules of the procedure itself (moved to the detector's device)."""
        return {}

    def state_dict(self) -> dict:
        """Everything a resumed run needs to continue the procedure exactly."""
        return {name: module.state_dict() for name, module in self.modules().items()}

    def load_state_dict(self, state: dict) -> None:
        for name, module in self.modules().items():
            module.load_state_dict(state[name])

    def loss(self, x: torch.Tensor, y: torch.Tensor, where: str) -> torch.Tensor:
        """The detector's loss on a normalised batch; a non-finite one stops training."""
        loss = self.detector.loss(self.detector(x), y)
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"{self.detector.name}: training loss is {loss.item()} at {where}")
        return loss

    def step(self, optimizer: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor, where: str) -> float:
        """One update from a batch of uint8 faces (NCHW); returns the batch loss."""
        raise NotImplementedError


@register("plain")
class Plain(Procedure):
    """The detector's own loss, one optimiser step per batch (the closure serves SAM's two passes)."""

    def step(self, optimizer, images, labels, where):
        x = self.detector.preprocess(images)
        y = labels.to(x.device, non_blocking=True)

        def closure() -> torch.Tensor:
            optimizer.zero_grad(set_to_none=True)
            loss = self.loss(x, y, where)
            loss.backward()
            return loss

        return float(optimizer.step(closure).detach())


def build_procedure(cfg: dict | None, detector: Detector) -> Procedure:
    """The procedure a model row names (`{"name": ..., settings...}`; None: plain)."""
    cfg = dict(cfg or {"name": "plain"})
    name = cfg.pop("name", "plain")
    procedure = PROCEDURES.get(name)(PROCEDURES.resolve(name, cfg), detector)
    for module in procedure.modules().values():
        module.to(next(detector.parameters()).device)
    return procedure
