"""Speckle (multiplicative Gaussian) noise."""

from __future__ import annotations

from torch import Tensor

from robustart.corruptions.base import CORRUPTIONS, Bound, Corruption, Generators, random_normal


@CORRUPTIONS.register("speckle_noise")
class SpeckleNoise(Corruption):
    """``x + x · N(0, σ²)`` independently per pixel and channel: noise grows with brightness.

    σ is not spatial.

    Example:
        >>> import torch
        >>> out = SpeckleNoise()(torch.rand(2, 3, 32, 32), severity=5)
    """

    name = "speckle_noise"
    category = "extra"
    parameter_bounds = (Bound("sigma", 0.0),)
    imagenet = (0.15, 0.2, 0.35, 0.45, 0.6)
    cifar = (0.06, 0.1, 0.12, 0.16, 0.2)
    batched_generators = True

    def apply(self, images: Tensor, param: float, scale: float, generator: Generators) -> Tensor:
        noise = random_normal(images.shape, 0.0, param, generator, images.device, images.dtype)
        return images + images * noise
