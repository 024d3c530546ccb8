"""Glass blur: blur, shuffle pixels locally, blur again.

The reference shuffles pixels by visiting them in reverse raster order (rows ``H−d`` down to
``d+1``, columns likewise) and swapping each with the pixel at offset ``(dy, dx)``, both drawn
from ``{−d, ..., d − 1}``. The swaps are sequential: a pixel moved up-left is visited again and
carried further, so some pixels travel far. In NumPy this takes seconds per 224-px image.

Here the same swaps run exactly, batched, by wavefront scheduling. Visit ``(i, j)`` (the i-th
visited row, j-th visited column) touches only cells within ``d`` of it, so it commutes with
every visit at least ``2d`` columns away in its row band. Executing all visits with the same
``t = 2d·i + j`` at once keeps the order of every pair of visits that touch a common cell, hence
the result is identical to the sequential loop with the same random offsets (the tests check
this), while each of the ``2d·rows + columns`` steps is one vectorised swap for the whole batch.
"""

from __future__ import annotations

import torch
from torch import Tensor

from robustart.corruptions.base import CORRUPTIONS, Corruption
from robustart.corruptions.kernels import gaussian_blur


def swap_offsets(
    count: int,
    height: int,
    width: int,
    max_delta: int,
    generator: torch.Generator | None,
    device: torch.device | str,
) -> Tensor:
    """The reference's random offsets for one shuffling pass of ``count`` images.

    Returns:
        Long tensor (count, rows, cols, 2) of ``(dx, dy)`` in ``[−d, d − 1]``, one per visited
        pixel, visits ordered as the reference (rows and columns descending).
    """
    rows = max(height - 2 * max_delta, 0)
    cols = max(width - 2 * max_delta, 0)
    return torch.randint(
        -max_delta, max_delta, (count, rows, cols, 2), generator=generator, device=device
    )


def sequential_swaps(images: Tensor, max_delta: int, offsets: Tensor) -> Tensor:
    """One pass of the reference's local pixel shuffle, batched (see the module docstring).

    Args:
        images: Tensor (N, C, H, W).
        max_delta: The reference's ``max_delta`` d (pixels).
        offsets: ``(dx, dy)`` per visit, from :func:`swap_offsets`.

    Returns:
        Shuffled images (a permutation of each image's pixels), same shape.
    """
    n, c, h, w = images.shape
    d = max_delta
    if offsets.numel() == 0:
        return images
    device = images.device
    rows = torch.arange(h - d, d, -1, device=device)
    cols = torch.arange(w - d, d, -1, device=device)
    step = (2 * d * torch.arange(len(rows), device=device)[:, None]) + torch.arange(
        len(cols), device=device
    )
    order = torch.argsort(step.reshape(-1), stable=True)
    visited = (rows[:, None] * w + cols[None, :]).reshape(-1)[order]
    shift = (offsets[..., 1] * w + offsets[..., 0]).reshape(n, -1)[:, order]
    first = (torch.arange(n, device=device) * (h * w))[:, None]
    here = first + visited[None, :]  # flat pixel index in the batch, (N, visits)
    pairs = torch.stack((here, here + shift), dim=-1).transpose(0, 1).contiguous()
    swapped = pairs.flip(-1).contiguous()  # (visits, N, 2): write each value to the other cell
    source = torch.arange(n * h * w, device=device)  # which input pixel each cell holds
    start = 0
    for size in torch.bincount(step.reshape(-1)).tolist():
        cells = pairs[start : start + size].reshape(-1)
        targets = swapped[start : start + size].reshape(-1)
        source.index_copy_(0, targets, source.index_select(0, cells))
        start += size
    pixels = images.permute(0, 2, 3, 1).reshape(n * h * w, c)
    return pixels.index_select(0, source).reshape(n, h, w, c).permute(0, 3, 1, 2).contiguous()


@CORRUPTIONS.register("glass_blur")
class GlassBlur(Corruption):
    """Gaussian blur (σ), 8-bit truncation, ``iterations`` passes of the reference's local pixel
    shuffling (offsets up to ``max_delta`` d), Gaussian blur (σ) again, as the reference.

    σ and d are spatial (d is rounded to whole pixels, at least 1); the iteration count is not.
    """

    name = "glass_blur"
    category = "blur"
    imagenet = ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2))
    cifar = ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2))

    def apply(
        self,
        images: Tensor,
        param: tuple[float, int, int],
        scale: float,
        generator: torch.Generator | None,
    ) -> Tensor:
        sigma, max_delta, iterations = param
        sigma = sigma * scale
        blurred = gaussian_blur(images, sigma)
        quantised = torch.floor(blurred.clamp(0.0, 1.0) * 255.0) / 255.0  # np.uint8(x · 255)
        max_delta = max(round(max_delta * scale), 1)
        n, _, h, w = images.shape
        for _ in range(iterations):
            offsets = swap_offsets(n, h, w, max_delta, generator, images.device)
            quantised = sequential_swaps(quantised, max_delta, offsets)
        return gaussian_blur(quantised, sigma)
