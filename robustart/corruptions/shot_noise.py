"""Poisson (shot) noise."""

from __future__ import annotations

import torch
from torch import Tensor

from robustart.corruptions.base import CORRUPTIONS, Bound, Corruption
from robustart.corruptions.sampling import scaled_poisson


@CORRUPTIONS.register("shot_noise")
class ShotNoise(Corruption):
    """``Poisson(x · λ) / λ`` per pixel and channel: fewer photons (smaller λ) → more noise.

    The counts come from :func:`~robustart.corruptions.sampling.scaled_poisson` (exact, by
    table inversion), faster than ``torch.poisson`` on the CPU; fastest for 8-bit images
    (values ``k / 255``), whose rates lie on the tables' grid.
    """

    name = "shot_noise"
    category = "noise"
    parameter_bounds = (Bound("rate", 0.0, open_low=True),)
    imagenet = (60, 25, 12, 5, 3)
    cifar = (500, 250, 100, 75, 50)

    def apply(
        self, images: Tensor, param: float, scale: float, generator: torch.Generator | None
    ) -> Tensor:
        return scaled_poisson(images, float(param), generator).div_(param)
