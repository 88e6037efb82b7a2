"""Blurring adversarial training with generators (Wang, Guo & Zuo, TIP 2022):
a ResNet generator (dfrobust.training.generator) outputs a 1/sigma map per
face, and is trained to maximise the detector's loss on its pixel-wise
blurred faces while the detector minimises L(x) + L(G(x)) (Eq. 7); the two
are updated alternately, generator first.

    gen_bat       one generator for every face
    two_gen_bat   one for real faces, one for fakes (the paper's best variant)
    combined_at   two_gen_bat's blurred faces, then an additive FGSM step on them

As in the authors' code: the detector is in eval mode during the generator
steps, the detector trains on the blurred faces of the generator's last
forward pass (before its update), each generator takes 3 steps per detector
step (the README's training command, --g_per_d 3; the argparse default is 1),
generators use RAdam at lr 2e-3 and weight decay 5e-4 (the authors' one
weight-decay setting), and their learning rate follows the detector's
schedule (x0.1 when the detector's drops). The generator's loss is minus the
detector's batch loss on its blurred faces. No sigma bound by default (the
paper's; the authors' generators clamp sigma <= 1: `sigma_max: 1`). The
generators and their optimisers are the procedure's state: a checkpoint
resumes them; only the detector is saved as the model.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from dfrobust.training.blur import pixel_blur
from dfrobust.training.generator import BlurGenerator
from dfrobust.training.optim import build_optimizer
from dfrobust.training.procedures.adversarial import KERNEL_SIZE, SIGMA_MAX, Adversarial, detector_loss, fgsm
from dfrobust.training.procedures.base import register


class GeneratorBAT(Adversarial):
    """Blurring adversaries made by generators; `roles` says which faces each generator blurs."""

    defaults = {
        "kernel_size": 9,
        "sigma_max": None,
        "generator_width": 64,
        "generator_blocks": 3,
        "generator_steps": 3,
        "generator_optimizer": {"name": "radam", "lr": 2.0e-3, "betas": [0.9, 0.999], "weight_decay": 5.0e-4},
    }
    settings = {
        "kernel_size": KERNEL_SIZE,
        "sigma_max": SIGMA_MAX,
        "generator_width": {"type": "integer", "minimum": 1,
                            "description": "Filters of the generator's first layer (CycleGAN's ngf; 64 there and in the authors' code)."},
        "generator_blocks": {"type": "integer", "minimum": 0,
                             "description": "Residual blocks of the generator (the authors' default 3; CycleGAN uses 6 or 9)."},
        "generator_steps": {"type": "integer", "minimum": 1,
                            "description": "Generator updates per detector update (the authors' g_per_d: 3 in their README's "
                                           "training command)."},
        "generator_optimizer": {"$ref": "#/$defs/optimizer",
                                "description": "Optimiser of each generator; its learning rate follows the detector's schedule."},
    }
    #: generator name -> label of the faces it blurs (None: every face)
    roles: ClassVar[dict[str, int | None]] = {"generator": None}

    def __init__(self, cfg, detector):
        super().__init__(cfg, detector)
        self.generators = {name: BlurGenerator(int(cfg["generator_width"]), int(cfg["generator_blocks"]),
                                               cfg["sigma_max"]).to(self.device) for name in self.roles}
        self.optimizers = {name: build_optimizer(gen.parameters(), cfg["generator_optimizer"],
                                                 f"procedures.{self.name}.generator_optimizer")
                           for name, gen in self.generators.items()}

    def modules(self) -> dict[str, nn.Module]:
        return dict(self.generators)

    def state_dict(self) -> dict:
        return {"generators": {n: g.state_dict() for n, g in self.generators.items()},
                "optimizers": {n: o.state_dict() for n, o in self.optimizers.items()}}

    def load_state_dict(self, state: dict) -> None:
        for name, gen in self.generators.items():
            gen.load_state_dict(state["generators"][name])
            self.optimizers[name].load_state_dict(state["optimizers"][name])

    def step(self, optimizer, images, labels, where):
        group = optimizer.param_groups[0]
        factor = group["lr"] / group.get("initial_lr", group["lr"])
        for opt in self.optimizers.values():
            for g in opt.param_groups:
                g["lr"] = float(self.cfg["generator_optimizer"]["lr"]) * factor
        return super().step(optimizer, images, labels, where)

    def generator_step(self, name: str, images: torch.Tensor, labels: torch.Tensor, where: str) -> torch.Tensor:
        """Update generator `name` to maximise the detector's loss on its blurred faces (Eq. 7);
        returns the faces blurred by its last forward pass."""
        gen, opt = self.generators[name], self.optimizers[name]
        params = [p for p in gen.parameters() if p.requires_grad]
        gen.train()
        for _ in range(int(self.cfg["generator_steps"])):
            blurred = pixel_blur(images, gen(images), int(self.cfg["kernel_size"]))
            loss = -detector_loss(self.detector, blurred, labels, f"{where} ({name})")
            for p, g in zip(params, torch.autograd.grad(loss, params)):
                p.grad = g
            opt.step()
            opt.zero_grad(set_to_none=True)
        return blurred.detach()

    def blurred(self, images: torch.Tensor, labels: torch.Tensor, where: str) -> torch.Tensor:
        out = images.clone()  # a face no generator is for (no such label) stays clean
        for name, label in self.roles.items():
            if label is None:
                out = self.generator_step(name, images, labels, where)
                continue
            idx = (labels == label).nonzero().squeeze(1)
            if len(idx):
                out[idx] = self.generator_step(name, images[idx], labels[idx], where)
        return out

    def adversarial(self, images, labels, where):
        return self.blurred(images, labels, where)


@register("gen_bat")
class GenBAT(GeneratorBAT):
    """Gen-BAT: one ResNet generator makes a 1/sigma map per face, trained to maximise the detector's loss (Eq. 7)."""


@register("two_gen_bat")
class TwoGenBAT(GeneratorBAT):
    """Two-Gen-BAT: Gen-BAT with one generator for the real faces and one for the fakes."""

    roles = {"generator_real": 0, "generator_fake": 1}


@register("combined_at")
class CombinedAT(TwoGenBAT):
    """Combined AT: Two-Gen-BAT's blurred faces, then an additive FGSM step on them."""

    defaults = {"epsilon": 0.5}
    settings = {"epsilon": {"type": "number", "minimum": 0,
                            "description": "FGSM step in grey levels (0..255 scale) on the blurred faces (as grad_aat)."}}

    def adversarial(self, images, labels, where):
        return fgsm(self.detector, self.blurred(images, labels, where), labels, float(self.cfg["epsilon"]), where)
