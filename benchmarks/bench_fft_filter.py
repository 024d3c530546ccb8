"""Fourier filtering: two planes per complex transform vs one real transform per plane.

``robustart.corruptions.kernels.fft_correlate`` pairs the planes of a batch as ``a + i·b``
(``fft_filter_pairs``); the peer is the plain route, ``rfft2`` of every plane and ``irfft2``
back (what ``motion_blur`` still does with its per-image kernels). Both run on the same padded
batch with the same kernel spectrum, interleaved (rotated order per round); the script checks
that they agree and prints the median per-round ratio. Then the same for the whole
``defocus_blur`` corruption, once with each route.

    python benchmarks/bench_fft_filter.py --threads 1
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

from robustart.corruptions import corrupt, kernels
from robustart.utils import make_generator

#: (image side, batch, kernel side) of each filtering case.
CASES = ((224, 32, 17), (224, 32, 21), (32, 256, 17), (32, 256, 5))


def real_transform_correlate(
    images: torch.Tensor, kernel: torch.Tensor, border: str
) -> torch.Tensor:
    """The peer: :func:`kernels.fft_correlate` with one real transform per plane each way."""
    h, w = images.shape[-2:]
    kh, kw = kernel.shape
    top, left = kh // 2, kw // 2
    hp, wp = kernels.fft_size(h + kh - 1), kernels.fft_size(w + kw - 1)
    rows = (top - torch.arange(kh, device=images.device)) % hp
    cols = (left - torch.arange(kw, device=images.device)) % wp
    centred = torch.zeros(hp, wp, device=images.device, dtype=images.dtype)
    centred[rows[:, None], cols[None, :]] = kernel.to(images.dtype)
    padded = kernels.pad2d(images, top, kh - 1 - top, left, kw - 1 - left, border)
    spectrum = torch.fft.rfft2(padded, s=(hp, wp)) * torch.fft.rfft2(centred)
    return torch.fft.irfft2(spectrum, s=(hp, wp))[..., top : top + h, left : left + w]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_device_arguments(parser, repeats=15, device="cpu")
    args = parser.parse_args()
    device = device_from_arguments(args)
    print(f"{describe_device(device)}, {args.repeats} interleaved rounds\n")
    print("| case | real transforms ms/img | paired ms/img | speed-up | max. abs. difference |")
    print("|---|---|---|---|---|")
    paired = kernels.fft_correlate
    generator = torch.Generator(device).manual_seed(0)
    for side, batch, ksize in CASES:
        images = torch.rand(batch, 3, side, side, generator=generator, device=device)
        kernel = torch.rand(ksize, ksize, generator=generator, device=device)
        kernel /= kernel.sum()
        difference = (
            (paired(images, kernel, "mirror") - real_transform_correlate(images, kernel, "mirror"))
            .abs()
            .max()
        )
        times = timeit_interleaved(
            {
                "real": lambda x=images, k=kernel: real_transform_correlate(x, k, "mirror"),
                "paired": lambda x=images, k=kernel: paired(x, k, "mirror"),
            },
            device,
            repeats=args.repeats,
        )
        real_ms, paired_ms = (ms_per_image(times, batch)[k] for k in ("real", "paired"))
        print(
            f"| {side} px, batch {batch}, {ksize}×{ksize} kernel | {real_ms:.3f} | {paired_ms:.3f} "
            f"| {paired_ratio(times['real'], times['paired']):.2f}× | {float(difference):.1e} |"
        )
    print("\n| defocus_blur | real transforms ms/img | paired ms/img | speed-up |")
    print("|---|---|---|---|")
    for side, batch in ((224, 32), (32, 256)):
        images = torch.rand(batch, 3, side, side, generator=generator, device=device)
        for severity in (1, 3, 5):

            def run(route, images=images, severity=severity):
                kernels.fft_correlate = route
                try:
                    return corrupt(images, "defocus_blur", severity, make_generator(0, device))
                finally:
                    kernels.fft_correlate = paired

            times = timeit_interleaved(
                {"real": lambda: run(real_transform_correlate), "paired": lambda: run(paired)},
                device,
                repeats=args.repeats,
            )
            real_ms, paired_ms = (ms_per_image(times, batch)[k] for k in ("real", "paired"))
            print(
                f"| {side} px, batch {batch}, severity {severity} | {real_ms:.3f} | "
                f"{paired_ms:.3f} | {paired_ratio(times['real'], times['paired']):.2f}× |"
            )


if __name__ == "__main__":
    main()
