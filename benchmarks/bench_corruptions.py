"""Corruption speed: robustart's batched corruptions vs the per-image ``imagecorruptions`` package.

For every corruption, on the same natural images (crops of scikit-image's sample photographs,
8-bit), timed **interleaved**: each round runs robustart's batched call (``--batch`` images
at once) and the reference on ``--ref-images`` images one at a time, in an order rotated from
round to round; the speed-up is the median over rounds of the per-round ratio of the time per
image (so a slow spell of the shared machine hits both alike).

* **ours**: one batched call on the chosen device (CPU by default);
* **imagecorruptions**: the PyPI package (1.1.2), ``corrupt(uint8 image, name, severity)`` per
  image on the CPU, with the same thread count. It has one parameter table, ImageNet's: at
  32 px it runs that table on 32-px images (what it costs, not a CIFAR-10-C reference). Its
  glass_blur, gaussian_blur and fog, broken on current scikit-image / NumPy, run through small
  compatibility shims (``tests/reference_corruptions.py``);
* **port** (``--port``): the per-image NumPy port of the reference definitions in
  ``tests/reference_corruptions.py``, with the table of the image size;
* **forward** (``--forward``): the model's forward pass on the same batch (ResNet-50 at 224 px,
  ResNet-20 at 32 px), to show what a corruption costs next to evaluating it;
* **copy** (``--floor``): ``images.clone()`` of the float32 batch, timed in the same rounds: one
  read of the input and one write of a new output, which any corruption returning a new float32
  batch must do, so reference ÷ copy is the most such a corruption can gain over the reference
  (which reads and writes 8-bit pixels).

The suite line sums the time per image over the benchmark corruptions (15), with and without
glass blur, whose sequential reference dominates any sum.

    pip install imagecorruptions  # measurement only, not a robustart dependency
    python benchmarks/bench_corruptions.py --threads 1
    python benchmarks/bench_corruptions.py --sizes 224 --names pixelate jpeg_compression
    python benchmarks/bench_corruptions.py --threads 1 --floor   # with the copy floor

Needs scikit-image and opencv-python-headless (the ``test`` extra).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from common import (
    add_device_arguments,
    describe_device,
    device_from_arguments,
    timeit_interleaved,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import reference_corruptions as ref

from robustart.corruptions import BENCHMARK_CORRUPTIONS, CORRUPTIONS, create_corruption
from robustart.corruptions.frost import frost_texture_files
from robustart.models import create_model
from robustart.utils import make_generator

#: Batch (ours) and reference images per size unless given.
DEFAULT_BATCH = {32: 256, 224: 32}
DEFAULT_REF_IMAGES = {32: 64, 224: 8}


def port_function(name: str, size: int, severity: int, frost_files) -> Callable | None:
    """The per-image reference port of ``name`` at this size, as a function of one image."""
    if name not in ref.REFERENCES:
        return None
    table = "cifar" if size < 85 else "imagenet"
    c = ref.TABLES[table][name][severity - 1]
    rng = np.random.default_rng(0)
    return functools.partial(
        ref.REFERENCES[name], c=c, rng=rng, frost_files=frost_files, table=table
    )


def per_image(function: Callable, images: list) -> Callable[[], None]:
    """A callable running ``function`` on every image in turn."""

    def run() -> None:
        for image in images:
            function(image)

    return run


def runs(function: Callable, *args) -> bool:
    """Whether ``function(*args)`` runs (the reference package fails on some inputs)."""
    try:
        function(*args)
    except Exception:
        return False
    return True


def measure_size(args: argparse.Namespace, size: int, device: torch.device, package) -> None:
    """Print the table for one image size."""
    batch = args.batch or DEFAULT_BATCH.get(size, 32)
    ref_count = args.ref_images or DEFAULT_REF_IMAGES.get(size, 8)
    names = args.names or CORRUPTIONS.names()
    images_np = ref.natural_test_images(batch, size, seed=0)
    images = torch.from_numpy(images_np).permute(0, 3, 1, 2).float().contiguous().to(device)
    uint8 = [(x * 255).round().astype(np.uint8) for x in images_np[:ref_count]]
    floats = list(images_np[:ref_count])
    frost_files = frost_texture_files()
    forward = None
    if args.forward:
        model_name = "resnet50" if size >= 85 else "resnet20"
        model = create_model(model_name, 1000 if size >= 85 else 10).to(device).eval()
        with torch.no_grad():
            forward_times = timeit_interleaved({"f": lambda: model(images)}, device, 3)["f"]
        forward = statistics.median(forward_times)
    print(
        f"\n{size} px: batch {batch} (ours) vs {ref_count} images one by one (reference); "
        f"severity {args.severity}; {describe_device(device)}; {args.repeats} rounds\n"
    )
    columns = ["corruption", "ours ms/img", "imagecorruptions ms/img", "speed-up"]
    if args.port:
        columns += ["port ms/img", "speed-up vs port"]
    if forward is not None:
        columns += ["corruption ÷ forward"]
    if args.floor:
        columns += ["copy ms/img", "reference ÷ copy"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    suite = {"ours": 0.0, "reference": 0.0, "ours_no_glass": 0.0, "reference_no_glass": 0.0}
    for name in names:
        corruption = create_corruption(name)
        fns: dict[str, Callable[[], object]] = {
            "ours": lambda c=corruption: c(images, args.severity, make_generator(0, device))
        }
        reference = functools.partial(package.corrupt, corruption_name=name, severity=args.severity)
        if name in package.get_corruption_names("all") and runs(reference, uint8[0]):
            fns["reference"] = per_image(reference, uint8)
        port = port_function(name, size, args.severity, frost_files) if args.port else None
        if port is not None:
            fns["port"] = per_image(port, floats)
        if args.floor:
            fns["copy"] = images.clone
        times = timeit_interleaved(fns, device, args.repeats)
        counts = {"ours": batch, "reference": ref_count, "port": ref_count, "copy": batch}
        per_img = {k: [t / counts[k] for t in v] for k, v in times.items()}
        ours = statistics.median(per_img["ours"])
        cells = [name, f"{ours * 1e3:.3f}"]
        for other in ["reference"] + (["port"] if args.port else []):
            if other in per_img:
                speedup = statistics.median(
                    o / u for o, u in zip(per_img[other], per_img["ours"], strict=True)
                )
                cells += [f"{statistics.median(per_img[other]) * 1e3:.3f}", f"{speedup:.1f}×"]
            else:
                cells += ["–", "–"]
        if forward is not None:
            cells.append(f"{ours * batch / forward:.2f}")
        if args.floor:
            cells.append(f"{statistics.median(per_img['copy']) * 1e3:.3f}")
            if "reference" in per_img:
                gain = statistics.median(
                    r / c for r, c in zip(per_img["reference"], per_img["copy"], strict=True)
                )
                cells.append(f"{gain:.1f}×")
            else:
                cells.append("–")
        print("| " + " | ".join(cells) + " |", flush=True)
        if name in BENCHMARK_CORRUPTIONS and "reference" in per_img:
            reference_time = statistics.median(per_img["reference"])
            suite["ours"] += ours
            suite["reference"] += reference_time
            if name != "glass_blur":
                suite["ours_no_glass"] += ours
                suite["reference_no_glass"] += reference_time
    if suite["ours"]:
        print(
            "\nSuite (benchmark corruptions, summed ms per image): "
            f"ours {suite['ours'] * 1e3:.2f}, "
            f"imagecorruptions {suite['reference'] * 1e3:.2f} "
            f"({suite['reference'] / suite['ours']:.1f}×); without glass_blur: ours "
            f"{suite['ours_no_glass'] * 1e3:.2f}, imagecorruptions "
            f"{suite['reference_no_glass'] * 1e3:.2f} "
            f"({suite['reference_no_glass'] / suite['ours_no_glass']:.1f}×)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 224])
    parser.add_argument("--batch", type=int, default=0, help="0: 256 at 32 px, 32 at 224 px")
    parser.add_argument("--ref-images", type=int, default=0, help="0: 64 at 32 px, 8 at 224 px")
    parser.add_argument("--severity", type=int, default=3)
    parser.add_argument("--port", action="store_true", help="also time the NumPy port")
    parser.add_argument("--forward", action="store_true", help="also time the model forward")
    parser.add_argument(
        "--floor", action="store_true", help="also time a copy of the batch (the floor)"
    )
    parser.add_argument("--names", nargs="*", default=None)
    add_device_arguments(parser, repeats=5, device="cpu")
    args = parser.parse_args()
    device = device_from_arguments(args)
    if args.threads:
        import cv2  # the reference's OpenCV calls get the same thread count

        cv2.setNumThreads(args.threads)
    package = ref.import_imagecorruptions(compat=True)
    if package is None:
        sys.exit("imagecorruptions is not installed: pip install imagecorruptions")
    for size in args.sizes:
        measure_size(args, size, device, package)


if __name__ == "__main__":
    main()
