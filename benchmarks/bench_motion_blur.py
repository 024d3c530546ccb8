"""Motion blur: per-image shifted sums (the CPU route) vs Fourier transforms.

``robustart.corruptions.kernels.motion_blur`` gives every image its own line kernel. On the CPU
it sums one shifted copy of each image per tap (``method="shifted"``); elsewhere it multiplies
Fourier transforms (``method="fft"``), which was the only route before. The two run on the
same batch and angles, interleaved (rotated order per round); the script checks that they
agree and prints the median per-round ratio, for the kernels of severities 1, 3 and 5 at
224, 128, 64 and 32 px (the corruption's tables: ImageNet-C's scaled to the size above 85 px,
CIFAR-10-C's below).

    python benchmarks/bench_motion_blur.py --threads 1
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

from robustart.corruptions import create_corruption
from robustart.corruptions.kernels import motion_blur

#: (image side, batch) of each case.
SIZES = ((224, 32), (128, 64), (64, 128), (32, 256))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_device_arguments(parser, repeats=9, device="cpu")
    args = parser.parse_args()
    device = device_from_arguments(args)
    print(f"{describe_device(device)}, {args.repeats} interleaved rounds, 3 channels\n")
    print("| case | Fourier ms/img | shifted sums ms/img | speed-up | max. abs. difference |")
    print("|---|---|---|---|---|")
    corruption = create_corruption("motion_blur")
    generator = torch.Generator(device).manual_seed(0)
    for side, batch in SIZES:
        images = torch.rand(batch, 3, side, side, generator=generator, device=device)
        angles = torch.rand(batch, generator=generator, device=device) * 90 - 45
        for severity in (1, 3, 5):
            (radius, sigma), scale = corruption.parameter(severity, side, side)
            radius, sigma = max(round(radius * scale), 1), sigma * scale
            routes = {
                method: lambda m=method, x=images, r=radius, s=sigma, a=angles: motion_blur(
                    x, r, s, a, method=m
                )
                for method in ("fft", "shifted")
            }
            difference = float((routes["fft"]() - routes["shifted"]()).abs().max())
            times = timeit_interleaved(routes, device, repeats=args.repeats)
            fft_ms, shifted_ms = (ms_per_image(times, batch)[k] for k in ("fft", "shifted"))
            print(
                f"| {side} px, batch {batch}, severity {severity} (radius {radius}) "
                f"| {fft_ms:.3f} | {shifted_ms:.3f} "
                f"| {paired_ratio(times['fft'], times['shifted']):.2f}× | {difference:.1e} |"
            )


if __name__ == "__main__":
    main()
