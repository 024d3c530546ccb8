"""Defocus blur's disk filter as sums of box filters (CPU, float32).

The reference defocus kernel (:func:`~robustart.corruptions.kernels.disk_kernel`) is a binary
disk ``D`` (``x² + y² ≤ r²`` on a 17×17 grid, normalised) blurred by a 3×3 Gaussian ``G`` with
mirrored borders. While the disk stays two pixels inside the grid (``floor(r) ≤ 6``), that
mirror reads only zeros, so the kernel is exactly ``(D / |D|) ⊛ G`` and ``G = g ⊗ g`` is
separable. Correlating an image with ``D`` is a sum over the disk's rows ``dy`` of horizontal
box sums of half-width ``w(dy)`` taken ``dy`` rows away, and ``G`` then runs as two 3-tap
passes; no multiplication is needed until the final scale.

On the CPU this beats the Fourier route of :func:`~robustart.corruptions.kernels.fft_correlate`
2–4× at 224 px (``benchmarks/bench_corruptions.py --names defocus_blur``; BENCHMARKS.md): each
step is one contiguous ``add`` over a flat chunk of a few mirror-padded planes, which fits the
cache. In the flat chunk a shift by ``(dy, dx)`` is an offset ``dy · Wp + dx``; the sums that wrap
from one padded row into the next land in the padding, which the output never reads. Boxes grow
in place (``B_w = B_{w−1} + x[−w] + x[+w]``), the first from power-of-two partial sums, and bands
of rows of equal width are summed the same way vertically: about 25 passes over a plane at
radius 6. Other radii, dtypes and devices take the Fourier route.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor

from robustart.corruptions.kernels import disk_kernel, filter2d_depthwise, gaussian_kernel1d

#: Elements of one chunk of padded planes (1 MiB of float32 per buffer: 4 planes at 224 px).
CHUNK_ELEMENTS = 1 << 18
#: Gaussian side weight (relative to the centre's) below which the anti-aliasing blur is the
#: identity at float32 precision (σ ≲ 0.16 px): it is skipped.
NEGLIGIBLE_SIDE_WEIGHT = 1e-9
#: Largest ``floor(radius)`` whose disk stays off the 17×17 grid's mirrored border.
MAX_BOX_RADIUS = 6


def disk_row_widths(radius: float) -> dict[int, int] | None:
    """Half-width of each row of :func:`disk_kernel`'s disk, ``{dy: w}`` (row ``dy`` covers
    ``dx ∈ [−w, w]``), compared in float32 as the kernel builder does.

    Returns:
        ``None`` where the box sums would not equal the kernel: an empty disk, or one reaching
        within two pixels of the grid's edge (``floor(radius) > 6``).

    Example:
        >>> disk_row_widths(2.5)
        {-2: 1, -1: 2, 0: 2, 1: 2, 2: 1}
    """
    if not 0 < radius <= 8:
        return None
    grid = torch.arange(-8, 9, dtype=torch.float32)
    mask = (grid[:, None] ** 2 + grid[None, :] ** 2) <= radius**2
    widths = {dy - 8: int(row.sum()) // 2 for dy, row in enumerate(mask) if bool(row.any())}
    if not widths or max(max(widths), max(widths.values())) > MAX_BOX_RADIUS:
        return None
    return widths


def disk_filter(images: Tensor, radius: float, alias_blur: float) -> Tensor:
    """``filter2d_depthwise(images, disk_kernel(radius, alias_blur), border="mirror")``, as box
    sums where that is exact and faster (float32 CPU images, ``floor(radius) ≤ 6``); through
    the Fourier route otherwise.

    Args:
        images: Tensor (N, C, H, W) in [0, 1].
        radius: Disk radius in pixels (> 0).
        alias_blur: σ of the 3×3 anti-aliasing Gaussian in pixels (≥ 0).

    Returns:
        Tensor (N, C, H, W), equal to the Fourier route's to float rounding (≤ 5e-7).

    Example:
        >>> images = torch.rand(2, 3, 32, 32)
        >>> reference = filter2d_depthwise(images, disk_kernel(3, 0.5), border="mirror")
        >>> bool((disk_filter(images, 3, 0.5) - reference).abs().max() < 1e-6)
        True
    """
    widths = disk_row_widths(radius)
    n, c, h, w = images.shape
    reach = max(widths) + 1 if widths is not None else 0
    if (
        widths is None
        or images.dtype != torch.float32
        or images.device.type != "cpu"
        or reach >= min(h, w)  # a reflection pad narrower than the image
    ):
        kernel = disk_kernel(radius, alias_blur, images.device)
        return filter2d_depthwise(images, kernel, border="mirror")
    taps = gaussian_kernel1d(alias_blur, radius=1).tolist()
    side = taps[0] / taps[1]  # the Gaussian as centre · [side, 1, side]
    blur = side > NEGLIGIBLE_SIDE_WEIGHT
    scale = (taps[1] ** 2 if blur else 1.0) / sum(2 * v + 1 for v in widths.values())
    planes = images.reshape(n * c, h, w)
    result = torch.empty(n, c, h, w)
    if max(widths) == 0 and not blur:  # one tap: the identity
        return torch.mul(images, scale, out=result)
    out = result.view(n * c, h, w)
    pad = max(widths) + int(blur)
    per_chunk = max(1, min(n * c, CHUNK_ELEMENTS // ((h + 2 * pad) * (w + 2 * pad))))
    program = _BoxSumProgram(h, w, widths, side if blur else 0.0, per_chunk)
    for start in range(0, n * c, per_chunk):
        count = min(per_chunk, n * c - start)
        program.run(planes[start : start + count], out[start : start + count], scale)
    return result


class _BoxSumProgram:
    """The ``add`` operations filtering one chunk of planes, bound once to reused buffers.

    Positions are flat indices ``q`` into the chunk of padded planes (``P × Hp × Wp``); output
    pixel ``(p, i, j)`` sits at ``p · Hp · Wp + (i + pad) · Wp + (j + pad)``. Each operation
    covers the range of ``q`` its result is read on, so no view leaves its buffer.
    """

    def __init__(self, h: int, w: int, widths: dict[int, int], side: float, planes: int) -> None:
        reach = max(widths)
        blur = side > 0
        self.pad = reach + int(blur)
        hp, wp = h + 2 * self.pad, w + 2 * self.pad
        size = planes * hp * wp
        self.padded = torch.empty(planes, hp, wp)
        self.ops: list[Callable[[], object]] = []
        self._buffers: dict[str, Tensor] = {}
        self._size, self._row = size, wp
        source = self.padded.view(-1)
        # ranges: the output, the disk sums the blur reads, the boxes the rows read
        out_lo, out_hi = self.pad * wp + self.pad, size - self.pad * wp - self.pad
        disk_lo, disk_hi = (out_lo - wp - 1, out_hi + wp + 1) if blur else (out_lo, out_hi)
        box_lo, box_hi = reach, size - reach
        self._disk_range = (disk_lo, disk_hi)
        self._box_range = (box_lo, box_hi)

        # the single taps: row 0's ends beyond row ±1's width, and rows of width 0
        rows = dict(widths)
        taps: list[int] = []
        if reach >= 1 and rows[0] > rows[1]:
            taps += [u for k in range(rows[1] + 1, rows[0] + 1) for u in (-k, k)]
            rows[0] = rows[1]
        taps += [dy * wp for dy, width in rows.items() if width == 0]

        self._partials = {1: source}
        disk = self._buffer("disk")
        box = self._buffer("box")
        self._disk_started = False
        current = 0
        for width in sorted({v for v in rows.values() if v > 0}):
            if current == 0:  # the first box, from power-of-two partial sums
                pieces, start = [], -width
                for length in _powers_of_two(2 * width + 1):
                    pieces.append((self._horizontal_partial(length), start))
                    start += length
                self._sum_into(box, self._box_range, pieces, first=True)
            else:  # wider boxes grow in place
                for k in range(current + 1, width + 1):
                    self._sum_into(box, self._box_range, [(source, -k), (source, k)])
            current = width
            single_rows = []
            for run in _consecutive_runs(sorted(dy for dy, v in rows.items() if v == width)):
                if len(run) < 4:
                    single_rows += run
                    continue
                vertical = {1: box}  # a band of rows: vertical power-of-two partial sums
                pieces, start = [], run[0]
                for length in _powers_of_two(len(run)):
                    pieces.append((self._vertical_partial(vertical, length, reach), start * wp))
                    start += length
                self._add_to_disk(pieces)
            self._add_to_disk([(box, dy * wp) for dy in single_rows])
        self._add_to_disk([(source, offset) for offset in taps])

        if blur:  # separable [side, 1, side], rows then columns (the centre is in the scale)
            rows_blurred = self._buffer("H2")  # the partial sums are no longer read
            lo, hi = out_lo - wp, out_hi + wp
            self._weighted(rows_blurred, disk, (lo, hi), 1, side)
            blurred = box  # no longer read
            self._weighted(blurred, rows_blurred, (out_lo, out_hi), wp, side)
        else:
            blurred = disk
        self.result = blurred.as_strided((planes, h, w), (hp * wp, wp, 1), out_lo)

    def run(self, planes: Tensor, out: Tensor, scale: float) -> None:
        """Filter ``planes`` (P' ≤ P, H, W) into ``out`` (P', H, W), times ``scale``."""
        count = len(planes)
        padded = self.padded if count == len(self.padded) else self.padded[:count]
        torch.ops.aten.reflection_pad2d.out(planes, [self.pad] * 4, out=padded)
        for op in self.ops:
            op()
        result = self.result if count == len(self.result) else self.result[:count]
        torch.mul(result, scale, out=out)

    # ------------------------------------------------------------------ building blocks
    def _buffer(self, name: str) -> Tensor:
        if name not in self._buffers:
            self._buffers[name] = torch.empty(self._size)
        return self._buffers[name]

    def _sum_into(
        self,
        out: Tensor,
        span: tuple[int, int],
        terms: list[tuple[Tensor, int]],
        first: bool = False,
    ) -> None:
        """``out[q] (+)= Σ source[q + offset]`` over ``span``; ``first`` overwrites."""
        lo, hi = span
        target = _window(out, lo, hi)
        terms = list(terms)
        if first:
            (a, da), *terms = terms
            first_term = _window(a, lo + da, hi + da)
            if terms:
                (b, db), *terms = terms
                second = _window(b, lo + db, hi + db)
                self.ops.append(functools.partial(torch.add, first_term, second, out=target))
            else:
                self.ops.append(functools.partial(target.copy_, first_term))
        for source, offset in terms:
            self.ops.append(
                functools.partial(target.add_, _window(source, lo + offset, hi + offset))
            )

    def _add_to_disk(self, terms: list[tuple[Tensor, int]]) -> None:
        if terms:
            self._sum_into(self._buffer("disk"), self._disk_range, terms, not self._disk_started)
            self._disk_started = True

    def _horizontal_partial(self, length: int) -> Tensor:
        """``S_L[q] = Σ_{k < L} x[q + k]`` for a power of two ``L`` (valid for q ≤ size − L)."""
        if length not in self._partials:
            half = self._horizontal_partial(length // 2)
            partial = self._buffer(f"H{length}")
            n, shift = self._size - length + 1, length // 2
            self.ops.append(
                functools.partial(torch.add, half[:n], half[shift : shift + n], out=partial[:n])
            )
            self._partials[length] = partial
        return self._partials[length]

    def _vertical_partial(self, partials: dict[int, Tensor], length: int, reach: int) -> Tensor:
        """``V_L[q] = Σ_{t < L} box[q + t · Wp]`` for a power of two ``L``, on the span the
        disk's rows read."""
        if length not in partials:
            half = self._vertical_partial(partials, length // 2, reach)
            partial = self._buffer(f"H{length}")  # the horizontal partials are no longer read
            wp = self._row
            lo = self._disk_range[0] - reach * wp
            hi = self._disk_range[1] + reach * wp - (length - 1) * wp
            shift = (length // 2) * wp
            self.ops.append(
                functools.partial(
                    torch.add,
                    _window(half, lo, hi),
                    _window(half, lo + shift, hi + shift),
                    out=_window(partial, lo, hi),
                )
            )
            partials[length] = partial
        return partials[length]

    def _weighted(
        self, out: Tensor, source: Tensor, span: tuple[int, int], step: int, side: float
    ) -> None:
        """``out[q] = source[q] + side · (source[q − step] + source[q + step])`` over ``span``."""
        lo, hi = span
        target = _window(out, lo, hi)
        before = _window(source, lo - step, hi - step)
        self.ops.append(
            functools.partial(torch.add, _window(source, lo, hi), before, alpha=side, out=target)
        )
        after = _window(source, lo + step, hi + step)
        self.ops.append(functools.partial(target.add_, after, alpha=side))


def _window(buffer: Tensor, lo: int, hi: int) -> Tensor:
    """``buffer[lo:hi]``, refusing a range outside the buffer (a slice would clip it)."""
    if not 0 <= lo <= hi <= len(buffer):
        raise AssertionError(f"box-sum window [{lo}, {hi}) outside a buffer of {len(buffer)}")
    return buffer[lo:hi]


def _powers_of_two(length: int) -> list[int]:
    """The binary decomposition of ``length``, largest first (``13 → [8, 4, 1]``)."""
    return [1 << bit for bit in reversed(range(length.bit_length())) if length >> bit & 1]


def _consecutive_runs(values: list[int]) -> list[list[int]]:
    """Split sorted integers into runs of consecutive values (``[1, 2, 4] → [[1, 2], [4]]``)."""
    runs: list[list[int]] = []
    for value in values:
        if runs and value == runs[-1][-1] + 1:
            runs[-1].append(value)
        else:
            runs.append([value])
    return runs
