"""Fidelity of robustart's corruptions against per-image ports of the reference definitions.

For every corruption and severity, the same natural images (crops of scikit-image's sample
photographs) are corrupted by robustart (batched) and by the reference port in
``tests/reference_corruptions.py`` (one image at a time, SciPy / scikit-image / OpenCV / PIL),
and the mean PSNR and SSIM to the clean images are compared. Deterministic corruptions also
report the largest pixel difference. Optionally (``--imagecorruptions``) the PyPI package is
run too (224 px only: it has no CIFAR table; its broken glass_blur and fog through small
compatibility shims; frost with its own photographs, so that column differs in texture).

    python benchmarks/fidelity_corruptions.py --count32 64 --count224 8 --markdown

Needs scikit-image and opencv-python-headless (the ``test`` extra).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import reference_corruptions as ref

from robustart.corruptions import create_corruption
from robustart.corruptions.frost import frost_texture_files
from robustart.utils import make_generator

#: imagecorruptions functions whose definition is the reference's (its elastic_transform is a
#: different, affine-free definition); glass_blur and fog run through compatibility shims.
IMAGECORRUPTIONS_OK = (
    "speckle_noise",
    "defocus_blur",
    "glass_blur",
    "fog",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "spatter",
    "saturate",
    "pixelate",
)


def ours(images: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    out = create_corruption(name)(x, severity, make_generator(seed))
    return out.permute(0, 2, 3, 1).double().numpy()


def package(module, images: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    np.random.seed(seed)
    out = []
    for img in images:
        corrupted = module.corrupt((img * 255).round().astype(np.uint8), severity, name)
        out.append(np.asarray(corrupted, dtype=np.float64) / 255.0)
    return np.clip(np.stack(out), 0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count32", type=int, default=64, help="32-px images (CIFAR table)")
    parser.add_argument("--count224", type=int, default=8, help="224-px images (ImageNet table)")
    parser.add_argument("--names", nargs="*", default=list(ref.NAMES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--imagecorruptions", action="store_true")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    frost_files = frost_texture_files()
    module = ref.import_imagecorruptions(compat=True) if args.imagecorruptions else None
    header = (
        "| corruption | size | sev | ours PSNR | ref PSNR | Δ | ours SSIM | ref SSIM | Δ |"
        + (" pkg PSNR | pkg SSIM |" if module else "")
        + " max |px Δ| |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for size, count in ((32, args.count32), (224, args.count224)):
        if count <= 0:
            continue
        images = ref.natural_test_images(count, size, seed=args.seed)
        for name in args.names:
            for severity in range(1, 6):
                start = time.perf_counter()
                a = ours(images, name, severity, args.seed)
                b = ref.reference_corrupt(images, name, severity, args.seed + 1, frost_files)
                pa, pb = ref.psnr(images, a).mean(), ref.psnr(images, b).mean()
                sa, sb = ref.ssim(images, a).mean(), ref.ssim(images, b).mean()
                row = (
                    f"| {name} | {size} | {severity} | {pa:.2f} | {pb:.2f} | {pa - pb:+.2f} "
                    f"| {sa:.3f} | {sb:.3f} | {sa - sb:+.3f} |"
                )
                if module:
                    if size == 224 and name in IMAGECORRUPTIONS_OK:
                        c = package(module, images, name, severity, args.seed + 2)
                        pc, sc = ref.psnr(images, c).mean(), ref.ssim(images, c).mean()
                        row += f" {pc:.2f} | {sc:.3f} |"
                    else:
                        row += " – | – |"
                diff = np.abs(a - b).max() if name in ref.DETERMINISTIC else float("nan")
                row += f" {diff:.1e} |" if name in ref.DETERMINISTIC else " – |"
                print(row, flush=True)
                del start


if __name__ == "__main__":
    main()
