"""Additive Gaussian noise."""

from __future__ import annotations

import torch
from torch import Tensor

from robustart.corruptions.base import CORRUPTIONS, Bound, Corruption, Generators, draw_per_image


@CORRUPTIONS.register("gaussian_noise")
class GaussianNoise(Corruption):
    """``x + N(0, σ²)`` independently per pixel and channel. σ is not spatial.

    Example:
        >>> import torch
        >>> out = GaussianNoise()(torch.rand(2, 3, 32, 32), severity=5)
    """

    name = "gaussian_noise"
    category = "noise"
    parameter_bounds = (Bound("sigma", 0.0),)
    imagenet = (0.08, 0.12, 0.18, 0.26, 0.38)
    cifar = (0.04, 0.06, 0.08, 0.09, 0.10)
    batched_generators = True

    def apply(self, images: Tensor, param: float, scale: float, generator: Generators) -> Tensor:
        noise = draw_per_image(
            lambda shape, g: torch.randn(
                shape, generator=g, device=images.device, dtype=images.dtype
            ),
            images.shape,
            generator,
        )
        return noise.mul_(param).add_(images)  # images + σ · noise, without temporaries
