"""Zoom blur: the average of the image and copies zoomed into its centre."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from robustart.corruptions.base import (
    CORRUPTIONS,
    Bound,
    Corruption,
    Generators,
    map_image_chunks,
)
from robustart.corruptions.geometry import clipped_zoom
from robustart.errors import ConfigError


def zoom_factors(start: float, stop: float, step: float) -> list[float]:
    """``numpy.arange(start, stop, step)`` as the reference builds its zoom factors."""
    return [float(z) for z in np.arange(start, stop, step)]


@CORRUPTIONS.register("zoom_blur")
class ZoomBlur(Corruption):
    """``(x + Σ_z zoom(x, z)) / (1 + #z)`` over ``z = arange(start, stop, step)``. Deterministic.

    Each zoomed copy is the reference's ``clipped_zoom``: the central ``ceil(side / z)`` pixels
    enlarged bilinearly (end points aligned, as ``scipy.ndimage.zoom``) and trimmed to the
    image size around the centre. The zoom factors are ratios, not spatial.
    """

    name = "zoom_blur"
    category = "blur"
    pixel_lengths = True
    parameter_bounds = (
        Bound("start", 0.0, open_low=True),
        Bound("stop", 0.0, open_low=True),
        Bound("step", 0.0, open_low=True),
    )
    imagenet = (
        (1, 1.11, 0.01),
        (1, 1.16, 0.01),
        (1, 1.21, 0.02),
        (1, 1.26, 0.02),
        (1, 1.31, 0.03),
    )
    cifar = (
        (1, 1.06, 0.01),
        (1, 1.11, 0.01),
        (1, 1.16, 0.01),
        (1, 1.21, 0.01),
        (1, 1.26, 0.01),
    )

    batched_generators = True  # deterministic: no draws

    def check_parameter(self, param: Any) -> None:
        """The bounds, and ``start < stop`` (else the range of zooms is empty and the images
        come back unchanged)."""
        super().check_parameter(param)
        start, stop, _ = param
        if not start < stop:
            raise ConfigError(
                f"corruption 'zoom_blur': start must be below stop (the zooms are "
                f"start, start + step, ... < stop), got start {start}, stop {stop}"
            )

    def apply(
        self,
        images: Tensor,
        param: tuple[float, float, float],
        scale: float,
        generator: Generators,
    ) -> Tensor:
        factors = zoom_factors(*param)

        def average_of_zooms(chunk: Tensor) -> Tensor:
            # Channels-last: PyTorch's bilinear kernel is about twice as fast on it (per pixel,
            # all channels at once) and gives bit-equal values; one conversion each way.
            chunk = chunk.contiguous(memory_format=torch.channels_last)
            total = chunk.clone()
            for zoom in factors:
                total += clipped_zoom(chunk, zoom)
            total /= len(factors) + 1
            return total.contiguous()

        return map_image_chunks(average_of_zooms, images)
