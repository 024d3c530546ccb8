"""Weather and digital sequences: snow blowing, brightness ramping, water spatter drifting."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from robustart.corruptions.color import add_hsv_value
from robustart.corruptions.snow import add_snow, falling_snow, snow_layer
from robustart.corruptions.spatter import WATER_COLOR, color_image, liquid_layer, water_drops
from robustart.perturbations.base import PERTURBATIONS, Perturbation, as_video, repeat_frames


def convolve_rows_same(layer: Tensor, kernel: tuple[float, ...]) -> Tensor:
    """``numpy.convolve(column, kernel, mode="same")`` along every column of (N, 1, H, W),
    zeros outside: the reference's drift of the spatter layer."""
    k = len(kernel)
    weight = torch.tensor(kernel[::-1], device=layer.device, dtype=layer.dtype).view(1, 1, k, 1)
    full = F.conv2d(F.pad(layer, (0, 0, k - 1, k - 1)), weight)  # full convolution
    start = (k - 1) // 2
    return full[..., start : start + layer.shape[-2], :]


@PERTURBATIONS.register("snow")
class SnowSequence(Perturbation):
    """One still snow layer per image (mean, std, zoom, threshold, as the snow corruption),
    motion-blurred (radius, σ) at ``4 i − 150`` degrees in frame i and added with the given
    blend. ImageNet-P: (0.05, 0.3, 3, 0.5, 14, 4, 0.85); CIFAR-10-P: zoom 2, radius 10, σ 2.
    Spatial: zoom, radius, σ."""

    name = "snow"
    imagenet = ((0.05, 0.3, 3.0, 0.5, 14, 4.0, 0.85),)
    cifar = ((0.05, 0.3, 2.0, 0.5, 10, 2.0, 0.85),)

    def frames(
        self, images: Tensor, param: tuple, scale: float, generator: torch.Generator | None
    ) -> Tensor:
        mean, std, zoom, threshold, radius, sigma, blend = param
        n, _, h, w = images.shape
        layer = snow_layer(
            n, h, w, mean, std, max(zoom * scale, 1.0), threshold, generator, images.device
        )
        angles = (torch.arange(31, device=images.device) * 4.0 - 150.0).repeat(n)
        snow = falling_snow(
            repeat_frames(layer, 31), max(round(radius * scale), 1), sigma * scale, angles
        )
        return as_video(add_snow(repeat_frames(images, 31), snow.to(images.dtype), blend), 31)


@PERTURBATIONS.register("brightness")
class BrightnessSequence(Perturbation):
    """HSV value shifted by ``(i − 15) · step``: ImageNet-P step 0.02, CIFAR-10-P 0.015."""

    name = "brightness"
    imagenet = (0.02,)
    cifar = (0.015,)

    def frames(
        self, images: Tensor, param: float, scale: float, generator: torch.Generator | None
    ) -> Tensor:
        deltas = ((torch.arange(31, device=images.device) - 15) * param).repeat(len(images))
        shifted = add_hsv_value(repeat_frames(images, 31), deltas.view(-1, 1, 1, 1))
        return as_video(shifted, 31)


@PERTURBATIONS.register("spatter")
class SpatterSequence(Perturbation):
    """Water spatter (the liquid branch of the spatter corruption) whose layer drifts down:
    after each frame the layer is convolved along columns with the drift kernel. ImageNet-P:
    layer (0.65, 0.27, σ 3.7, threshold 0.69), intensity 0.6, kernel (.05, .1, .15, .7);
    CIFAR-10-P: (0.6, 0.265, σ 1.75, 0.7), 0.6, (.2, .8). σ is spatial."""

    name = "spatter"
    imagenet = ((0.65, 0.27, 3.7, 0.69, 0.6, (0.05, 0.1, 0.15, 0.7)),)
    cifar = ((0.6, 0.265, 1.75, 0.7, 0.6, (0.2, 0.8)),)

    def frames(
        self, images: Tensor, param: tuple, scale: float, generator: torch.Generator | None
    ) -> Tensor:
        mean, std, sigma, threshold, intensity, drift = param
        n, _, h, w = images.shape
        layer = liquid_layer(
            n, h, w, mean, std, sigma * scale, threshold, generator, images.device
        ).to(images.dtype)
        layers = []
        for _ in range(31):
            layers.append(layer)
            layer = convolve_rows_same(layer, drift)
        layers = torch.stack(layers, dim=1).reshape(n * 31, 1, h, w)
        opacity = water_drops(layers, intensity, 20.0 * scale)
        wet = repeat_frames(images, 31) + opacity * color_image(WATER_COLOR, images)
        return as_video(wet, 31)
