"""Gradient regularisation with Perturbation Injection Modules, and DualFlat
(Guan et al., "Improving generalization of deepfake detectors by imposing
gradient regularization", IEEE TIFS 2024).

The paper makes a detector less sensitive to the colour-texture statistics of
its shallow features by adding r·‖∇(μ,σ) L‖ to the loss; to first order that
is L(f′) - L(f), where f′ are the shallow features with their statistics
moved a step r up the loss gradient, so no Hessian is needed.

A PIM (Eq. 6-7) sits after a shallow block. It normalises the block's output
f (B, C, H, W) per instance and channel over the spatial positions and
de-normalises it with (σ + Δσ) and (μ + Δμ):

    f′ = (σ + Δσ) (f − μ) / σ + μ + Δμ,   σ = sqrt(var + 1e-5),

computed as f + Δσ (f − μ)/σ + Δμ, which is f itself, bit for bit, at Δ = 0.
Δμ, Δσ hold one value per channel, shared across the batch.

One step (Algorithm 1):
  1. forward with Δ = 0 and backward: g1 = ∇θ L, and ∇Δ L of every PIM;
  2. Δ = r ∇Δ L / ‖∇Δ L‖ (all PIMs' Δ as one vector, as SAM's weight step);
  3. forward with Δ and backward: g2 = ∇θ L(f′);
  4. the optimiser steps with (1 − α) g1 + α g2.
DualFlat (Eq. 14, procedure `dualflat`) adds SAM's term: a third pass at
θ + r′ g1/‖g1‖ (Δ = 0) for g3, and steps with (1 − α − β) g1 + α g2 + β g3.

Choices the paper leaves open, as made here:
- Where the PIMs sit: after every block of the backbone's first stage, the
  one at 1/4 resolution (ConvNeXt `stages.0.blocks`, 3 blocks; ResNet
  `layer1`, 3 bottlenecks; EfficientNet `blocks.1`; legacy Xception `block1`),
  or after the modules named in `layers`.
- All passes of a step see the same dropout and drop-path draws (the random
  state is rewound), so L(f′) − L(f) measures the perturbation only, and the
  random stream advances as in plain training. Batch-norm running statistics
  are those of the clean pass: the perturbed passes must not move what
  inference uses. Hence α = 0 (and β = 0) is plain training, step for step,
  and so is r = 0 (Δ = 0 exactly, so g2 = g1).

Over a SAM optimiser (the `sbi` detector's default) both procedures step with
SAM's base optimiser (its learning rate, momentum and schedule), never SAM's
two-pass closure: the paper perturbs the weights only through DualFlat's β
term (radius r′), and its "Ours" on SBI data is DualFlat 1:0 (Table IX's 1:0
row is Table V's SBI+PIM), i.e. PIM with the plain SGD step of Algorithm 1.
SAM's rho is then unused; the train log says so.

PIMs are forward hooks attached only during a step: the detector, its state
dict, its checkpoints and its saved weights are the plain backbone's, and
scoring never sees them. Nothing of the procedure outlives a step (Δ starts
at 0 each time), so a resumed run needs no state of its own.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
from torch import nn

from dfrobust.core.errors import InputError
from dfrobust.core.runlog import log
from dfrobust.training.procedures.base import Procedure, register
from dfrobust.training.sam import SAM

EPS = 1e-5  # added to the spatial variance before its square root (instance norm's value)

#: where each backbone family's first stage (1/4 resolution) is, by network class name (timm)
FIRST_STAGE = {"ConvNeXt": "net.stages.0.blocks", "ResNet": "net.layer1", "EfficientNet": "net.blocks.1",
               "Xception": "net.block1"}


def inject(f: torch.Tensor, delta_mu: torch.Tensor, delta_sigma: torch.Tensor) -> torch.Tensor:
    """Eq. 6-7: f normalised per instance and channel, de-normalised with σ + Δσ and μ + Δμ."""
    mu = f.mean(dim=(2, 3), keepdim=True)
    sigma = (f.var(dim=(2, 3), keepdim=True, unbiased=False) + EPS).sqrt()
    return f + delta_sigma * ((f - mu) / sigma) + delta_mu


def default_sites(detector: nn.Module, where: str) -> list[str]:
    """Module names after which the PIMs sit: every block of the first stage."""
    kind = type(getattr(detector, "net", None)).__name__
    if kind not in FIRST_STAGE:
        raise InputError(f"config key '{where}': no default PIM places for a {kind} network "
                         f"(known: {', '.join(FIRST_STAGE)}); name the modules")
    container = FIRST_STAGE[kind]
    module = detector.get_submodule(container)
    blocks = [f"{container}.{name}" for name, _ in module.named_children()]
    return blocks if isinstance(module, nn.Sequential) and blocks else [container]


def shift_statistics(f: torch.Tensor, mean: float, variance: float) -> torch.Tensor:
    """Each channel's per-image mean times `mean` and variance times `variance`:
    f' = sqrt(variance) (f - mu) + mean mu (the test-time shift of Guan et al.'s Tables II-III)."""
    mu = f.mean(dim=(2, 3), keepdim=True)
    return variance ** 0.5 * (f - mu) + mean * mu


@contextmanager
def shifted_statistics(detector: nn.Module, perturb: dict, where: str) -> Iterator[None]:
    """Inside, the detector's shallow features have their statistics shifted (`perturb`:
    mean, variance, sites; sites null: the PIM sites, default_sites): a scoring setting, the
    faces are the clean ones."""
    names = list(perturb["sites"] or default_sites(detector, f"{where}.sites"))
    try:
        modules = [detector.get_submodule(name) for name in names]
    except AttributeError as err:
        raise InputError(f"config key '{where}.sites': {err}") from None
    hook = lambda module, inputs, output: shift_statistics(output, float(perturb["mean"]), float(perturb["variance"]))  # noqa: E731
    handles = [module.register_forward_hook(hook) for module in modules]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


class PerturbationInjection:
    """PIMs after some modules of a network, as forward hooks that exist only
    inside `probe()` (Δ = 0, with gradients) and `inject(deltas)`."""

    def __init__(self, network: nn.Module, names: Sequence[str], where: str = "layers"):
        self.names = list(names)
        if not self.names:
            raise InputError(f"config key '{where}': no module to put a PIM after")
        try:
            self.modules = [network.get_submodule(name) for name in self.names]
        except AttributeError as err:
            raise InputError(f"config key '{where}': {err}") from None
        self._deltas: list = []

    def _hook(self, i: int):
        def hook(module, inputs, output):
            if not isinstance(output, torch.Tensor) or output.dim() != 4:
                shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
                raise InputError(f"PIM after {self.names[i]}: expected (B, C, H, W) features, got {shape}")
            if self._deltas[i] is None:
                zero = output.new_zeros((1, output.shape[1], 1, 1))
                self._deltas[i] = (zero.clone().requires_grad_(), zero.requires_grad_())
            return inject(output, *self._deltas[i])

        return hook

    @contextmanager
    def _attached(self, deltas: list) -> Iterator[list]:
        self._deltas = deltas
        handles = [module.register_forward_hook(self._hook(i)) for i, module in enumerate(self.modules)]
        try:
            yield deltas
        finally:
            for handle in handles:
                handle.remove()

    def probe(self):
        """PIMs with Δ = 0 that take gradients: yields [(Δμ, Δσ) per PIM], filled by the forward pass."""
        return self._attached([None] * len(self.modules))

    def inject(self, deltas: list):
        """PIMs with the given [(Δμ, Δσ) per PIM]."""
        return self._attached(list(deltas))

    def ascent(self, probed: list, r: float) -> tuple[list, torch.Tensor]:
        """(Δ = r ∇Δ L / ‖∇Δ L‖ per PIM, ‖∇Δ L‖) from a probed pass after its backward."""
        missing = [name for name, pair in zip(self.names, probed) if pair is None]
        if missing:
            raise InputError(f"PIM after {missing[0]}: the module is not on the forward path of the network")
        grads = [[d.grad if d.grad is not None else torch.zeros_like(d) for d in pair] for pair in probed]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for pair in grads for g in pair]))
        scale = r / (norm + 1e-12)
        return [tuple(g.detach() * scale for g in pair) for pair in grads], norm.detach()


class _Rewind:
    """The random state at creation (CPU, and the device's generator), to replay a pass's draws."""

    def __init__(self, device: torch.device):
        self.device = device
        self.start = self.now()

    def now(self):
        cuda = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        return torch.get_rng_state(), cuda

    def set(self, state) -> None:
        torch.set_rng_state(state[0])
        if state[1] is not None:
            torch.cuda.set_rng_state(state[1], self.device)


@register("pim")
class PIM(Procedure):
    """Gradient regularisation with Perturbation Injection Modules (Guan et al., TIFS 2024): each step also learns from
    shallow features whose per-channel statistics are pushed r along their loss gradient."""

    defaults = {"r": 0.1, "alpha": 1.0, "layers": []}
    settings = {
        "r": {"type": "number", "minimum": 0,
              "description": "Step size of the statistics' perturbation: Δ = r ∇Δ L / ‖∇Δ L‖ over all PIMs."},
        "alpha": {"type": "number", "minimum": 0, "maximum": 1,
                  "description": "Weight of the perturbed-feature gradient: the update is (1 - alpha) g1 + alpha g2."},
        "layers": {"type": "array", "items": {"type": "string"},
                   "description": "Modules of the detector (e.g. net.stages.0.blocks.0) after which PIMs sit; "
                                  "empty - every block of the backbone's first stage (ConvNeXt stages.0, ResNet "
                                  "layer1, EfficientNet blocks.1, Xception block1)."},
    }

    def __init__(self, cfg, detector):
        super().__init__(cfg, detector)
        where = f"procedures.{self.name}.layers"
        self.pims = PerturbationInjection(detector, list(cfg["layers"]) or default_sites(detector, where), where)
        self.alpha, self.r = float(cfg["alpha"]), float(cfg["r"])
        self.beta = 0.0  # the perturbed-weight term: DualFlat's
        optimizer = detector.cfg["optimizer"]
        if optimizer["name"] == "sam":
            log(f"{self.name}: detectors.{detector.name}.optimizer is sam: each step is {self.name}'s, applied by SAM's "
                f"base optimiser ({optimizer['base']}); SAM's rho ({optimizer['rho']}) is not used "
                "(the paper's weight perturbation is dualflat's beta, radius r_prime)")

    def step(self, optimizer, images, labels, where):
        x = self.detector.preprocess(images)
        y = labels.to(x.device, non_blocking=True)
        # Algorithm 1 step 9: one plain optimiser step with the combined gradient (over SAM: its base optimiser,
        # which shares SAM's parameter groups, so the schedule and the checkpointed momentum are the same)
        optimizer = optimizer.base_optimizer if isinstance(optimizer, SAM) else optimizer
        params = [p for group in optimizer.param_groups for p in group["params"]]
        optimizer.zero_grad(set_to_none=True)
        loss = self.gradient(x, y, params, where)
        optimizer.step()
        return float(loss)

    def gradient(self, x: torch.Tensor, y: torch.Tensor, params: list[torch.Tensor], where: str) -> torch.Tensor:
        """Leave the step's gradient in the (zeroed) .grad of `params`; return the clean loss."""
        rewind = _Rewind(x.device)
        with self.pims.probe() as probed:
            loss = self.loss(x, y, where)
            loss.backward()
        if not (self.alpha or self.beta):
            return loss.detach()
        after = rewind.now()
        buffers = [(b, b.detach().clone()) for b in self.detector.buffers()]
        touched = [p for p in params if p.grad is not None]
        if self.beta:  # SAM's ascent, from g1 before it is scaled
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in touched]))
            ascent = [p.grad * (float(self.cfg["r_prime"]) / (norm + 1e-12)) for p in touched]
        torch._foreach_mul_([p.grad for p in touched], 1.0 - self.alpha - self.beta)
        if self.alpha:
            deltas, _ = self.pims.ascent(probed, self.r)
            rewind.set(rewind.start)
            with self.pims.inject(deltas):
                (self.alpha * self.loss(x, y, f"{where} (perturbed features)")).backward()
            _restore(buffers)
        if self.beta:
            with torch.no_grad():
                torch._foreach_add_(touched, ascent)
            rewind.set(rewind.start)
            (self.beta * self.loss(x, y, f"{where} (perturbed weights)")).backward()
            with torch.no_grad():
                torch._foreach_sub_(touched, ascent)
            _restore(buffers)
        rewind.set(after)
        return loss.detach()


@register("dualflat")
class DualFlat(PIM):
    """DualFlat (Guan et al., TIFS 2024, Eq. 14): PIM's perturbed-feature loss and SAM's perturbed-weight loss
    together, (1 - alpha - beta) L + alpha L(f') + beta L(θ + r' ∇θL/‖∇θL‖)."""

    #: the paper's best pair (Tables VIII and IX: 1:0, i.e. PIM); 0.5:0.5 is one row of Table VIII, not the method
    defaults = {"alpha": 1.0, "beta": 0.0, "r_prime": 0.05}
    settings = {
        "alpha": {"type": "number", "minimum": 0, "maximum": 1,
                  "description": "Weight of the perturbed-feature gradient g2: the update is "
                                 "(1 - alpha - beta) g1 + alpha g2 + beta g3."},
        "beta": {"type": "number", "minimum": 0, "maximum": 1,
                 "description": "Weight of the perturbed-weight gradient g3 (alpha + beta <= 1)."},
        "r_prime": {"type": "number", "minimum": 0,
                    "description": "Radius of the weight perturbation θ + r' ∇θL/‖∇θL‖ (SAM's rho; Eq. 14)."},
    }

    def __init__(self, cfg, detector):
        super().__init__(cfg, detector)
        self.beta = float(cfg["beta"])
        if self.alpha + self.beta > 1:
            raise InputError(f"config key 'procedures.{self.name}': alpha + beta = {self.alpha + self.beta:g} > 1 "
                             "(the clean loss would get a negative weight)")


def _restore(buffers: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    with torch.no_grad():
        for buffer, saved in buffers:
            buffer.copy_(saved)
