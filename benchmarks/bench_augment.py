"""Throughput of each training augmentation on the device vs in the CPU data loader.

The same images go through every augmentation two ways:

* ``device``: where robustart runs it. Batch augmentations (Mixup, CutMix, random erasing,
  AdaIN stylization) run on whole batches on the device; per-image policies (AutoAugment,
  RandAugment, TrivialAugment, AugMix) are also timed image by image on the device, to show why
  they stay in the loader. Kornia's batch versions of the policies are listed for reference:
  they draw one sub-policy per batch, so they are a different method.
* ``CPU loader``: the same operation on CPU tensors with one thread, as one DataLoader worker
  runs it (per image for policies and torchvision's RandomErasing; the batch module in a
  collate function for Mixup/CutMix/stylize). Multiply by ``num_workers`` for a loader.

Stylization uses the full-size VGG-19/decoder architecture with random weights (timing only)
and random style images, unless ``--adain-dir`` holds ``vgg_normalised.pth``/``decoder.pth``.

    python benchmarks/bench_augment.py --batch 256 --size 32
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from common import describe_device, pick_device, timeit
from PIL import Image
from torch import Tensor
from torchvision.transforms import v2

from robustart.augment import build_augment_policy, build_batch_augmentations
from robustart.augment.adain import adain_decoder, vgg_encoder

BATCH_SPECS = {
    "mixup": {"name": "mixup", "alpha": 1.0},
    "cutmix": {"name": "cutmix", "alpha": 1.0},
    "mixup_cutmix": {"name": "mixup_cutmix"},
    "random_erasing": {"name": "random_erasing", "prob": 0.5},
}
POLICY_SPECS = {
    "autoaugment": {"name": "autoaugment", "policy": "cifar10"},
    "randaugment": {"name": "randaugment", "n": 2, "m": 9},
    "trivialaugment": {"name": "trivialaugment"},
    "augmix (3 views)": {"name": "augmix", "views": 3},
}


def kornia_policies() -> dict[str, Callable[[Tensor], Tensor]]:
    from kornia.augmentation import auto

    return {
        "autoaugment": auto.AutoAugment("cifar10"),
        "randaugment": auto.RandAugment(n=2, m=9),
        "trivialaugment": auto.TrivialAugment(),
    }


def adain_settings(folder: Path, adain_dir: str | None) -> dict:
    """Stylize settings: real weights from ``adain_dir`` or random full-size ones in ``folder``."""
    if adain_dir:
        encoder, decoder = Path(adain_dir) / "vgg_normalised.pth", Path(adain_dir) / "decoder.pth"
    else:
        encoder, decoder = folder / "encoder.pth", folder / "decoder.pth"
        torch.save(vgg_encoder().state_dict(), encoder)
        torch.save(adain_decoder().state_dict(), decoder)
    styles = folder / "styles"
    styles.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(
            styles / f"{i}.png"
        )
    return {
        "name": "stylize",
        "encoder": str(encoder),
        "decoder": str(decoder),
        "styles": str(styles),
        "prob": 1.0,
        "style_size": 128,
    }


def per_image(fn: Callable[[Tensor], Tensor]) -> Callable[[Tensor], object]:
    return lambda images: [fn(image) for image in images]


def rate(fn: Callable[[], object], n: int, device: torch.device, repeats: int) -> float:
    return n / timeit(fn, device, repeats=repeats, warmup=1)


def cpu_single_thread(fn: Callable[[], object], n: int, repeats: int) -> float:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return rate(fn, n, torch.device("cpu"), repeats)
    finally:
        torch.set_num_threads(threads)


def time_batch_augmentation(
    spec: dict, images: Tensor, labels: Tensor, device: torch.device, repeats: int
) -> tuple[float, float]:
    """Images/s of a batch augmentation on ``device`` and on the CPU with one thread."""
    on_device = build_batch_augmentations([spec], 10)[0].to(device)
    device_images, device_labels = images.to(device), labels.to(device)
    dev = rate(lambda: on_device(device_images, device_labels), len(images), device, repeats)
    on_cpu = build_batch_augmentations([spec], 10)[0]
    return dev, cpu_single_thread(lambda: on_cpu(images, labels), len(images), repeats)


def time_policy(
    spec: dict, images: Tensor, device: torch.device, device_images: int, repeats: int
) -> tuple[float, float]:
    """Images/s of a per-image policy, one by one on ``device`` (the first ``device_images``)
    and in a one-thread CPU worker."""
    policy = build_augment_policy(spec)
    subset = images[:device_images].to(device)
    dev = rate(lambda: per_image(policy.apply)(subset), len(subset), device, repeats)
    return dev, cpu_single_thread(lambda: per_image(policy)(images), len(images), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--device-per-image",
        type=int,
        default=64,
        help="images timed one by one on the device for the policies",
    )
    parser.add_argument("--adain-dir", default=None)
    parser.add_argument("--threads", type=int, default=0, help="torch threads on the device")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    torch.manual_seed(0)
    cpu_images = torch.rand(args.batch, 3, args.size, args.size)
    labels = torch.randint(0, 10, (args.batch,))
    images = cpu_images.to(device)
    n, rows = args.batch, []

    with tempfile.TemporaryDirectory() as tmp:
        specs = {**BATCH_SPECS, "stylize (AdaIN)": adain_settings(Path(tmp), args.adain_dir)}
        for label, spec in specs.items():
            dev, cpu = time_batch_augmentation(spec, cpu_images, labels, device, args.repeats)
            rows.append((label, dev, cpu, "batch module; CPU: same module in a collate_fn"))
    erasing = v2.RandomErasing(p=0.5, value="random")
    cpu = cpu_single_thread(lambda: per_image(erasing)(cpu_images), n, args.repeats)
    rows.append(("random_erasing (torchvision)", None, cpu, "per image in the loader"))

    kornia = kornia_policies()
    for label, spec in POLICY_SPECS.items():
        dev, cpu = time_policy(spec, cpu_images, device, args.device_per_image, args.repeats)
        rows.append((label, dev, cpu, "per image; device: torchvision per image on the device"))
        name = label.split(" ")[0]
        if name in kornia:
            op = kornia[name].to(device)
            dev = rate(lambda op=op: op(images), n, device, args.repeats)
            rows.append((f"{name} (kornia, 1 sub-policy/batch)", dev, None, "not per image"))

    print(
        f"Augmentation throughput, batch {n}×3×{args.size}×{args.size}, device "
        f"{describe_device(device)}; CPU loader = one worker (1 thread), median of "
        f"{args.repeats}"
    )
    print("| augmentation | device (images/s) | CPU loader, per worker (images/s) | note |")
    print("|---|---:|---:|---|")
    for label, dev, cpu, note in rows:
        dev_text = f"{dev:,.0f}" if dev is not None else "–"
        cpu_text = f"{cpu:,.0f}" if cpu is not None else "–"
        print(f"| {label} | {dev_text} | {cpu_text} | {note} |")


if __name__ == "__main__":
    main()
