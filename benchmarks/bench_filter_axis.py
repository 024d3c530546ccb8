"""1-D filtering along an axis: the banded matrix product vs the routes it replaced.

``robustart.corruptions.kernels.filter_axis`` (every separable blur: Gaussian blur, glass
blur, elastic's displacement field, spatter, ...) multiplies blocks of outputs by the band of
inputs they read (``band_blocks``). Its peers on the same batch and kernel: the whole
(size × size) matrix product, and shifted sums of the padded images (``filter2d_depthwise``
with a 1-D kernel, which takes Fourier transforms above 25 taps). Before this change
``filter_axis`` took shifted sums for kernels up to a sixteenth of the axis and the whole
matrix above. The three run interleaved (rotated order per round); the script checks that
they agree and prints the median per-round ratios, for rows and for columns.

    python benchmarks/bench_filter_axis.py --threads 1
"""

from __future__ import annotations

import argparse

import torch
from common import (
    add_device_arguments,
    describe_device,
    device_from_arguments,
    ms_per_image,
    paired_ratio,
    timeit_interleaved,
)

from robustart.corruptions import kernels

#: (image side, batch, taps) of each case.
CASES = ((224, 32, 3), (224, 32, 7), (224, 32, 15), (224, 32, 31), (32, 256, 3), (32, 256, 15))


def whole_matrix(images: torch.Tensor, kernel: torch.Tensor, dim: int) -> torch.Tensor:
    """Peer: the whole correlation matrix, one product."""
    matrix = kernels.filter_matrix(images.shape[dim], kernel, "reflect")
    return matrix @ images if dim == -2 else images @ matrix.T


def shifted_sums(images: torch.Tensor, kernel: torch.Tensor, dim: int) -> torch.Tensor:
    """Peer: a sum of shifted copies of the padded images."""
    kernel2d = kernel.reshape(-1, 1) if dim == -2 else kernel.reshape(1, -1)
    return kernels.filter2d_depthwise(images, kernel2d, "reflect")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_device_arguments(parser, repeats=15, device="cpu")
    args = parser.parse_args()
    device = device_from_arguments(args)
    print(f"{describe_device(device)}, {args.repeats} interleaved rounds, 3 channels\n")
    print(
        "| case | banded ms/img | whole matrix ms/img | speed-up | shifted sums ms/img "
        "| speed-up | before (route) | max. abs. difference |"
    )
    print("|---|---|---|---|---|---|---|---|")
    generator = torch.Generator(device).manual_seed(0)
    for side, batch, taps in CASES:
        images = torch.rand(batch, 3, side, side, generator=generator, device=device)
        kernel = torch.rand(taps, generator=generator, device=device)
        kernel /= kernel.sum()
        for dim, axis in ((-2, "rows"), (-1, "columns")):
            routes = {
                "banded": lambda x=images, k=kernel, d=dim: kernels.filter_axis(x, k, d, "reflect"),
                "matrix": lambda x=images, k=kernel, d=dim: whole_matrix(x, k, d),
                "shifted": lambda x=images, k=kernel, d=dim: shifted_sums(x, k, d),
            }
            banded = routes["banded"]()
            difference = max(float((routes[r]() - banded).abs().max()) for r in routes)
            times = timeit_interleaved(routes, device, repeats=args.repeats)
            ms = ms_per_image(times, batch)
            before = "shifted" if taps * 16 <= side else "matrix"
            print(
                f"| {side} px, batch {batch}, {taps} taps, {axis} | {ms['banded']:.3f} "
                f"| {ms['matrix']:.3f} | {paired_ratio(times['matrix'], times['banded']):.2f}× "
                f"| {ms['shifted']:.3f} | {paired_ratio(times['shifted'], times['banded']):.2f}× "
                f"| {paired_ratio(times[before], times['banded']):.2f}× ({before}) "
                f"| {difference:.1e} |"
            )


if __name__ == "__main__":
    main()
