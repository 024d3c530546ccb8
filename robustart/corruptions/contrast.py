"""Contrast reduction towards each channel's mean."""

from __future__ import annotations

from torch import Tensor

from robustart.corruptions.base import CORRUPTIONS, Bound, Corruption, Generators


@CORRUPTIONS.register("contrast")
class Contrast(Corruption):
    """``(x − m) · c + m`` with ``m`` the per-image, per-channel spatial mean (as the reference;
    kornia's contrast uses a grey mean instead). Smaller ``c`` is stronger."""

    name = "contrast"
    category = "digital"
    parameter_bounds = (Bound("factor", 0.0),)
    imagenet = (0.4, 0.3, 0.2, 0.1, 0.05)
    cifar = (0.75, 0.5, 0.4, 0.3, 0.15)

    batched_generators = True  # deterministic: no draws

    def apply(self, images: Tensor, param: float, scale: float, generator: Generators) -> Tensor:
        means = images.mean(dim=(2, 3), keepdim=True)
        return (images - means).mul_(param).add_(means)
