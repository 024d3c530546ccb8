"""Fog: a plasma-fractal haze added to the image."""

from __future__ import annotations

import torch
from torch import Tensor

from robustart.corruptions.base import (
    CORRUPTIONS,
    MAX_LEVEL,
    Bound,
    Corruption,
    Generators,
    per_image_generators,
)
from robustart.corruptions.fractal import next_power_of_two, plasma_fractal

#: Plasma-map pixels generated at once (2 MiB of float32).
MAP_PIXELS_PER_CHUNK = 1 << 19


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
    #: The tables' strengths are at most 3; beyond 1000 float16 haze overflows (NaN images).
    parameter_bounds = (
        Bound("strength", 0.0, MAX_LEVEL),
        Bound("wibble_decay", 1.0, open_low=True),
    )
    imagenet = ((1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4))
    cifar = ((0.2, 3), (0.5, 3), (0.75, 2.5), (1.0, 2), (1.5, 1.75))

    batched_generators = True  # the plasma maps draw from generator i for image i

    def apply(
        self,
        images: Tensor,
        param: tuple[float, float],
        scale: float,
        generator: Generators,
    ) -> Tensor:
        strength, wibble_decay = param
        n, _, h, w = images.shape
        size = next_power_of_two(max(h, w))
        generators = per_image_generators(generator, n)
        out = torch.empty_like(images)
        # a few images at a time: the maps' buffers stay small, cached and reused
        step = max(1, MAP_PIXELS_PER_CHUNK // size**2)
        for first in range(0, n, step):
            chunk = images[first : first + step]
            source = generator if generators is None else generators[first : first + step]
            haze = plasma_fractal(len(chunk), size, wibble_decay, source, images.device)
            haze = haze[:, None, :h, :w].to(images.dtype).mul_(strength)
            peak = chunk.amax(dim=(1, 2, 3), keepdim=True)
            fogged = torch.add(haze, chunk, out=out[first : first + step])
            fogged.mul_(peak).div_(peak + strength)
        return out
