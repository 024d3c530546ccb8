"""Resampling: zoom blur's layout and the affine warps' sampling grid, before vs after.

* **zoom blur**: the sum of the bilinear ``clipped_zoom`` copies on the images as they come
  (NCHW, the route before) vs :class:`~robustart.corruptions.zoom_blur.ZoomBlur`, which
  converts them to channels-last once (PyTorch's bilinear kernel works on all channels of a
  pixel at once there).
* **affine warp**: kornia's ``warp_affine`` (``F.affine_grid`` + ``grid_sample``, what the
  elastic transform called before) vs :func:`~robustart.corruptions.geometry.warp_perspective`
  with an affine matrix (the grid written as two outer sums per axis, then ``grid_sample``).

Both routes run on the same batch, interleaved (rotated order per round); the script prints
the median per-round ratio and the largest difference between the two outputs, at the
severities' parameters for 224 and 32 px.

    python benchmarks/bench_resampling.py --threads 1
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
from kornia.geometry.transform import warp_affine

from robustart.corruptions import create_corruption
from robustart.corruptions.elastic_transform import jitter_affine
from robustart.corruptions.geometry import clipped_zoom, warp_perspective
from robustart.corruptions.zoom_blur import zoom_factors

#: (image side, batch) of each case.
SIZES = ((224, 32), (32, 256))


def zoom_blur_nchw(images: torch.Tensor, start: float, stop: float, step: float) -> torch.Tensor:
    """Zoom blur as it was computed before: the zoomed copies on the NCHW batch."""
    factors = zoom_factors(start, stop, step)
    total = images.clone()
    for zoom in factors:
        total += clipped_zoom(images, zoom)
    return total / (len(factors) + 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_device_arguments(parser, repeats=9, device="cpu")
    args = parser.parse_args()
    device = device_from_arguments(args)
    print(f"{describe_device(device)}, {args.repeats} interleaved rounds, 3 channels\n")
    print("| case | before ms/img | after ms/img | speed-up | max. abs. difference |")
    print("|---|---|---|---|---|")
    zoom_blur = create_corruption("zoom_blur")
    elastic = create_corruption("elastic_transform")
    generator = torch.Generator(device).manual_seed(0)
    for side, batch in SIZES:
        images = torch.rand(batch, 3, side, side, generator=generator, device=device)
        cases = {}
        for severity in (1, 3, 5):
            param, scale = zoom_blur.parameter(severity, side, side)
            cases[f"zoom blur, severity {severity}"] = (
                lambda x=images, p=param: zoom_blur_nchw(x, *p),
                lambda x=images, p=param, s=scale: zoom_blur.apply(x, p, s, None),
            )
        for severity in (1, 3):
            (_, _, jitter), _ = elastic.parameter(severity, side, side)
            shift = (torch.rand(batch, 3, 2, generator=generator, device=device) * 2 - 1) * jitter
            affine = jitter_affine(side, side, shift)
            cases[f"affine warp (elastic severity {severity})"] = (
                lambda x=images, a=affine: warp_affine(
                    x,
                    a[:, :2].to(x.dtype),
                    x.shape[-2:],
                    padding_mode="reflection",
                    align_corners=True,
                ),
                lambda x=images, a=affine: warp_perspective(x, a, border="mirror"),
            )
        for name, (before, after) in cases.items():
            difference = float((before() - after()).abs().max())
            times = timeit_interleaved(
                {"before": before, "after": after}, device, repeats=args.repeats
            )
            ms = ms_per_image(times, batch)
            print(
                f"| {side} px, batch {batch}, {name} | {ms['before']:.3f} | {ms['after']:.3f} "
                f"| {paired_ratio(times['before'], times['after']):.2f}× | {difference:.1e} |"
            )


if __name__ == "__main__":
    main()
