"""Exact samplers for the noise corruptions that are faster than drawing every element.

* :func:`scaled_poisson`: Poisson counts ``Poisson(λ · x)`` for ``x ∈ [0, 1]`` by inversion of
  tabulated distribution functions (shot noise). ``torch.poisson`` draws each element with
  rejection loops (≈ 75 ns per element on one CPU core, as slow as NumPy); the tables make a
  draw cost one integer uniform and a few gathers, plus a second, rare draw for the part of
  the rate between two rows of the table (none for 8-bit images, which lie on its grid).
* :func:`bernoulli_indices`: the successes of many Bernoulli trials by geometric skipping
  (impulse noise): a cost proportional to the number of successes, not of trials.

Both are exact up to the resolution of the uniform draws (2⁻²⁴, as ``torch.rand``), run on any
device and are reproducible under a seeded ``generator``.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import torch
from torch import Tensor

#: Spacing of the table's rates (``λ / rows``): the remainder ``δ < λ / rows`` of every rate is
#: drawn by direct inversion, which stays cheap while ``Poisson(δ)`` is mostly 0.
MAX_REMAINDER = 0.125
#: Upper bound on the entries of one table (16 MiB of float32).
MAX_TABLE = 1 << 22
#: The grid has a multiple of 255 steps where the table allows: then 8-bit images (values
#: ``k / 255`` in float32, whose product with ``255 · 2^j`` rounds back to ``k · 2^j``) fall
#: on the grid, have no remainder, and skip its draws altogether.
EIGHT_BIT_STEPS = 255
#: Bits of a uniform draw (``torch.rand``'s resolution for float32): a draw is an integer
#: ``r ∈ [0, 2²⁴)`` standing for ``U = r · 2⁻²⁴``.
UNIFORM_BITS = 24
#: Elements per chunk of the vectorised first pass (256 KiB of float32).
CHUNK = 1 << 16
#: Largest spacing ``λ / rows`` of a table's grid for which :func:`scaled_poisson` uses the
#: table. The remainder's inversion starts from ``e^(−δ)`` (``δ < λ / rows``), which is exact
#: in float64 far beyond this; but the table's size limit leaves fewer rows as λ grows (2 rows
#: at λ = 1e6, δ up to 5e5, where ``e^(−δ)`` underflows to 0 and the remainder was dropped).
#: Above it (λ above about 1.6e4), the counts come from ``torch.poisson``.
MAX_TABLE_SPACING = 64.0
#: Largest rate :func:`scaled_poisson` draws for: ``torch.poisson`` counts are 64-bit integers
#: internally, and at 1e12 photons the noise (1e-6) is already below float32's resolution.
MAX_RATE = 1e12


class PoissonTable(NamedTuple):
    """Distribution functions of ``Poisson(λ · i / rows)`` for ``i = 0..rows`` (flattened).

    Attributes:
        rows: Grid steps over ``[0, λ]``; the table holds ``rows + 1`` distributions.
        columns: Counts tabulated per distribution (the tail beyond is below 1e-20).
        buckets: Guide-table entries per distribution.
        cdf: ``((rows + 1) · columns,)`` int32 ``P(X ≤ k)`` in units of the uniform draws'
            resolution ``2⁻²⁴``, rounded up (the float32 distribution function times ``2²⁴``,
            which is exact): a draw of ``r`` units (``U = r · 2⁻²⁴``) has ``U ≥ P(X ≤ k)``
            exactly when ``r ≥ cdf``. The last column is ``2²⁵``, above any draw, so that a
            search always stops.
        guide: ``((rows + 1) · buckets,)`` int32: for bucket ``b`` the smallest ``k`` with
            ``P(X ≤ k) > b / buckets`` (where the inversion search starts).
    """

    rows: int
    columns: int
    buckets: int
    cdf: Tensor
    guide: Tensor


def table_shape(scale: float) -> tuple[int, int]:
    """``(rows, columns)`` of the :class:`PoissonTable` of ``Poisson(scale · x)``.

    Example:
        >>> table_shape(500.0)
        (4080, 789)
    """
    columns = math.ceil(scale + 12 * math.sqrt(scale) + 20)
    return grid_steps(math.ceil(scale / MAX_REMAINDER), MAX_TABLE // columns - 1), columns


def table_is_exact(scale: float) -> bool:
    """Whether :func:`scaled_poisson` draws ``Poisson(scale · x)`` from a table: its grid
    spacing is at most :data:`MAX_TABLE_SPACING` (every rate of the severity tables, up to
    500, and all rates up to about 1.6e4)."""
    if scale > MAX_TABLE:  # fewer than one row per column: no table
        return False
    rows, _ = table_shape(scale)
    return scale / rows <= MAX_TABLE_SPACING


@functools.lru_cache(maxsize=8)
def poisson_table(scale: float, device: torch.device) -> PoissonTable:
    """The :class:`PoissonTable` of ``Poisson(scale · x)`` on ``device`` (cached per scale)."""
    rows, columns = table_shape(scale)
    buckets = 1 << max(6, min(10, math.ceil(math.log2(32 * math.sqrt(scale) + 1))))
    buckets = min(buckets, 1 << (MAX_TABLE // (rows + 1)).bit_length() - 1)
    rates = torch.arange(rows + 1, dtype=torch.float64, device=device) * (scale / rows)
    counts = torch.arange(columns, dtype=torch.float64, device=device)
    log_pmf = torch.xlogy(counts, rates[:, None]) - rates[:, None] - torch.lgamma(counts + 1)
    # float32, like torch.rand's uniform draws (resolution 2⁻²⁴), then in units of 2⁻²⁴
    cdf = torch.exp(log_pmf).cumsum(dim=1).float()
    cdf[:, -1] = 2.0
    levels = torch.arange(buckets, dtype=torch.float32, device=device) / buckets
    guide = torch.searchsorted(cdf, levels.expand(rows + 1, buckets).contiguous(), right=True)
    units = cdf.mul_(1 << UNIFORM_BITS).ceil_().int()
    return PoissonTable(rows, columns, buckets, units.reshape(-1), guide.int().reshape(-1))


def grid_steps(wanted: int, most: int) -> int:
    """Steps of a table's rate grid: at least ``wanted`` and at most ``most`` (if it can).

    The smallest ``255 · 2^j ≥ wanted`` that is at most ``most``, so that 8-bit images fall on
    the grid (:data:`EIGHT_BIT_STEPS`); else ``wanted`` bounded to ``[1, most]``.

    Example:
        >>> grid_steps(96, 10_000), grid_steps(4000, 10_000), grid_steps(96, 200)
        (255, 4080, 96)
    """
    steps = EIGHT_BIT_STEPS
    while steps < wanted:
        steps *= 2
    if steps <= most:
        return steps
    return max(min(wanted, most), 1)


def scaled_poisson(fractions: Tensor, scale: float, generator: torch.Generator | None) -> Tensor:
    """Counts ``Poisson(scale · x)`` drawn independently for every element ``x`` of ``fractions``.

    The rate splits into a grid rate ``r = scale · i / rows`` below it and a remainder
    ``δ < scale / rows``; since Poisson variables add, the count is ``Poisson(r) + Poisson(δ)``.
    The first is drawn by inversion of the tabulated distribution function of ``r``
    (:func:`poisson_table`, with a guide table to start the search), the second by inversion
    of ``Poisson(δ)`` term by term, which rarely goes beyond 0. When no element has a
    remainder (8-bit images: the grid has ``255 · 2^j`` steps), the second draw is skipped.

    Rates whose table would be too coarse (:func:`table_is_exact` false, λ above about 1.6e4)
    are drawn by ``torch.poisson`` instead, exact as well but slower on the CPU.

    Args:
        fractions: Float tensor of any shape with values in [0, 1].
        scale: The rate at ``x = 1`` (0 ≤ λ ≤ :data:`MAX_RATE`).
        generator: Random generator on the tensor's device (``None``: global RNG).

    Returns:
        Float counts, same shape and dtype as ``fractions``.

    Raises:
        ValueError: for a rate above :data:`MAX_RATE` (callers check their parameters).

    Example:
        >>> generator = torch.Generator().manual_seed(0)
        >>> counts = scaled_poisson(torch.full((10_000,), 0.5), 12.0, generator)
        >>> abs(counts.mean().item() - 6.0) < 0.1
        True
    """
    device = fractions.device
    if scale <= 0 or fractions.numel() == 0:
        return torch.zeros_like(fractions)
    if scale > MAX_RATE:
        raise ValueError(f"scaled_poisson: the rate must be at most {MAX_RATE:g}, got {scale!r}")
    if not table_is_exact(float(scale)):
        rates = fractions.float() * scale  # float32 rates, as the table route's
        return torch.poisson(rates, generator=generator).to(fractions.dtype)
    table = poisson_table(float(scale), device)
    flat = fractions.reshape(-1).float()  # rates in float32, as torch.poisson(x.float() * λ)
    out = torch.empty_like(flat, dtype=fractions.dtype)
    # The first guess of every element, chunk by chunk (small temporaries stay in the cache
    # and are reused); the few elements whose search goes on are gathered for the loop below.
    pending: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []
    off_grid = torch.zeros((), dtype=torch.bool, device=device)
    # the guide's bucket of a draw r is its top log2(buckets) bits (buckets: a power of 2)
    bucket_shift = UNIFORM_BITS - (table.buckets.bit_length() - 1)
    for first in range(0, len(flat), CHUNK):
        x = flat[first : first + CHUNK]
        u = torch.empty(x.shape, dtype=torch.int32, device=device)
        u.random_(0, 1 << UNIFORM_BITS, generator=generator)
        position = x.mul(table.rows)
        row = position.to(torch.int32)  # truncation = floor for x ≥ 0
        off_grid |= position.ne(row).any()
        counts = table.guide.index_select(
            0, torch.bitwise_right_shift(u, bucket_shift).add_(row, alpha=table.buckets)
        )
        offsets = row.mul_(table.columns)
        below = table.cdf.index_select(0, offsets + counts) <= u
        out[first : first + CHUNK] = counts
        active = below.nonzero().squeeze(1)
        pending.append((active + first, offsets[active], counts[active], u[active]))
    active, offsets, counts, uniform = (torch.cat(parts) for parts in zip(*pending, strict=True))
    _search_up(out, table.cdf, active, offsets, counts, uniform)
    if off_grid:
        _add_small_poisson(out, flat, table.rows, scale, generator)
    return out.view(fractions.shape)


def _search_up(
    out: Tensor, cdf: Tensor, active: Tensor, offsets: Tensor, counts: Tensor, uniform: Tensor
) -> None:
    """Continue the inversion for the ``active`` elements of ``out`` (flat, in place).

    Their count is ``counts`` and ``cdf[offsets + counts] ≤ uniform``; raise the count until
    the distribution function exceeds the uniform draw.
    """
    while len(active):
        counts += 1
        out[active] = counts.to(out.dtype)
        below = cdf.index_select(0, offsets + counts) <= uniform
        active, offsets, uniform, counts = _keep(below, active, offsets, uniform, counts)


def _add_small_poisson(
    out: Tensor, fractions: Tensor, rows: int, scale: float, generator: torch.Generator | None
) -> None:
    """Add ``Poisson(δ)`` to ``out`` (flat, in place), ``δ`` the remainder of each rate
    ``scale · x`` above the grid ``scale · i / rows`` (``0 ≤ δ < scale / rows``).

    Inversion with a uniform ``U`` gives 0 unless ``U ≥ e^(−δ)``, which needs
    ``U ≥ e^(−scale / rows)``. So only the elements where that happens (Bernoulli trials with
    ``p = 1 − e^(−scale / rows)``, drawn by :func:`bernoulli_indices`) get a ``U``, uniform on
    ``[1 − p, 1)``, and the inversion, term by term.
    """
    p = -math.expm1(-scale / rows)
    active = bernoulli_indices(len(out), p, generator, out.device)
    uniform = torch.rand(active.shape, generator=generator, device=out.device).mul_(p)
    uniform.add_(1 - p)
    position = fractions[active] * rows
    rates = position.sub_(position.to(torch.int32)).double().mul_(scale / rows)
    term = rates.neg().exp_()  # P(0); float64 sums reach every float32 uniform below 1
    total, count = term, 0
    while len(active):
        still = (uniform >= total) & (term > 0)
        active, rates, uniform, term, total = _keep(still, active, rates, uniform, term, total)
        out.index_add_(0, active, torch.ones_like(uniform, dtype=out.dtype))
        count += 1
        term = term * rates / count
        total = total + term


def _keep(mask: Tensor, *tensors: Tensor) -> list[Tensor]:
    """The elements of each (flat) tensor where ``mask`` is true (one ``nonzero`` for all)."""
    index = mask.nonzero().squeeze(1)
    return [t.index_select(0, index) for t in tensors]


def bernoulli_indices(
    count: int, probability: float, generator: torch.Generator | None, device: torch.device | str
) -> Tensor:
    """Sorted flat indices of the successes among ``count`` independent Bernoulli(p) trials.

    The gaps between successes are geometric, ``⌊log U / log(1 − p)⌋`` failures each, so only
    about ``count · p`` uniforms are drawn (in batches until the trials are covered).

    Returns:
        int64 tensor (number of successes,).

    Example:
        >>> hits = bernoulli_indices(100_000, 0.1, torch.Generator().manual_seed(0), "cpu")
        >>> 9_500 < len(hits) < 10_500
        True
    """
    if probability <= 0 or count == 0:
        return torch.zeros(0, dtype=torch.long, device=device)
    if probability >= 1:
        return torch.arange(count, device=device)
    log_miss = math.log1p(-probability)
    expected = count * probability
    found: list[Tensor] = []
    next_index = 0
    while next_index < count:
        draws = int(expected + 6 * math.sqrt(expected) + 16)
        uniform = torch.rand(draws, generator=generator, device=device, dtype=torch.float64)
        # log of U ∈ (0, 1]; gaps beyond the trials end the search (and would overflow int64
        # for tiny p)
        gaps = torch.log1p(-uniform).div_(log_miss).floor_().clamp_(max=count).long()
        positions = gaps.add_(1).cumsum_(0).add_(next_index - 1)
        found.append(positions[positions < count])
        next_index = int(positions[-1]) + 1
        expected = max((count - next_index) * probability, 0.0)
    return torch.cat(found)
