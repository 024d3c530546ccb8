"""Brightness: the HSV value channel is raised."""

from __future__ import annotations

import torch
from torch import Tensor

from robustart.corruptions.base import CORRUPTIONS, Corruption


def add_hsv_value(images: Tensor, delta: float) -> Tensor:
    """Add ``delta`` to the HSV value of RGB ``images`` (N, 3, H, W), clipping V to [0, 1].

    Converting to HSV, changing V and converting back scales the RGB triple by ``V'/V``
    (hue and saturation fixed), where ``V`` is the largest channel; black pixels (V = 0, so
    S = 0) become grey ``V'``. This computes that directly, without the HSV round trip.
    """
    value = images.amax(dim=1, keepdim=True)
    new_value = (value + delta).clamp(0.0, 1.0)
    ratio = new_value / value.clamp_min(1e-12)
    return torch.where(value > 0, images * ratio, new_value.expand_as(images))


@CORRUPTIONS.register("brightness")
class Brightness(Corruption):
    """HSV value ``V += c`` (the reference's brightness; not an additive RGB shift).

    Images with one channel are treated as their own value channel.
    """

    name = "brightness"
    category = "weather"
    imagenet = (0.1, 0.2, 0.3, 0.4, 0.5)
    cifar = (0.05, 0.1, 0.15, 0.2, 0.3)

    def apply(
        self, images: Tensor, param: float, scale: float, generator: torch.Generator | None
    ) -> Tensor:
        return add_hsv_value(images, param)
