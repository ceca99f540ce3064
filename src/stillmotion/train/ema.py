"""Exponential moving average of weights, with warmup (the EMA of a few steps is mostly the init otherwise)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Keeps `shadow`, an averaged copy of `model`.

    decay_t = min(decay, (1 + step) / (warmup + step)): the standard warmup (warmup = 10), so early checkpoints are
    usable. Until decay_t reaches `decay` this is a power-function EMA (Karras et al. 2024, EDM2) whose weights grow
    like step^(warmup - 2): warmup 10 averages mostly the last ~10 % of the steps, a smaller warmup a longer
    stretch. A short run never reaches `decay` (0.995 needs ~1800 steps at warmup 10), so there `warmup` alone
    sets how long the average is.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: float = 10.0):
        if warmup <= 1:
            raise ValueError(f"EMA warmup must be > 1 (got {warmup}): at 1 the average never leaves the initial "
                             "weights, below 1 it extrapolates past the model's")
        self.decay, self.warmup = decay, warmup
        self.step = 0
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.step += 1
        d = min(self.decay, (1 + self.step) / (self.warmup + self.step))
        torch._foreach_lerp_(list(self.shadow.parameters()), [p.detach() for p in model.parameters()], 1 - d)
        for s, b in zip(self.shadow.buffers(), model.buffers()):
            s.copy_(b)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "warmup": self.warmup, "step": self.step, "shadow": self.shadow.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.decay = state["decay"]
        self.warmup = state.get("warmup", 10.0)  # states saved before the warmup was an option used 10
        self.step = state["step"]
        self.shadow.load_state_dict(state["shadow"])
