"""Poisson (shot) noise."""

from __future__ import annotations

import torch
from torch import Tensor

from robustart.corruptions.base import CORRUPTIONS, Bound, Corruption
from robustart.corruptions.sampling import MAX_RATE, scaled_poisson


@CORRUPTIONS.register("shot_noise")
class ShotNoise(Corruption):
    """``Poisson(x · λ) / λ`` per pixel and channel: fewer photons (smaller λ) → more noise.

    The counts come from :func:`~robustart.corruptions.sampling.scaled_poisson` (exact, by
    table inversion), faster than ``torch.poisson`` on the CPU; fastest for 8-bit images
    (values ``k / 255``), whose rates lie on the tables' grid. Rates above about 1.6e4 are
    drawn by ``torch.poisson``; rates above :data:`~robustart.corruptions.sampling.MAX_RATE`
    (1e12, where the noise is below float32's resolution) are refused.
    """

    name = "shot_noise"
    category = "noise"
    parameter_bounds = (Bound("rate", 0.0, MAX_RATE, open_low=True),)
    imagenet = (60, 25, 12, 5, 3)
    cifar = (500, 250, 100, 75, 50)

    def apply(
        self, images: Tensor, param: float, scale: float, generator: torch.Generator | None
    ) -> Tensor:
        rate = float(param)
        if 2 * rate > torch.finfo(images.dtype).max:  # counts beyond float16's range
            return scaled_poisson(images.float(), rate, generator).div_(rate)
        return scaled_poisson(images, rate, generator).div_(param)
