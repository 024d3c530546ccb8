"""Throughput of robustart's batched corruptions against per-image references and a model.

For every registered corruption, on the same natural images:

* **ours**: one batched call (images / s), on the chosen device;
* **imagecorruptions**: the PyPI package, one image at a time on the CPU (its 224-px ImageNet
  parameters; not run at 32 px, where it has no CIFAR table). Its glass_blur, gaussian_blur and
  fog, broken on current scikit-image / NumPy, run through small compatibility shims;
* **port**: the per-image NumPy port of the reference in ``tests/reference_corruptions.py``
  (the reference's own operations: SciPy, scikit-image, OpenCV, PIL), one image at a time;
* **forward**: the model's own forward pass on the same batch (ResNet-50 at 224 px, ResNet-20
  at 32 px), to show what a corruption costs next to evaluating it.

The suite total compares the summed time per image over all corruptions (the slowest
reference dominate, as they would when generating a full benchmark).

    python benchmarks/bench_corruptions.py --size 224 --batch 32 --ref-images 4
    python benchmarks/bench_corruptions.py --size 32 --batch 256 --ref-images 64

Needs scikit-image and opencv-python-headless (the ``test`` extra); imagecorruptions optional.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from common import add_device_arguments, describe_device, device_from_arguments, timeit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import reference_corruptions as ref

from robustart.corruptions import CORRUPTIONS, create_corruption
from robustart.corruptions.frost import frost_texture_files
from robustart.models import create_model
from robustart.utils import make_generator

#: Foundation corruptions have no port in reference_corruptions.py; simple NumPy versions.
SIMPLE_PORTS = {
    "gaussian_noise": lambda x, rng: np.clip(x + rng.normal(size=x.shape, scale=0.08), 0, 1),
    "shot_noise": lambda x, rng: np.clip(rng.poisson(x * 60) / 60, 0, 1),
    "contrast": lambda x, rng: np.clip((x - x.mean((0, 1))) * 0.2 + x.mean((0, 1)), 0, 1),
}


def port_function(name: str, size: int, severity: int, frost_files) -> Callable | None:
    """The per-image reference port of ``name`` at this size, as a function of one image."""
    rng = np.random.default_rng(0)
    if name in ref.REFERENCES:
        table = "cifar" if size < 85 else "imagenet"
        c = ref.TABLES[table][name][severity - 1]
        return functools.partial(
            ref.REFERENCES[name], c=c, rng=rng, frost_files=frost_files, table=table
        )
    if name in SIMPLE_PORTS:
        return functools.partial(SIMPLE_PORTS[name], rng=rng)
    return None


def rate(seconds: float) -> str:
    return f"{1 / seconds:.1f}" if np.isfinite(seconds) else "–"


def ratio(other: float, ours: float) -> str:
    return f"{other / ours:.1f}×" if np.isfinite(other) else "–"


def per_image_seconds(function, images: np.ndarray, budget: float) -> float:
    """Seconds per image of ``function`` over ``images`` (stops after ``budget`` seconds)."""
    start, done = time.perf_counter(), 0
    for img in images:
        function(img)
        done += 1
        if time.perf_counter() - start > budget:
            break
    return (time.perf_counter() - start) / done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--severity", type=int, default=3)
    parser.add_argument("--ref-images", type=int, default=4, help="images per reference run")
    parser.add_argument("--budget", type=float, default=20.0, help="max s per reference run")
    add_device_arguments(parser, repeats=3, device="cpu")
    parser.add_argument("--names", nargs="*", default=None)
    args = parser.parse_args()
    device = device_from_arguments(args)
    names = args.names or CORRUPTIONS.names()
    images_np = ref.natural_test_images(args.batch, args.size, seed=0)
    images = torch.from_numpy(images_np).permute(0, 3, 1, 2).float().to(device)
    package = ref.import_imagecorruptions(compat=True) if args.size >= 85 else None
    frost_files = frost_texture_files()
    model_name = "resnet50" if args.size >= 85 else "resnet20"
    model = create_model(model_name, 1000 if args.size >= 85 else 10).to(device).eval()
    with torch.no_grad():
        forward = timeit(lambda: model(images), device, args.repeats)
    print(
        f"device: {describe_device(device)}; batch {args.batch} × {args.size} px; "
        f"severity {args.severity}; {model_name} forward: {args.batch / forward:.1f} img/s"
    )
    header = (
        "| corruption | ours img/s | imagecorruptions img/s | port img/s | ours ÷ package "
        "| ours ÷ port | corruption time ÷ forward |"
    )
    print(header)
    print("|" + "---|" * 7)
    totals = {"ours": 0.0, "port": 0.0, "package": 0.0, "package_ours": 0.0}
    subset = images_np[: args.ref_images]
    for name in names:
        corruption = create_corruption(name)
        ours = timeit(
            lambda c=corruption: c(images, args.severity, make_generator(0, device)),
            device,
            args.repeats,
        )
        ours_per_image = ours / args.batch
        port_fn = port_function(name, args.size, args.severity, frost_files)
        port = per_image_seconds(port_fn, subset, args.budget) if port_fn else float("nan")
        pkg = float("nan")
        if package is not None:
            uint8 = [(x * 255).round().astype(np.uint8) for x in subset]
            try:
                run = functools.partial(
                    package.corrupt, corruption_name=name, severity=args.severity
                )
                pkg = per_image_seconds(run, uint8, args.budget)
            except Exception:  # broken on current NumPy / scikit-image
                pkg = float("nan")
        totals["ours"] += ours_per_image
        if np.isfinite(port):
            totals["port"] += port
        if np.isfinite(pkg):
            totals["package"] += pkg
            totals["package_ours"] += ours_per_image

        package_rate = rate(pkg) if np.isfinite(pkg) else ("broken" if package else "–")
        print(
            f"| {name} | {rate(ours_per_image)} | {package_rate} | {rate(port)} "
            f"| {ratio(pkg, ours_per_image)} | {ratio(port, ours_per_image)} "
            f"| {ours / forward:.2f} |",
            flush=True,
        )
    print(
        f"\nsuite, summed seconds per image: ours {totals['ours'] * 1e3:.1f} ms, "
        f"port {totals['port'] * 1e3:.1f} ms ({totals['port'] / totals['ours']:.1f}× ours)"
        + (
            f", imagecorruptions (where it runs) {totals['package'] * 1e3:.1f} ms vs ours "
            f"{totals['package_ours'] * 1e3:.1f} ms on the same corruptions "
            f"({totals['package'] / totals['package_ours']:.1f}×)"
            if totals["package"]
            else ""
        )
    )


if __name__ == "__main__":
    main()
