"""Sharpness-Aware Minimisation (Foret et al., ICLR 2021), as SBI trains with it.

Each step evaluates the gradient twice: at w, to find the ascent direction
e = rho g / ||g||, and at w + e, whose gradient the base optimiser (SGD for
SBI) then applies at w. As in SBI's code, batch-norm statistics are updated
by both passes.
"""

from __future__ import annotations

from typing import Callable

import torch


class SAM(torch.optim.Optimizer):
    def __init__(self, params, base_optimizer: type[torch.optim.Optimizer] = torch.optim.SGD, rho: float = 0.05, **kwargs):
        if rho < 0:
            raise ValueError(f"SAM: rho must be >= 0, got {rho}")
        super().__init__(params, dict(rho=rho, **kwargs))
        self.base_optimizer = base_optimizer(self.param_groups, **kwargs)
        # one list of groups, so learning-rate schedulers reach the base optimiser
        self.param_groups = self.base_optimizer.param_groups

    @torch.no_grad()
    def first_step(self) -> None:
        """Move to w + e(w), remembering e."""
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        if not grads:
            return
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        for group in self.param_groups:
            scale = group["rho"] / (norm + 1e-12)
            for p in group["params"]:
                if p.grad is None:
                    continue
                e = p.grad * scale.to(p)
                p.add_(e)
                self.state[p]["e_w"] = e

    @torch.no_grad()
    def second_step(self) -> None:
        """Back to w, then the base optimiser's update with the gradient taken at w + e."""
        for group in self.param_groups:
            for p in group["params"]:
                if "e_w" in self.state[p]:
                    p.sub_(self.state[p].pop("e_w"))
        self.base_optimizer.step()

    def step(self, closure: Callable[[], torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        """`closure` zeroes the gradients, computes the loss and back-propagates;
        it runs twice. Returns the loss at w."""
        if closure is None:
            raise ValueError("SAM needs a closure (it evaluates the gradient twice per step)")
        closure = torch.enable_grad()(closure)
        loss = closure()
        self.first_step()
        closure()
        self.second_step()
        return loss

    def state_dict(self) -> dict:
        # the momentum buffers live in the base optimiser
        return {"base": self.base_optimizer.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.base_optimizer.load_state_dict(state_dict["base"])
        # loading replaces the base optimiser's group list: share it again
        self.param_groups = self.base_optimizer.param_groups
