"""Spatter: water drops (liquid) or mud splashes occluding the image."""

from __future__ import annotations

import torch
from torch import Tensor

from robustart.corruptions.base import (
    CORRUPTIONS,
    MAX_LEVEL,
    Bound,
    Corruption,
    Generators,
    random_normal,
)
from robustart.corruptions.color import match_channels
from robustart.corruptions.imgproc import (
    box_blur_uint8,
    canny_edges,
    distance_to_edges,
    equalize_histogram,
    filter_uint8,
)
from robustart.corruptions.kernels import gaussian_blur

#: Pale turquoise water and brown mud (RGB / 255), as in the reference.
WATER_COLOR = (175 / 255, 238 / 255, 238 / 255)
MUD_COLOR = (63 / 255, 42 / 255, 20 / 255)
#: The reference's emboss kernel that shades the drops.
EMBOSS = ((-2.0, -1.0, 0.0), (-1.0, 1.0, 1.0), (0.0, 1.0, 2.0))
#: Distances to a drop's edge are capped at this many pixels (at the table's image size).
EDGE_DISTANCE_CAP = 20.0


def liquid_layer(
    count: int,
    height: int,
    width: int,
    mean: float,
    std: float,
    sigma: float,
    threshold: float,
    generator: Generators,
    device: torch.device | str,
) -> Tensor:
    """N(mean, std²) noise blurred with σ ("nearest" border), zeroed below ``threshold``.

    ``generator``: one for all layers or one per layer (see
    :func:`~robustart.corruptions.base.draw_per_image`).

    Returns:
        Tensor (count, 1, height, width): the reference's ``liquid_layer``.
    """
    noise = random_normal((count, 1, height, width), mean, std, generator, device)
    blurred = gaussian_blur(noise, sigma)
    return torch.where(blurred < threshold, torch.zeros_like(blurred), blurred)


def water_drops(layer: Tensor, intensity: float, distance_cap: float = EDGE_DISTANCE_CAP) -> Tensor:
    """Shaded water-drop opacity from a liquid layer, as the reference's liquid branch.

    The 8-bit layer's Canny edges (50, 150) give each pixel its distance to a drop edge
    (capped), which is box-blurred, histogram-equalised, embossed and box-blurred again, then
    multiplied by the layer and normalised per image to a maximum of ``intensity``.

    Args:
        layer: Liquid layer (N, 1, H, W) (see :func:`liquid_layer`).
        intensity: Maximum opacity.
        distance_cap: Cap of the edge distance in pixels.

    Returns:
        Opacity (N, 1, H, W) in [0, intensity].
    """
    levels = torch.floor(layer.clamp(0.0, 1.0) * 255.0)  # astype(uint8); no wrap-around here
    edges = canny_edges(levels, 50, 150)
    distance = distance_to_edges(edges, distance_cap)
    shade = equalize_histogram(box_blur_uint8(distance, round_result=False))
    emboss = torch.tensor(EMBOSS, device=layer.device)
    shade = box_blur_uint8(filter_uint8(shade, emboss))
    opacity = levels * shade
    peak = opacity.amax(dim=(2, 3), keepdim=True).clamp_min(1e-12)
    return opacity / peak * intensity


def mud_mask(layer: Tensor, threshold: float, sigma: float) -> Tensor:
    """Mud opacity: the layer's drops (> threshold) blurred with σ, kept where ≥ 0.8."""
    drops = (layer > threshold).to(layer.dtype)
    mask = gaussian_blur(drops, sigma)
    return torch.where(mask < 0.8, torch.zeros_like(mask), mask)


def color_image(color: tuple[float, float, float], like: Tensor) -> Tensor:
    """A constant colour (1, 3, 1, 1) on ``like``'s device and dtype, matched to its channels."""
    rgb = torch.tensor(color, device=like.device, dtype=like.dtype).view(1, 3, 1, 1)
    return match_channels(rgb, like.shape[1])


@CORRUPTIONS.register("spatter")
class Spatter(Corruption):
    """Reference spatter with parameters (mean, std, σ, threshold, intensity, mud).

    A liquid layer (:func:`liquid_layer`) is drawn per image. Liquid (``mud == 0``): pale
    turquoise is added with the shaded opacity of :func:`water_drops` (``intensity`` is its
    maximum). Mud (``mud == 1``): the image is replaced by brown where the drop mask, blurred
    with σ = ``intensity``, is at least 0.8. Spatial: the layer's σ, the mud blur σ and the
    edge-distance cap (20 px).
    """

    name = "spatter"
    category = "extra"
    parameter_bounds = (
        # noise levels (at most 0.67 in the tables); far larger ones overflowed to NaN
        Bound("mean", -MAX_LEVEL, MAX_LEVEL),
        Bound("std", 0.0, MAX_LEVEL),
        Bound("sigma", 0.0, per_side=4),
        Bound("threshold"),
        Bound("intensity", 0.0, per_side=4),
        Bound("mud", 0, 1, integer=True),
    )
    imagenet = (
        (0.65, 0.3, 4, 0.69, 0.6, 0),
        (0.65, 0.3, 3, 0.68, 0.6, 0),
        (0.65, 0.3, 2, 0.68, 0.5, 0),
        (0.65, 0.3, 1, 0.65, 1.5, 1),
        (0.67, 0.4, 1, 0.65, 1.5, 1),
    )
    cifar = (
        (0.62, 0.1, 0.7, 0.7, 0.5, 0),
        (0.65, 0.1, 0.8, 0.7, 0.5, 0),
        (0.65, 0.3, 1, 0.69, 0.5, 0),
        (0.65, 0.1, 0.7, 0.69, 0.6, 1),
        (0.65, 0.1, 0.5, 0.68, 0.6, 1),
    )

    batched_generators = True

    def apply(self, images: Tensor, param: tuple, scale: float, generator: Generators) -> Tensor:
        mean, std, sigma, threshold, intensity, mud = param
        n, _, h, w = images.shape
        layer = liquid_layer(
            n, h, w, mean, std, sigma * scale, threshold, generator, images.device
        ).to(images.dtype)
        if mud:
            mask = mud_mask(layer, threshold, intensity * scale)
            return images * (1 - mask) + color_image(MUD_COLOR, images) * mask
        opacity = water_drops(layer, intensity, EDGE_DISTANCE_CAP * scale)
        return images + opacity * color_image(WATER_COLOR, images)
