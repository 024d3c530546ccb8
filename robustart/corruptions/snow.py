"""Snow: motion-blurred flakes over a brightened, greyed image."""

from __future__ import annotations

import torch
from torch import Tensor

from robustart.corruptions.base import (
    CORRUPTIONS,
    MAX_LEVEL,
    Bound,
    Corruption,
    map_image_chunks,
    random_normal,
    random_uniform,
)
from robustart.corruptions.color import to_gray
from robustart.corruptions.geometry import clipped_zoom
from robustart.corruptions.kernels import motion_blur


def snow_layer(
    count: int,
    height: int,
    width: int,
    mean: float,
    std: float,
    zoom: float,
    threshold: float,
    generator: torch.Generator | None,
    device: torch.device | str,
) -> Tensor:
    """The reference's still snow layer: N(mean, std²) noise zoomed into (bigger flakes),
    values below ``threshold`` set to 0, clipped to [0, 1] and truncated to 8 bits.

    Returns:
        Tensor (count, 1, height, width) in [0, 1].
    """
    noise = random_normal((count, 1, height, width), mean, std, generator, device)
    flakes = clipped_zoom(noise, zoom) if zoom > 1 else noise
    flakes = flakes.masked_fill_(flakes < threshold, 0.0).clamp_(0.0, 1.0)
    return flakes.mul_(255.0).floor_().div_(255.0)


def falling_snow(layer: Tensor, radius: int, sigma: float, angles: Tensor) -> Tensor:
    """Motion-blur a snow layer (count, 1, H, W) at per-layer ``angles`` (degrees), rounded to
    8 bits as the reference's PNG round trip through ImageMagick."""
    return motion_blur(layer, radius, sigma, angles).mul_(255.0).round_().div_(255.0)


def add_snow(images: Tensor, snow: Tensor, blend: float) -> Tensor:
    """Blend ``images`` (N, C, H, W) towards ``max(x, 1.5 · grey(x) + 0.5)`` with weight
    ``1 − blend``, then add the snow layer (N, 1, H, W) and its 180° rotation. Not clamped.
    A few images at a time on the CPU (:func:`map_image_chunks`)."""

    def blend_and_add(x: Tensor, layer: Tensor) -> Tensor:
        brightened = torch.maximum(x, to_gray(x).mul(1.5).add_(0.5)).mul_(1 - blend)
        # the reference's sums in its order, on two image-sized buffers
        return x.mul(blend).add_(brightened).add_(layer).add_(layer.flip(-2, -1))

    return map_image_chunks(blend_and_add, images, snow)


@CORRUPTIONS.register("snow")
class Snow(Corruption):
    """Reference snow with parameters (mean, std, zoom, threshold, blur radius, blur σ, blend).

    A snow layer (:func:`snow_layer`) is motion-blurred at an angle drawn per image from
    U(−135°, −45°) and added, with its 180° rotation, to the image blended towards a brightened
    grey version. Spatial: the zoom (flake size; at least 1 after scaling), the blur radius
    (rounded) and σ.
    """

    name = "snow"
    category = "weather"
    parameter_bounds = (
        # noise levels (at most 0.67 in the tables); far larger ones overflowed to NaN
        Bound("mean", -MAX_LEVEL, MAX_LEVEL),
        Bound("std", 0.0, MAX_LEVEL),
        Bound("zoom", 0.0, open_low=True, per_side=1),
        Bound("threshold"),
        Bound("radius", 0.0, per_side=4),
        Bound("sigma", 0.01, per_side=4),
        Bound("blend", 0.0, 1.0),
    )
    imagenet = (
        (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
        (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
        (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
        (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
        (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
    )
    cifar = (
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    )

    def apply(
        self, images: Tensor, param: tuple, scale: float, generator: torch.Generator | None
    ) -> Tensor:
        mean, std, zoom, threshold, radius, sigma, blend = param
        n, _, h, w = images.shape
        layer = snow_layer(
            n, h, w, mean, std, max(zoom * scale, 1.0), threshold, generator, images.device
        )
        angles = random_uniform((n,), -135.0, -45.0, generator, images.device)
        snow = falling_snow(layer, max(round(radius * scale), 1), sigma * scale, angles)
        return add_snow(images, snow.to(images.dtype), blend)
