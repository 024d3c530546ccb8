"""Tiny random-weight AdaIN networks and style images written to disk for the tests (the real
VGG-19 weights are never downloaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from robustart.augment.adain import adain_decoder, vgg_encoder


def write_fake_adain(root: Path, num_styles: int = 3) -> dict[str, str]:
    """Write tiny encoder/decoder state dicts and ``num_styles`` random style PNGs under
    ``root``; returns the Stylize settings that point at them."""
    torch.manual_seed(0)
    root.mkdir(parents=True, exist_ok=True)
    torch.save(vgg_encoder("tiny").state_dict(), root / "encoder.pth")
    torch.save(adain_decoder("tiny").state_dict(), root / "decoder.pth")
    styles = root / "styles"
    styles.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(num_styles):
        pixels = rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
        pixels[..., i % 3] //= 4  # different colour statistics per style
        Image.fromarray(pixels).save(styles / f"style_{i}.png")
    return {
        "encoder": str(root / "encoder.pth"),
        "decoder": str(root / "decoder.pth"),
        "styles": str(styles),
        "arch": "tiny",
        "style_size": 32,
    }
