"""Exponential moving average (EMA) of a model's weights: timm's ``ModelEmaV3``."""

from __future__ import annotations

import torch
from timm.utils.model_ema import ModelEmaV3
from torch import Tensor, nn

from robustart.errors import ConfigError


class ModelEma(ModelEmaV3):
    """Keeps ``ema = decay · ema + (1 − decay) · weights`` after every optimiser step.

    timm's :class:`~timm.utils.model_ema.ModelEmaV3` does the update (parameters interpolated
    with ``torch._foreach_lerp_``, buffers such as BatchNorm statistics copied:
    ``exclude_buffers=True``). Two things are robustart's: the decay ramps up as
    ``min(decay, (1 + n) / (10 + n))`` over the first updates (TensorFlow's
    ``ExponentialMovingAverage(num_updates=n)``, which timm's warm-up formulas do not offer) so
    that early averages are not dominated by the random initialisation, and ``n`` is a buffer,
    so that it is saved in, and restored from, checkpoints with the averaged weights (as a
    submodule of the task: ``ema.module.*``, ``ema.num_updates``).

    Args:
        model: The model to track (copied; the copy never requires gradients).
        decay: Decay per update, e.g. 0.999.

    Example:
        >>> ema = ModelEma(nn.Linear(2, 2), decay=0.99)
        >>> ema.update(nn.Linear(2, 2))
        >>> int(ema.num_updates)
        1
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        if not 0 < decay < 1:
            raise ConfigError(f"ema_decay must be in (0, 1), got {decay}")
        super().__init__(model, decay=decay, exclude_buffers=True, stochastic_rounding=False)
        self.module.requires_grad_(False)
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    def get_decay(self, step: int | None = None) -> float:
        """The decay of the next update: ``min(decay, (1 + n) / (10 + n))`` after n updates."""
        n = int(self.num_updates)
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int | None = None) -> None:
        """Average ``model``'s parameters in and copy its buffers."""
        super().update(model, step)
        self.num_updates += 1

    def train(self, mode: bool = True) -> ModelEma:
        """The averaged copy always stays in eval mode."""
        super().train(mode)
        self.module.eval()
        return self

    def forward(self, images: Tensor) -> Tensor:
        return self.module(images)
