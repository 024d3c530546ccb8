"""Plasma fractal (diamond-square) height maps, as used by the reference fog."""

from __future__ import annotations

import torch
from torch import Tensor

from robustart.corruptions.base import Generators, draw_per_image


def next_power_of_two(value: int) -> int:
    """The smallest power of two ≥ ``value`` (1 for 0)."""
    return 1 if value <= 1 else 1 << (int(value) - 1).bit_length()


def plasma_fractal(
    count: int,
    size: int,
    wibble_decay: float,
    generator: Generators,
    device: torch.device | str,
) -> Tensor:
    """``count`` independent diamond-square height maps, normalised to [0, 1].

    The reference algorithm on a periodic ``size × size`` grid (``size`` a power of two): the
    corner (0, 0) is 0; at each step, square centres and then diamond centres are set to the
    mean of their four neighbours (wrapping around) plus ``wibble · U(−wibble, wibble)``, with
    ``wibble`` starting at 100 and divided by ``wibble_decay`` after each step (a larger decay
    gives a smoother map). All maps are generated at once, one random draw per map and point,
    from one generator or one per map (:func:`~robustart.corruptions.base.draw_per_image`).
    Computed in float32 (the reference uses float64; twice as fast here, and the normalised
    maps differ by at most 3e-7 on the same draws, far below the 8-bit resolution).

    Returns:
        Float32 tensor (count, size, size) with per-map minimum 0 and maximum 1.
    """
    if size & (size - 1):
        raise ValueError(f"plasma_fractal needs a power-of-two size, got {size}")
    # The points set so far, at spacing `step`, are kept as a dense periodic grid (count, m, m)
    # and each step interleaves the new points into a grid twice as fine: the same values as
    # writing into strided views of the full map, without their scattered memory traffic.
    # The last step writes the normalised float32 map directly.
    grid = torch.zeros(count, 1, 1, device=device, dtype=torch.float32)
    wibble = 100.0

    def wibbled_mean(total: Tensor) -> Tensor:
        noise = draw_per_image(
            lambda shape, g: torch.rand(shape, generator=g, device=device, dtype=torch.float32),
            total.shape,
            generator,
        )
        return total.mul_(0.25).add_(noise.mul_(2 * wibble**2).sub_(wibble**2))

    if size == 1:
        return grid.float()
    while True:
        corners = grid
        square = plus_rolled(corners, corners, -1, 1)
        centres = wibbled_mean(plus_rolled(square, square, -1, 2))
        across = plus_rolled(centres, centres, 1, 1).add_(corners)
        across = wibbled_mean(add_rolled_(across, corners, -1, 2))
        down = plus_rolled(centres, centres, 1, 2).add_(corners)
        down = wibbled_mean(add_rolled_(down, corners, -1, 1))
        # (row parity, column parity) of each set of points in the finer grid
        parts = {(0, 0): corners, (0, 1): across, (1, 0): down, (1, 1): centres}
        m = 2 * grid.shape[-1]
        if m == size:
            break
        grid = corners.new_empty(count, m, m)
        for (row, col), values in parts.items():
            grid[:, row::2, col::2] = values
        wibble /= wibble_decay
    low = torch.stack([v.amin(dim=(1, 2)) for v in parts.values()]).amin(dim=0)[:, None, None]
    high = torch.stack([v.amax(dim=(1, 2)) for v in parts.values()]).amax(dim=0)[:, None, None]
    span = (high - low).clamp_min(1e-12)
    maps = torch.empty(count, size, size, device=device)
    for (row, col), values in parts.items():
        maps[:, row::2, col::2] = values.sub_(low).div_(span)
    return maps


#: Tensors up to this size are rolled with ``torch.roll`` (fewer calls).
SMALL = 1 << 14


def plus_rolled(a: Tensor, b: Tensor, shift: int, dim: int) -> Tensor:
    """``a + b.roll(shift, dim)`` for ``shift`` ±1, without a rolled copy of ``b`` (which
    small tensors make anyway: one call costs less there than the copy)."""
    slices = _roll_slices(a.shape[dim], shift)
    if a.numel() <= SMALL:
        return a + b.roll(shift, dims=dim)
    out = torch.empty_like(a)
    for start_a, start_b, length in slices:
        torch.add(
            a.narrow(dim, start_a, length),
            b.narrow(dim, start_b, length),
            out=out.narrow(dim, start_a, length),
        )
    return out


def add_rolled_(a: Tensor, b: Tensor, shift: int, dim: int) -> Tensor:
    """``a += b.roll(shift, dim)`` in place for ``shift`` ±1 (``a`` and ``b`` distinct).
    Returns ``a``."""
    slices = _roll_slices(a.shape[dim], shift)
    if a.numel() <= SMALL:
        return a.add_(b.roll(shift, dims=dim))
    for start_a, start_b, length in slices:
        a.narrow(dim, start_a, length).add_(b.narrow(dim, start_b, length))
    return a


def _roll_slices(size: int, shift: int) -> list[tuple[int, int, int]]:
    """``(start in a, start in b, length)`` of the slices pairing ``a[i]`` with
    ``b.roll(shift)[i]`` along an axis of ``size``."""
    if shift == -1:  # b[i + 1], wrapping around
        return [(0, 1, size - 1), (size - 1, 0, 1)]
    if shift == 1:  # b[i - 1]
        return [(1, 0, size - 1), (0, size - 1, 1)]
    raise ValueError(f"shift must be 1 or -1, got {shift}")
