"""Fog: a plasma-fractal haze added to the image."""

from __future__ import annotations

import torch
from torch import Tensor

from robustart.corruptions.base import CORRUPTIONS, Corruption
from robustart.corruptions.fractal import next_power_of_two, plasma_fractal


@CORRUPTIONS.register("fog")
class Fog(Corruption):
    """``(x + s · plasma) · max(x) / (max(x) + s)`` with a per-image plasma fractal map.

    ``s`` is the fog strength and the wibble decay sets the map's roughness (see
    :func:`~robustart.corruptions.fractal.plasma_fractal`). As in the reference, the map is
    generated at the next power of two ≥ the longer image side (256 for 224 px, 32 for 32 px)
    and cropped to the image; ``max(x)`` is each image's maximum over pixels and channels.
    No spatial parameters: the map always spans the image.
    """

    name = "fog"
    category = "weather"
    imagenet = ((1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4))
    cifar = ((0.2, 3), (0.5, 3), (0.75, 2.5), (1.0, 2), (1.5, 1.75))

    def apply(
        self,
        images: Tensor,
        param: tuple[float, float],
        scale: float,
        generator: torch.Generator | None,
    ) -> Tensor:
        strength, wibble_decay = param
        n, _, h, w = images.shape
        size = next_power_of_two(max(h, w))
        haze = plasma_fractal(n, size, wibble_decay, generator, images.device)[:, None, :h, :w]
        peak = images.amax(dim=(1, 2, 3), keepdim=True)
        return (images + strength * haze.to(images.dtype)) * peak / (peak + strength)
