"""Adversarial training with one-gradient-step adversaries (Wang, Guo & Zuo,
"Deepfake Forensics via an Adversarial Game", TIP 2022): each batch is
trained on L(clean) + lambda L(adversarial) (Eq. 3; lambda = 1 is Eq. 7's
sum), the adversarial copy of every face made by one gradient step that
increases the detector's loss:

    grad_aat  additive:   x + eps sign(grad_x L)                          (FGSM, Eq. 1)
    grad_sat  spatial:    x warped by a flow field, one signed step on
                          L - tau L_flow from a random start, |flow| <= eps  (Xiao et al.)
    grad_bat  blurring:   x blurred pixel-wise with sigma_adv = sigma + eps grad_sigma L,
                          sigma a constant map, no sign                     (Eq. 6)

L in a step is each face's own loss (the empirical risk is a sum over faces,
Eq. 3 and 7): a face's step does not depend on the batch it is in. For a
detector whose loss is a batch mean (cross-entropy) that is the batch loss
times the batch size; the signed steps (FGSM, Grad-SAT) do not depend on the
scale, Eq. 6's unsigned step and Grad-SAT's weighting of L against L_flow do.

As in the authors' code, adversaries are crafted with the detector in eval
mode (no dropout, frozen batch-norm statistics) and the detector then takes
one step on the concatenated batch (clean and adversarial faces share its
batch-norm statistics). Images are float on the 0..255 scale until the
detector normalises them, so every epsilon is in pixel units whatever the
detector's normalisation.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import torch

from dfrobust.detectors.base import Detector
from dfrobust.training.blur import inverse_sigma, pixel_blur
from dfrobust.training.flow import flow_smoothness, warp
from dfrobust.training.procedures.base import Procedure, TrainingDiverged, register

KERNEL_SIZE = {"type": "integer", "minimum": 1, "not": {"multipleOf": 2}, "description": "Side k of the k x k pixel-wise Gaussian kernel (odd)."}
SIGMA_MAX = {"type": ["number", "null"], "exclusiveMinimum": 0,
             "description": "Largest sigma (pixels at the detector's input size) the adversary may use; null - no bound "
                            "(the paper's: the kernel is valid for every sigma and its k x k support bounds the blur; "
                            "the authors' generators clamp sigma <= 1)."}


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


def face_losses(detector: Detector, images: torch.Tensor, labels: torch.Tensor, where: str) -> torch.Tensor:
    """The sum of the faces' own losses: the detector's batch loss times the batch size (exact for a
    loss that is a mean over the faces). Its gradient in a face's own variables (pixels, flow, sigma)
    is that face's loss gradient, whatever the batch."""
    return detector_loss(detector, images, labels, where) * len(labels)


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
                                              "(loss = clean + lambda adversarial; 1 is Eq. 7's sum)."}}

    @property
    def device(self) -> torch.device:
        return next(self.detector.parameters()).device

    def adversarial(self, images: torch.Tensor, labels: torch.Tensor, where: str) -> torch.Tensor:
        """Adversarial copies of float faces (0..255), detector in eval mode."""
        raise NotImplementedError

    def joint_loss(self, inputs: torch.Tensor, labels: torch.Tensor, where: str) -> torch.Tensor:
        """L(clean) + lambda L(adversarial) (Eq. 3; Eq. 7 with lambda = 1), each the detector's batch loss,
        from one forward pass on both halves."""
        clean, adv = _halves(self.detector(inputs), len(labels))
        loss = self.detector.loss(clean, labels) + float(self.cfg["adv_weight"]) * self.detector.loss(adv, labels)
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
    L - tau L_flow (Xiao et al.'s smoothness penalty, summed over pixels as theirs) from a random start."""

    defaults = {"epsilon": 0.5, "smoothness": 0.05}
    settings = {
        "epsilon": {"type": "number", "minimum": 0,
                    "description": "Largest displacement in pixels (at the detector's input size): the flow starts "
                                   "uniform in [-eps, eps], takes one signed step of eps and is clipped to [-eps, eps]."},
        "smoothness": {"type": "number", "minimum": 0,
                       "description": "tau, weight of Xiao et al.'s flow smoothness L_flow (a sum over pixels and "
                                      "their 4 neighbours) against the face's loss: Xiao et al.'s 0.05."},
    }

    def flow(self, images: torch.Tensor, labels: torch.Tensor, where: str) -> torch.Tensor:
        """The adversarial flow (B, 2, H, W): clip(start + eps sign(grad_f sum_i [L_i - tau L_flow,i]), -eps, eps)."""
        eps, tau = float(self.cfg["epsilon"]), float(self.cfg["smoothness"])
        b, _, h, w = images.shape
        # random start: at a zero flow the smoothness penalty has no gradient, so one step could not feel it
        start = (torch.rand(b, 2, h, w, device=images.device) * 2 - 1) * eps
        flow = start.clone().requires_grad_(True)
        objective = face_losses(self.detector, warp(images, flow), labels, where) - tau * flow_smoothness(flow).sum()
        (grad,) = torch.autograd.grad(objective, flow)
        return (start + eps * grad.sign()).clamp(-eps, eps)

    def adversarial(self, images, labels, where):
        return warp(images, self.flow(images, labels, where))


@register("grad_bat")
class GradBAT(Adversarial):
    """Grad-BAT: blurring adversarial training, sigma_adv = sigma + eps grad_sigma L from a constant sigma map,
    FGSM without the sign (Eq. 6)."""

    defaults = {"epsilon": 4.5, "sigma_init": 1.0, "sigma_max": None, "kernel_size": 9}
    settings = {
        "epsilon": {"type": "number", "minimum": 0,
                    "description": "eps of Eq. 6: sigma_adv = sigma + eps grad_sigma L, L the face's own loss, sigma in "
                                   "pixels at the detector's input size (4.5: the authors' code's step, EPS 10 on an "
                                   "L2-normalised 3-channel 1/sigma^2 map with a 16-face mean loss at 256 px, "
                                   "carried over to sigma to first order; see docs/reproducing/bat.md)."},
        "sigma_init": {"type": "number", "exclusiveMinimum": 0, "description": "sigma of the constant starting map (the paper's e.g. 1)."},
        "sigma_max": SIGMA_MAX,
        "kernel_size": KERNEL_SIZE,
    }

    def sigma_map(self, images: torch.Tensor, labels: torch.Tensor, where: str) -> torch.Tensor:
        """sigma_adv (B, 1, H, W) of Eq. 6: the constant map plus eps times the gradient of the faces' losses
        on their blurred copies. Any real: a negative sigma is the blur of |sigma| (dfrobust.training.blur)."""
        b, _, h, w = images.shape
        sigma = torch.full((b, 1, h, w), float(self.cfg["sigma_init"]), device=images.device, requires_grad=True)
        blurred = pixel_blur(images, inverse_sigma(sigma), int(self.cfg["kernel_size"]))
        (grad,) = torch.autograd.grad(face_losses(self.detector, blurred, labels, where), sigma)
        return sigma.detach() + float(self.cfg["epsilon"]) * grad

    def adversarial(self, images, labels, where):
        sigma = self.sigma_map(images, labels, where)
        return pixel_blur(images, inverse_sigma(sigma, self.cfg["sigma_max"]), int(self.cfg["kernel_size"]))
