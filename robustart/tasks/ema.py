"""Exponential moving average (EMA) of a model's weights."""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn


class ModelEma(nn.Module):
    """Keeps ``ema = decay · ema + (1 − decay) · weights`` after every optimiser step.

    Buffers (BatchNorm statistics) are copied. The effective decay ramps up as
    ``min(decay, (1 + n) / (10 + n))`` over the first updates so that early averages are not
    dominated by the random initialisation. As a submodule of the task it is saved in, and
    restored from, checkpoints.

    Args:
        model: The model to track (copied; the copy never requires gradients).
        decay: Decay per update, e.g. 0.999.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        super().__init__()
        if not 0 < decay < 1:
            raise ValueError(f"ema_decay must be in (0, 1), got {decay}")
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    def train(self, mode: bool = True) -> ModelEma:
        """The averaged copy always stays in eval mode."""
        super().train(mode)
        self.module.eval()
        return self

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        n = int(self.num_updates)
        decay = min(self.decay, (1 + n) / (10 + n))
        ema_params = list(self.module.parameters())
        params = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_params, params, 1.0 - decay)
        for ema_buf, buf in zip(self.module.buffers(), model.buffers()):
            ema_buf.copy_(buf)
        self.num_updates += 1

    def forward(self, images: Tensor) -> Tensor:
        return self.module(images)
