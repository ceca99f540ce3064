"""Exponential moving average of weights, with warmup (the EMA of a few steps is mostly the init otherwise)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Keeps `shadow`, an averaged copy of `model`.

    decay_t = min(decay, (1 + step) / (10 + step)): the standard warmup, so early checkpoints are usable.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999):
        self.decay = decay
        self.step = 0
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.step += 1
        d = min(self.decay, (1 + self.step) / (10 + self.step))
        torch._foreach_lerp_(list(self.shadow.parameters()), [p.detach() for p in model.parameters()], 1 - d)
        for s, b in zip(self.shadow.buffers(), model.buffers()):
            s.copy_(b)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "step": self.step, "shadow": self.shadow.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.decay = state["decay"]
        self.step = state["step"]
        self.shadow.load_state_dict(state["shadow"])
