"""Adversarial training with one-gradient-step adversaries (Wang, Guo & Zuo,
"Deepfake Forensics via an Adversarial Game", TIP 2022): each batch is
trained on clean + lambda x adversarial (Eq. 3), the adversarial copy of
every face made by one gradient step that increases the detector's loss:

    grad_aat  additive:   x + eps sign(grad_x L)                      (FGSM, Eq. 1)
    grad_sat  spatial:    x warped by a flow field, one signed step on
                          L - tau L_flow from a random start         (Xiao et al.)
    grad_bat  blurring:   x blurred pixel-wise, 1/sigma = const + eps sign(grad L)  (Eq. 6)

As in the authors' code, adversaries are crafted with the detector in eval
mode (no dropout, frozen batch-norm statistics) and the detector then takes
one step on the concatenated batch (clean and adversarial faces share its
batch-norm statistics). The loss is (L_clean + lambda L_adv) / (1 + lambda):
Eq. 3 scaled to the plain loss's range; lambda = 1 is the authors' mean over
the concatenated batch. Images are float on the 0..255 scale until the
detector normalises them, so every epsilon is in pixel units whatever the
detector's normalisation.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import torch

from dfrobust.detectors.base import Detector
from dfrobust.training.blur import pixel_blur
from dfrobust.training.flow import flow_smoothness, warp
from dfrobust.training.procedures.base import Procedure, TrainingDiverged, register

KERNEL_SIZE = {"type": "integer", "minimum": 1, "not": {"multipleOf": 2}, "description": "Side k of the k x k pixel-wise Gaussian kernel (odd)."}
SIGMA_MAX = {"type": "number", "exclusiveMinimum": 0,
             "description": "Largest sigma (pixels at the detector's input size) the adversary may use: 1/sigma >= 1/sigma_max."}


@contextmanager
def attacking(detector: Detector):
    """The detector in eval mode while an adversary queries it; its mode afterwards as before."""
    was_training = detector.training
    detector.eval()
    try:
        yield
    finally:
        detector.train(was_training)


def detector_loss(detector: Detector, images: torch.Tensor, labels: torch.Tensor, where: str) -> torch.Tensor:
    """The detector's (batch-mean) loss on float faces on the 0..255 scale."""
    loss = detector.loss(detector(detector.preprocess(images)), labels)
    if not torch.isfinite(loss):
        raise TrainingDiverged(f"{detector.name}: adversary's loss is {loss.item()} at {where}")
    return loss


def fgsm(detector: Detector, images: torch.Tensor, labels: torch.Tensor, epsilon: float, where: str) -> torch.Tensor:
    """x + eps sign(grad_x L), clipped to 0..255 (Eq. 1)."""
    x = images.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(detector_loss(detector, x, labels, where), x)
    return (images + epsilon * grad.sign()).clamp(0, 255)


def _halves(output: Any, n: int):
    """The clean and adversarial parts of a forward pass on the concatenated batch."""
    if isinstance(output, torch.Tensor):
        return output[:n], output[n:]
    if isinstance(output, (tuple, list)):
        parts = [_halves(o, n) for o in output]
        return type(output)(p[0] for p in parts), type(output)(p[1] for p in parts)
    raise TypeError(f"cannot split a detector output of type {type(output).__name__}")


class Adversarial(Procedure):
    """Clean plus adversarial loss on each batch; subclasses make the adversarial copies."""

    defaults = {"adv_weight": 1.0}
    settings = {"adv_weight": {"type": "number", "minimum": 0,
                               "description": "lambda of Eq. 3: weight of the adversarial term against the clean one "
                                              "(loss = (clean + lambda adversarial) / (1 + lambda))."}}

    @property
    def device(self) -> torch.device:
        return next(self.detector.parameters()).device

    def adversarial(self, images: torch.Tensor, labels: torch.Tensor, where: str) -> torch.Tensor:
        """Adversarial copies of float faces (0..255), detector in eval mode."""
        raise NotImplementedError

    def joint_loss(self, inputs: torch.Tensor, labels: torch.Tensor, where: str) -> torch.Tensor:
        """(L(clean) + lambda L(adversarial)) / (1 + lambda) from one forward pass on both halves."""
        clean, adv = _halves(self.detector(inputs), len(labels))
        lam = float(self.cfg["adv_weight"])
        loss = (self.detector.loss(clean, labels) + lam * self.detector.loss(adv, labels)) / (1.0 + lam)
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"{self.detector.name}: training loss is {loss.item()} at {where}")
        return loss

    def step(self, optimizer, images, labels, where):
        x = images.to(self.device, non_blocking=True).float()
        y = labels.to(self.device, non_blocking=True)
        with attacking(self.detector):
            x_adv = self.adversarial(x, y, where).detach()
        inputs = self.detector.preprocess(torch.cat([x, x_adv]))

        def closure() -> torch.Tensor:
            optimizer.zero_grad(set_to_none=True)
            loss = self.joint_loss(inputs, y, where)
            loss.backward()
            return loss

        return float(optimizer.step(closure).detach())


@register("grad_aat")
class GradAAT(Adversarial):
    """Grad-AAT: additive adversarial training, one FGSM step x + eps sign(grad_x L) (Eq. 1)."""

    defaults = {"epsilon": 0.5}
    settings = {"epsilon": {"type": "number", "minimum": 0,
                            "description": "FGSM step in grey levels (0..255 scale); 0.5 is the authors' 1/255 on "
                                           "their [-1, 1] inputs."}}

    def adversarial(self, images, labels, where):
        return fgsm(self.detector, images, labels, float(self.cfg["epsilon"]), where)


@register("grad_sat")
class GradSAT(Adversarial):
    """Grad-SAT: spatially transformed adversarial training, a flow field from one signed gradient step on
    L - tau L_flow (Xiao et al.'s smoothness penalty) from a random start."""

    defaults = {"epsilon": 0.5, "smoothness": 0.05}
    settings = {
        "epsilon": {"type": "number", "minimum": 0,
                    "description": "Largest displacement in pixels (at the detector's input size): the flow starts "
                                   "uniform in [-eps, eps], takes one signed step of eps and is clipped to [-eps, eps]."},
        "smoothness": {"type": "number", "minimum": 0,
                       "description": "tau, weight of the flow smoothness penalty (per-pixel mean) against the "
                                      "detector's loss (Xiao et al.'s 0.05)."},
    }

    def adversarial(self, images, labels, where):
        eps, tau = float(self.cfg["epsilon"]), float(self.cfg["smoothness"])
        b, _, h, w = images.shape
        # random start: at a zero flow the smoothness penalty has no gradient, so one step could not feel it
        start = (torch.rand(b, 2, h, w, device=images.device) * 2 - 1) * eps
        flow = start.clone().requires_grad_(True)
        objective = detector_loss(self.detector, warp(images, flow), labels, where) - tau * flow_smoothness(flow).mean()
        (grad,) = torch.autograd.grad(objective, flow)
        return warp(images, (start + eps * grad.sign()).clamp(-eps, eps))


@register("grad_bat")
class GradBAT(Adversarial):
    """Grad-BAT: blurring adversarial training, a constant 1/sigma map moved by one signed gradient-ascent step (Eq. 6)."""

    defaults = {"epsilon": 0.5, "sigma_init": 1.0, "sigma_max": 2.0, "kernel_size": 9}
    settings = {
        "epsilon": {"type": "number", "minimum": 0,
                    "description": "Step on 1/sigma: each pixel's 1/sigma moves by +-eps (signed gradient ascent "
                                   "on the loss), then is kept >= 1/sigma_max."},
        "sigma_init": {"type": "number", "exclusiveMinimum": 0, "description": "sigma of the constant starting map."},
        "sigma_max": SIGMA_MAX,
        "kernel_size": KERNEL_SIZE,
    }

    def adversarial(self, images, labels, where):
        k = int(self.cfg["kernel_size"])
        b, _, h, w = images.shape
        inv_sigma = torch.full((b, 1, h, w), 1.0 / float(self.cfg["sigma_init"]), device=images.device, requires_grad=True)
        (grad,) = torch.autograd.grad(detector_loss(self.detector, pixel_blur(images, inv_sigma, k), labels, where), inv_sigma)
        stepped = (inv_sigma.detach() + float(self.cfg["epsilon"]) * grad.sign()).clamp(min=1.0 / float(self.cfg["sigma_max"]))
        return pixel_blur(images, stepped, k)
