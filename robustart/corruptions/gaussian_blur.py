"""Gaussian blur."""

from __future__ import annotations

from torch import Tensor

from robustart.corruptions.base import CORRUPTIONS, Bound, Corruption, Generators
from robustart.corruptions.kernels import gaussian_blur


@CORRUPTIONS.register("gaussian_blur")
class GaussianBlur(Corruption):
    """Gaussian blur of standard deviation σ (pixels, spatial), "nearest" borders, truncated
    at 4σ, as ``skimage.filters.gaussian`` in the reference. Deterministic."""

    name = "gaussian_blur"
    category = "extra"
    pixel_lengths = True
    parameter_bounds = (Bound("sigma", 0.0, open_low=True, per_side=4),)
    imagenet = (1, 2, 3, 4, 6)
    cifar = (0.4, 0.6, 0.7, 0.8, 1.0)

    batched_generators = True  # deterministic: no draws

    def apply(self, images: Tensor, param: float, scale: float, generator: Generators) -> Tensor:
        return gaussian_blur(images, param * scale)
