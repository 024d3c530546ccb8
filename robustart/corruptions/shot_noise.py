"""Poisson (shot) noise."""

from __future__ import annotations

import torch
from torch import Tensor

from robustart.corruptions.base import CORRUPTIONS, Corruption


@CORRUPTIONS.register("shot_noise")
class ShotNoise(Corruption):
    """``Poisson(x · λ) / λ`` per pixel and channel: fewer photons (smaller λ) → more noise."""

    name = "shot_noise"
    category = "noise"
    imagenet = (60, 25, 12, 5, 3)
    cifar = (500, 250, 100, 75, 50)

    def apply(
        self, images: Tensor, param: float, scale: float, generator: torch.Generator | None
    ) -> Tensor:
        rate = images.float() * param
        return torch.poisson(rate, generator=generator) / param
