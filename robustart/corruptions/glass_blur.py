"""Glass blur: blur, move pixels locally, blur again.

The reference visits the pixels in reverse raster order (rows ``H−d`` down to ``d+1``, columns
likewise) and, for each, draws an offset ``(dy, dx)`` from ``{−d, ..., d − 1}²`` and runs
``x[h, w], x[h + dy, w + dx] = x[h + dy, w + dx], x[h, w]``. On an RGB array those are NumPy
*views*, so this "swap" is a copy: ``x[h, w]`` takes the current value of ``x[h + dy, w + dx]``,
which keeps its own. (On a 2-D greyscale array it would swap; ImageNet-C and CIFAR-10-C are
RGB, so the copy is what made them.) Visits are sequential, so a pixel copied from a cell that
was already visited receives that cell's *new* value: values travel along chains. In NumPy
this takes seconds per 224-px image.

The batched version here is exact. A visited pixel ``p`` reads cell ``q = p + (dy, dx)``: if
``q`` is visited before ``p`` (later in raster order), ``p`` ends with ``q``'s final value,
otherwise with ``q``'s original value. Following these links is a pointer chase, done for all
pixels of all images at once by pointer doubling (``log2`` of the longest chain steps); the
output equals the sequential loop's for the same offsets (the tests check this).
"""

from __future__ import annotations

import torch
from torch import Tensor

from robustart.corruptions.base import CORRUPTIONS, Bound, Corruption, Generators, random_integers
from robustart.corruptions.kernels import gaussian_blur


def copy_offsets(
    count: int,
    height: int,
    width: int,
    max_delta: int,
    generator: Generators,
    device: torch.device | str,
) -> Tensor:
    """The reference's random offsets for one pass over ``count`` images.

    ``generator``: one for all images or one per image (see
    :func:`~robustart.corruptions.base.draw_per_image`).

    Returns:
        Long tensor (count, rows, cols, 2) of ``(dx, dy)`` in ``[−d, d − 1]``, one per visited
        pixel, visits ordered as the reference (rows and columns descending).
    """
    rows = max(height - 2 * max_delta, 0)
    cols = max(width - 2 * max_delta, 0)
    return random_integers((count, rows, cols, 2), -max_delta, max_delta, generator, device)


def sequential_copies(images: Tensor, max_delta: int, offsets: Tensor) -> Tensor:
    """One pass of the reference's local pixel moves, batched and exact (module docstring).

    Args:
        images: Tensor (N, C, H, W).
        max_delta: The reference's ``max_delta`` d (pixels).
        offsets: ``(dx, dy)`` per visit, from :func:`copy_offsets`.

    Returns:
        Tensor (N, C, H, W): every pixel replaced by the input pixel it ends up holding.
    """
    n, c, h, w = images.shape
    d = max_delta
    if offsets.numel() == 0:
        return images
    device = images.device
    rows = torch.arange(h - d, d, -1, device=device)
    cols = torch.arange(w - d, d, -1, device=device)
    visited = (rows[:, None] * w + cols[None, :]).reshape(-1)  # flat index, visiting order
    read = visited + (offsets[..., 1] * w + offsets[..., 0]).reshape(n, -1)  # (N, visits)
    band = torch.zeros(h * w, dtype=torch.bool, device=device)
    band[visited] = True
    # p ends with q's final value if q is visited before p (later in raster order), else
    # with q's original value: a link to follow, or a terminal read
    follow = band[read] & (read > visited)
    pointer = torch.arange(h * w, device=device).repeat(n, 1)
    pointer[:, visited] = read
    terminal = torch.ones(n, h * w, dtype=torch.bool, device=device)
    terminal[:, visited] = ~follow
    while not bool(terminal.all()):  # pointer doubling: each round doubles the jump
        pointer, terminal = (
            torch.where(terminal, pointer, pointer.gather(1, pointer)),
            terminal | terminal.gather(1, pointer),
        )
    flat = images.reshape(n, c, h * w)
    return flat.gather(2, pointer[:, None, :].expand(n, c, h * w)).reshape(n, c, h, w)


#: Most passes of pixel moves for explicit parameters (the tables use 1–3; each pass costs as
#: much as the two blurs, and a billion ran for ever).
MAX_ITERATIONS = 100


@CORRUPTIONS.register("glass_blur")
class GlassBlur(Corruption):
    """Gaussian blur (σ), 8-bit truncation, ``iterations`` passes of the reference's local pixel
    moves (offsets up to ``max_delta`` d, see the module docstring), Gaussian blur (σ) again.

    σ and d are spatial (d is rounded to whole pixels, at least 1); the iteration count is not.
    """

    name = "glass_blur"
    category = "blur"
    pixel_lengths = True
    parameter_bounds = (
        Bound("sigma", 0.0, per_side=4),
        Bound("max_delta", 0.0, per_side=4),
        Bound("iterations", 0.0, MAX_ITERATIONS, integer=True),
    )
    imagenet = ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2))
    cifar = ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2))
    batched_generators = True

    def apply(
        self, images: Tensor, param: tuple[float, int, int], scale: float, generator: Generators
    ) -> Tensor:
        sigma, max_delta, iterations = param
        sigma = sigma * scale
        blurred = gaussian_blur(images, sigma)
        quantised = torch.floor(blurred.clamp(0.0, 1.0) * 255.0) / 255.0  # np.uint8(x · 255)
        max_delta = max(round(max_delta * scale), 1)
        n, _, h, w = images.shape
        for _ in range(iterations):
            offsets = copy_offsets(n, h, w, max_delta, generator, images.device)
            quantised = sequential_copies(quantised, max_delta, offsets)
        return gaussian_blur(quantised, sigma)
