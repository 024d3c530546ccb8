"""JPEG corruption: robustart's two codecs against the reference's per-image PIL round trip.

Times, interleaved, per image:

* **reference**: the reference ``jpeg_compression`` (PIL ``save(..., "JPEG", quality=q)`` and
  ``Image.open``) on uint8 images one by one, on the CPU;
* **libjpeg**: ``jpeg_roundtrip(..., codec="libjpeg")`` on a float batch: libjpeg-turbo on the
  CPU (the default for CPU images), with the copy to and from the device when ``--device`` is
  not the CPU;
* **torch**: ``jpeg_roundtrip(..., codec="torch")``: libjpeg's lossy arithmetic in batched
  torch on ``--device`` (the default off the CPU);

and checks that both codecs give the reference's pixels on the timed images. With ``--forward``
it also times a ResNet-50 forward pass on the same batch (the issue's yardstick on a GPU). With
``--breakdown`` it times, per image and one step at a time on ``--ref-images`` images, the
pieces a libjpeg round trip is made of: PIL's and torchvision's encoders and decoders and the
float ↔ uint8 conversions (the floor of any codec-based JPEG on the CPU).

Usage::

    python benchmarks/bench_jpeg_codecs.py --threads 1 --device cpu
    python benchmarks/bench_jpeg_codecs.py --device cuda --forward
    python benchmarks/bench_jpeg_codecs.py --threads 1 --device cpu --sizes 224 --breakdown
"""

from __future__ import annotations

import argparse
import io
import statistics

import numpy as np
import torch
import torch.nn.functional as F
from common import (
    add_device_arguments,
    describe_device,
    device_from_arguments,
    paired_ratio,
    timeit_interleaved,
)
from PIL import Image

from robustart.corruptions.jpeg_compression import jpeg_roundtrip
from robustart.models import create_model

#: Batch (ours) and reference images per size unless given.
DEFAULT_BATCH = {32: 256, 224: 32}
DEFAULT_REF_IMAGES = {32: 64, 224: 8}


def natural_images(count: int, size: int) -> torch.Tensor:
    """Smooth images with texture (JPEG's work depends on the content), (N, 3, S, S) in [0, 1]."""
    g = torch.Generator().manual_seed(0)
    low = torch.rand(count, 3, max(size // 8, 1), max(size // 8, 1), generator=g)
    smooth = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    return (0.85 * smooth + 0.15 * torch.rand(count, 3, size, size, generator=g)).clamp(0, 1)


def reference_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """The reference corruption on one uint8 (H, W, 3) image."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer))


def breakdown(args: argparse.Namespace, size: int) -> None:
    """Median ms per image of each step of a libjpeg round trip on the CPU."""
    import warnings

    from torchvision.io import decode_jpeg, encode_jpeg

    warnings.simplefilter("ignore", DeprecationWarning)  # torchvision's codec is deprecated
    count = args.ref_images or DEFAULT_REF_IMAGES[size]
    images = natural_images(count, size)
    chw = (images * 255).round().to(torch.uint8)
    hwc = [image.permute(1, 2, 0).contiguous().numpy() for image in chw]
    encoded = []
    for image in hwc:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=args.quality)
        encoded.append(buffer.getvalue())
    as_tensors = [torch.frombuffer(bytearray(data), dtype=torch.uint8) for data in encoded]
    decoded = torch.stack(decode_jpeg(as_tensors))

    def pil_encode() -> None:
        for image in hwc:
            Image.fromarray(image).save(io.BytesIO(), "JPEG", quality=args.quality)

    steps = {
        "PIL encode": pil_encode,
        "PIL decode": lambda: [np.asarray(Image.open(io.BytesIO(d))) for d in encoded],
        "torchvision encode (CHW list)": lambda: encode_jpeg(list(chw), quality=args.quality),
        "torchvision decode": lambda: decode_jpeg(as_tensors),
        "float -> uint8 (CHW)": lambda: (images * 255).round_().clamp_(0, 255).byte(),
        "uint8 -> float": lambda: decoded.float().div_(255),
    }
    times = timeit_interleaved(steps, torch.device("cpu"), args.repeats)
    print(f"\n{size} px, quality {args.quality}, {count} images: one step of the round trip")
    print("| step | ms/img |")
    print("|---|---|")
    for name, ts in times.items():
        print(f"| {name} | {statistics.median(ts) / count * 1e3:.3f} |")


def measure(args: argparse.Namespace, size: int, device: torch.device) -> None:
    batch = args.batch or DEFAULT_BATCH[size]
    ref_count = args.ref_images or DEFAULT_REF_IMAGES[size]
    images = natural_images(batch, size).to(device)
    uint8 = [
        (image.permute(1, 2, 0) * 255).round().byte().cpu().numpy() for image in images[:ref_count]
    ]
    for codec in ("libjpeg", "torch"):
        decoded = jpeg_roundtrip(images[:ref_count], args.quality, codec=codec)
        expected = np.stack([reference_roundtrip(u, args.quality) for u in uint8])
        got = (decoded.permute(0, 2, 3, 1) * 255).round().byte().cpu().numpy()
        assert np.array_equal(got, expected), f"{codec} codec differs from the reference"
    fns = {
        "reference": lambda: [reference_roundtrip(u, args.quality) for u in uint8],
        "libjpeg": lambda: jpeg_roundtrip(images, args.quality, codec="libjpeg"),
        "torch": lambda: jpeg_roundtrip(images, args.quality, codec="torch"),
    }
    if args.forward:
        model = create_model("resnet50", 1000, 3).to(device).eval()

        def forward() -> None:
            with torch.no_grad():
                model(images)

        fns["resnet50 forward"] = forward
    times = timeit_interleaved(fns, device, args.repeats)
    counts = {name: ref_count if name == "reference" else batch for name in fns}
    per_image = {name: [t / counts[name] for t in ts] for name, ts in times.items()}
    print(
        f"\n{size} px, quality {args.quality}: batch {batch} vs {ref_count} reference images; "
        f"{describe_device(device)}; both codecs equal the reference on the timed images"
    )
    print("| method | ms/img | reference ÷ method |")
    print("|---|---|---|")
    for name, ts in per_image.items():
        ratio = paired_ratio(per_image["reference"], ts)
        print(f"| {name} | {statistics.median(ts) * 1e3:.3f} | {ratio:.2f}× |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_device_arguments(parser, repeats=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 224], help="image sides")
    parser.add_argument("--quality", type=int, default=18, help="JPEG quality (ImageNet-C 2)")
    parser.add_argument("--batch", type=int, default=0, help="batch (0: per-size default)")
    parser.add_argument(
        "--ref-images", type=int, default=0, help="reference images (0: per-size default)"
    )
    parser.add_argument("--forward", action="store_true", help="also time a ResNet-50 forward")
    parser.add_argument(
        "--breakdown", action="store_true", help="also time each step of a libjpeg round trip"
    )
    args = parser.parse_args()
    device = device_from_arguments(args)
    for size in args.sizes:
        measure(args, size, device)
        if args.breakdown:
            breakdown(args, size)


if __name__ == "__main__":
    main()
