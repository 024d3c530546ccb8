"""Brightness: the HSV value channel is raised."""

from __future__ import annotations

from torch import Tensor

from robustart.corruptions.base import (
    CORRUPTIONS,
    Bound,
    Corruption,
    Generators,
    map_image_chunks,
)
from robustart.corruptions.color import add_hsv_value

__all__ = ["Brightness", "add_hsv_value"]


@CORRUPTIONS.register("brightness")
class Brightness(Corruption):
    """HSV value ``V += c`` (the reference's brightness; not an additive RGB shift).

    Images with one channel are treated as their own value channel.
    """

    name = "brightness"
    category = "weather"
    parameter_bounds = (Bound("delta"),)
    imagenet = (0.1, 0.2, 0.3, 0.4, 0.5)
    cifar = (0.05, 0.1, 0.15, 0.2, 0.3)

    batched_generators = True  # deterministic: no draws

    def apply(self, images: Tensor, param: float, scale: float, generator: Generators) -> Tensor:
        return map_image_chunks(lambda chunk: add_hsv_value(chunk, param), images)
