"""Pixelation: box-filtered downscaling, then enlarging back."""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from robustart.corruptions.base import CORRUPTIONS, Bound, Corruption, Generators
from robustart.corruptions.geometry import box_resize_matrix

#: Up to this many pixels per image, the enlargement gathers (see :func:`nearest_enlarge`).
GATHER_PIXELS = 96 * 96


class PixelateAxis(NamedTuple):
    """One axis of pixelation: ``size`` pixels to ``small`` and back.

    Attributes:
        down: PIL's BOX resampling matrix (small × size), float64.
        window: (size,) int64, the output pixel whose box each input pixel falls in; ``small``
            for a pixel in no box (PIL leaves out the rare pixel whose centre is exactly on a
            box edge). ``None`` if a pixel is in two boxes (rarer still): then only ``down``.
        counts: (small,) float64, the number of input pixels in each box.
        up: (size,) int64, the small pixel that PIL's BOX (= NEAREST) enlargement copies.
        torch_nearest: whether ``F.interpolate(mode="nearest-exact")`` picks the same pixels.
    """

    down: Tensor
    window: Tensor | None
    counts: Tensor
    up: Tensor
    torch_nearest: bool


def torch_nearest_exact_indices(in_size: int, out_size: int) -> np.ndarray:
    """The source pixels of PyTorch's ``nearest-exact`` resize (CPU and CUDA kernels):
    ``floorf((j + 0.5) · (float(in) / out))``, with the product rounded to float32."""
    scale = np.float64(np.float32(in_size) / np.float32(out_size))
    product = ((np.arange(out_size) + 0.5) * scale).astype(np.float32)
    return np.minimum(np.floor(product).astype(np.int64), in_size - 1)


@functools.lru_cache(maxsize=64)
def pixelate_axis(size: int, fraction: float) -> PixelateAxis:
    """The :class:`PixelateAxis` of ``size`` pixels reduced to ``int(size · fraction)``."""
    small = max(int(size * fraction), 1)
    down = box_resize_matrix(size, small)
    up = box_resize_matrix(small, size).argmax(dim=1)  # one-hot rows: a pure selection
    inside = down > 0
    boxes = inside.sum(dim=0)
    window = torch.where(boxes > 0, inside.to(torch.int64).argmax(dim=0), small)
    window = window if bool((boxes <= 1).all()) else None
    counts = inside.sum(dim=1).to(torch.float64)
    torch_nearest = bool(np.array_equal(torch_nearest_exact_indices(small, size), up.numpy()))
    return PixelateAxis(down, window, counts, up, torch_nearest)


def box_reduce(images: Tensor, rows: PixelateAxis, cols: PixelateAxis) -> Tensor:
    """PIL's BOX reduction of ``images`` (N, C, H, W) to (N, C, small_h, small_w).

    On the CPU, sums over each box's pixels (``index_add_`` of whole rows, then of columns)
    divided by the box sizes; elsewhere, where ``index_add_`` adds with atomics in a varying
    order, a matrix product per axis (deterministic). Both equal PIL's float result to ~1e-7.
    """
    device, dtype = images.device, images.dtype
    n, c, _, w = images.shape
    if device.type != "cpu" or rows.window is None or cols.window is None:
        return rows.down.to(device, dtype) @ images @ cols.down.to(device, dtype).T
    small_h, small_w = len(rows.counts), len(cols.counts)
    # left-out pixels (window = small) go to one more row or column, cut off afterwards
    spare_h, spare_w = int(rows.window.max()) + 1 - small_h, int(cols.window.max()) + 1 - small_w
    by_rows = images.new_zeros(n, c, small_h + spare_h, w).index_add_(2, rows.window, images)
    summed = images.new_zeros(n, c, small_h, small_w + spare_w)
    summed.index_add_(3, cols.window, by_rows[:, :, :small_h])
    return summed[..., :small_w].div_((rows.counts[:, None] * cols.counts[None, :]).to(dtype))


def nearest_enlarge(small: Tensor, rows: PixelateAxis, cols: PixelateAxis) -> Tensor:
    """PIL's NEAREST enlargement of ``small`` (N, C, h, w) back to (N, C, H, W).

    PyTorch's ``nearest-exact`` kernel where it picks PIL's pixels (checked per axis) and the
    images are large; else one gather of the pixels (faster below ~96 × 96 px: 1.0 vs 3.6 ms
    for 256 images of 32 px on one CPU thread).
    """
    height, width = len(rows.up), len(cols.up)
    if rows.torch_nearest and cols.torch_nearest and height * width > GATHER_PIXELS:
        return F.interpolate(small, size=(height, width), mode="nearest-exact")
    n, c = small.shape[:2]
    pixels = (rows.up[:, None] * len(cols.counts) + cols.up[None, :]).flatten()
    flat = small.reshape(n * c, -1).index_select(1, pixels.to(small.device))
    return flat.view(n, c, height, width)


@CORRUPTIONS.register("pixelate")
class Pixelate(Corruption):
    """Resize to ``int(side · c)`` with PIL's BOX filter and back to the original size.

    The reference enlarges with BOX as well, which picks one pixel per output pixel
    (``imagecorruptions`` uses NEAREST: the same pixels at 32 and 224 px, a neighbouring one
    at some other sizes, e.g. 81 → 72 → 81). The
    reduction averages each box's pixels (:func:`box_reduce`), the enlargement copies pixels
    (:func:`nearest_enlarge`). Deterministic; ``c`` is a fraction of the size, not spatial.
    """

    name = "pixelate"
    category = "digital"
    pixel_lengths = True
    parameter_bounds = (Bound("fraction", 0.0, 1.0, open_low=True),)
    imagenet = (0.6, 0.5, 0.4, 0.3, 0.25)
    cifar = (0.95, 0.9, 0.85, 0.75, 0.65)

    batched_generators = True  # deterministic: no draws

    def apply(self, images: Tensor, param: float, scale: float, generator: Generators) -> Tensor:
        rows = pixelate_axis(images.shape[-2], param)
        cols = pixelate_axis(images.shape[-1], param)
        return nearest_enlarge(box_reduce(images, rows, cols), rows, cols)
