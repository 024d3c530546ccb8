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

    Returns:
        Float32 tensor (count, size, size) with per-map minimum 0 and maximum 1.
    """
    if size & (size - 1):
        raise ValueError(f"plasma_fractal needs a power-of-two size, got {size}")
    maps = torch.zeros(count, size, size, device=device, dtype=torch.float64)
    step, wibble = size, 100.0

    def wibbled_mean(total: Tensor) -> Tensor:
        noise = draw_per_image(
            lambda shape, g: torch.rand(shape, generator=g, device=device, dtype=torch.float64),
            total.shape,
            generator,
        )
        return total / 4 + wibble * (wibble * (2 * noise - 1))

    while step >= 2:
        half = step // 2
        corners = maps[:, 0::step, 0::step]
        square = corners + corners.roll(-1, dims=1)
        square = square + square.roll(-1, dims=2)
        maps[:, half::step, half::step] = wibbled_mean(square)
        centres = maps[:, half::step, half::step]
        corners = maps[:, 0::step, 0::step]
        across = centres + centres.roll(1, dims=1) + corners + corners.roll(-1, dims=2)
        maps[:, 0::step, half::step] = wibbled_mean(across)
        down = centres + centres.roll(1, dims=2) + corners + corners.roll(-1, dims=1)
        maps[:, half::step, 0::step] = wibbled_mean(down)
        step //= 2
        wibble /= wibble_decay
    low = maps.amin(dim=(1, 2), keepdim=True)
    high = maps.amax(dim=(1, 2), keepdim=True)
    return ((maps - low) / (high - low).clamp_min(1e-12)).float()
