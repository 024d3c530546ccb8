"""The torch JPEG codec gives libjpeg-turbo's pixels: PIL's encoder and decoder (the reference
``jpeg_compression`` calls them) against :func:`jpeg_roundtrip_torch`, over qualities 1-100,
colour and grey images, block-aligned and ragged sizes, smooth images and pure noise; and the
corruption gives the same images with either codec, on every device there is."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from robustart.corruptions import create_corruption
from robustart.corruptions.jpeg_codec import (
    dct_passes,
    jpeg_roundtrip_torch,
    quantization_tables,
    upsample_h2v2_fancy,
)
from robustart.corruptions.jpeg_compression import jpeg_roundtrip

QUALITIES = [1, 7, 10, 15, 18, 25, 40, 50, 58, 65, 80, 95, 100]
#: (channels, height, width): block-aligned, ragged, chroma 2 samples wide or less.
SHAPES = [(3, 32, 32), (3, 33, 35), (3, 17, 9), (3, 5, 7), (3, 3, 4), (1, 32, 32), (1, 13, 22)]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def pil_roundtrip(pixels: torch.Tensor, quality: int) -> torch.Tensor:
    """PIL's JPEG round trip of uint8 images (N, C, H, W), one at a time, as the reference."""
    out = []
    for image in pixels:
        array = image.permute(1, 2, 0).numpy()
        buffer = io.BytesIO()
        Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(
            buffer, "JPEG", quality=quality
        )
        decoded = np.asarray(Image.open(buffer))
        out.append(torch.from_numpy(decoded.reshape(*decoded.shape[:2], -1).copy()))
    return torch.stack(out).permute(0, 3, 1, 2)


def sample_images(channels: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """Two smooth images and two of uniform noise, uint8 (4, C, H, W)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(2, channels, max(height // 4, 1), max(width // 4, 1), generator=g)
    smooth = F.interpolate(low, size=(height, width), mode="bilinear", align_corners=False)
    noise = torch.rand(2, channels, height, width, generator=g)
    return (torch.cat([smooth, noise]) * 255).round().to(torch.uint8)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_torch_codec_gives_libjpegs_pixels(shape):
    pixels = sample_images(*shape)
    for quality in QUALITIES:
        expected = pil_roundtrip(pixels, quality)
        decoded = jpeg_roundtrip_torch(pixels, quality)
        assert decoded.dtype == torch.float64
        assert torch.equal(decoded.to(torch.uint8), expected), quality
        assert not torch.equal(expected, pixels)  # the codec changed something to compare


def test_torch_codec_at_224_px_and_a_flat_image():
    pixels = sample_images(3, 224, 224, seed=1)[1:3]  # one smooth, one noise
    for quality in (7, 25, 80):
        assert torch.equal(
            jpeg_roundtrip_torch(pixels, quality).to(torch.uint8), pil_roundtrip(pixels, quality)
        )
    flat = torch.full((1, 3, 24, 24), 77, dtype=torch.uint8)
    assert torch.equal(jpeg_roundtrip_torch(flat, 50).to(torch.uint8), pil_roundtrip(flat, 50))


def test_quantization_tables_follow_libjpeg_scaling():
    """jpeg_quality_scaling and jpeg_add_quant_table by hand: quality 25 scales by 200 %,
    quality 80 by 40 %, 100 gives all ones, 1 clamps at 255 (baseline)."""
    luma, chroma = quantization_tables(25)
    assert (int(luma[0, 0]), int(luma[0, 1]), int(chroma[7, 7])) == (32, 22, 198)
    luma, chroma = quantization_tables(80)
    assert (int(luma[0, 0]), int(luma[0, 2]), int(chroma[0, 0])) == (6, 4, 7)  # 4.0 → 4
    assert int(quantization_tables(100)[0].max()) == 1
    assert int(quantization_tables(1)[1].min()) == 255


def test_dct_passes_invert_each_other_on_flat_blocks():
    """A flat block of value v has DC 8 · 8 · (v − 128) after libjpeg's scaled forward DCT
    (factor 8) and no AC; the inverse passes give v back."""
    forward_rows, forward_columns, inverse_columns, inverse_rows = dct_passes()
    block = torch.full((1, 8, 8), 200.0, dtype=torch.float64) - 128
    coefficients = forward_columns.on_columns(forward_rows.on_rows(block))
    assert coefficients[0, 0, 0] == 8 * 8 * 72
    assert torch.count_nonzero(coefficients) == 1
    samples = inverse_rows.on_rows(inverse_columns.on_columns(coefficients / 8))
    assert torch.equal(samples + 128, torch.full((1, 8, 8), 200.0, dtype=torch.float64))


def test_fancy_upsampling_by_hand():
    """One row [0, 16]: the vertical sums are 4 · s (edge rows replicated), [0, 64]; then
    (3 · s + neighbour + 8 or 7) >> 4 with the edge sample as its own neighbour:
    (0 + 0 + 8) >> 4, (0 + 64 + 7) >> 4, (192 + 0 + 8) >> 4, (192 + 64 + 7) >> 4."""
    out = upsample_h2v2_fancy(torch.tensor([[[0.0, 16.0]]], dtype=torch.float64))
    assert out.shape == (1, 2, 4)
    assert out[0, 0].tolist() == out[0, 1].tolist() == [0, 4, 12, 16]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_both_codecs_give_the_corruption_the_same_images(device, dtype):
    g = torch.Generator().manual_seed(3)
    images = torch.rand(5, 3, 20, 28, generator=g).to(device, dtype)
    for quality in (10, 40):
        by_libjpeg = jpeg_roundtrip(images, quality, codec="libjpeg")
        by_torch = jpeg_roundtrip(images, quality, codec="torch")
        assert by_torch.device == images.device and by_torch.dtype == dtype
        assert torch.equal(by_torch, by_libjpeg)
    corruption = create_corruption("jpeg_compression")  # "auto": torch on CUDA
    assert torch.equal(corruption.apply_parameter(images, 40), by_torch)


def test_an_unknown_codec_is_refused():
    with pytest.raises(ValueError, match="codec must be"):
        jpeg_roundtrip(torch.rand(1, 3, 8, 8), 50, codec="nvjpeg")
