"""Zoom blur: the average of the image and copies zoomed into its centre."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from robustart.corruptions import base
from robustart.corruptions.base import (
    CORRUPTIONS,
    Bound,
    Corruption,
    Generators,
)
from robustart.corruptions.geometry import clipped_zoom
from robustart.errors import ConfigError

#: Most zoomed copies for explicit parameters (the tables use up to 31; each costs a resize of
#: the images, and a step of 1e-9 asked for a billion).
MAX_ZOOMS = 1000


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
        Bound("start", 1.0, per_side=1),  # zooms below 1 would zoom out, beyond the image
        Bound("stop", 0.0, open_low=True, per_side=1),
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

    def check_parameter(
        self, param: Any, size: tuple[int, int] | None = None, scale: float = 1.0
    ) -> None:
        """The bounds, ``start < stop`` (else the range of zooms is empty and the images
        come back unchanged) and at most :data:`MAX_ZOOMS` zooms. Zoom factors are at most
        the longer image side (a larger one enlarges a single pixel)."""
        super().check_parameter(param, size, scale)
        start, stop, step = param
        if not start < stop:
            raise ConfigError(
                f"corruption 'zoom_blur': start must be below stop (the zooms are "
                f"start, start + step, ... < stop), got start {start}, stop {stop}"
            )
        zooms = math.ceil((float(stop) - float(start)) / float(step))
        if zooms > MAX_ZOOMS:
            raise ConfigError(
                f"corruption 'zoom_blur': at most {MAX_ZOOMS} zooms (start, start + step, ... "
                f"< stop), got {zooms:g} from start {start}, stop {stop}, step {step}; use a "
                f"step of at least (stop - start) / {MAX_ZOOMS}"
            )

    def apply(
        self,
        images: Tensor,
        param: tuple[float, float, float],
        scale: float,
        generator: Generators,
    ) -> Tensor:
        factors = zoom_factors(*param)
        n, c = images.shape[:2]
        if images.device.type != "cpu" or n * c < FOLD_LANES:
            # Channels-last: PyTorch's bilinear kernel is about twice as fast on it (per pixel,
            # all channels at once) and gives bit-equal values; one conversion each way.
            planes = images.contiguous(memory_format=torch.channels_last)
            return _average_of_zooms(planes, factors).contiguous()
        out = torch.empty_like(images, memory_format=torch.contiguous_format)
        for part in _balanced_chunks(n, max(FOLD_LANES, base.CHUNK_BYTES // images[0].nbytes)):
            out[part] = _folded_average_of_zooms(images[part], factors)
        return out


#: Channels that PyTorch's CPU kernels process per vector at most (AVX-512: 16 floats, AVX2:
#: 8). On the CPU, zoom blur folds the images of a chunk into the channels of one image, padded
#: with zero planes to a multiple of this, so that every plane goes through the vectorised
#: loop: the scalar loop for the leftover channels rounds differently (2.4e-7), and an image
#: would otherwise get other values in another batch.
FOLD_LANES = 16


def _average_of_zooms(planes: Tensor, factors: list[float]) -> Tensor:
    """``(x + Σ_z clipped_zoom(x, z)) / (1 + #z)`` of ``planes`` (N, C, H, W), in its layout."""
    total = planes.clone()
    for zoom in factors:
        total += clipped_zoom(planes, zoom)
    total /= len(factors) + 1
    return total


def _folded_average_of_zooms(images: Tensor, factors: list[float]) -> Tensor:
    """:func:`_average_of_zooms` of ``images`` (n, C, H, W) computed as the n·C channels of
    one channels-last image (zero planes up to a multiple of :data:`FOLD_LANES`).

    PyTorch's bilinear kernel on channels-last images vectorises over the channels of a
    pixel: three channels take its scalar loop, n·C of them its vector loop, about 1.6× (224
    px, 16 images) to 2.6× (32 px, 85 images) faster over the zooms of a chunk.
    """
    n, c, h, w = images.shape
    planes = n * c
    padded = -(-planes // FOLD_LANES) * FOLD_LANES
    pixels = images.new_zeros(1, h, w, padded)  # channels-last storage of (1, padded, h, w)
    pixels[0, :, :, :planes] = images.reshape(planes, h, w).permute(1, 2, 0)
    total = _average_of_zooms(pixels.permute(0, 3, 1, 2), factors)
    return total[0, :planes].reshape(n, c, h, w)


def _balanced_chunks(count: int, most: int) -> list[slice]:
    """``count`` items in the fewest chunks of at most ``most`` items, of equal sizes (± 1),
    so that no chunk is left with a few items (each chunk here gets at least ``most / 2``)."""
    chunks = -(-count // most)
    bounds = [round(i * count / chunks) for i in range(chunks + 1)]
    return [slice(a, b) for a, b in itertools.pairwise(bounds)]
