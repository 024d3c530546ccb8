"""System noise: decoders, resizers, the validation transform, the CIFAR variant, evaluation."""

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from robustart.errors import ConfigError, DatasetNotFoundError, InputRangeError, UnknownNameError
from robustart.evaluation.benchmarks import (
    SystemNoiseResult,
    aggregate_accuracies,
    evaluate_cifar_system_noise,
    evaluate_system_noise,
)
from robustart.system_noise import (
    DECODERS,
    RESIZERS,
    CifarResizeVariant,
    SystemNoiseVariant,
    cifar_variants,
    imagenet_s_variants,
    jpeg_quality_variants,
    resize_size_for,
    shorter_side_size,
    validation_transform,
)


def smooth_image(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth colourful uint8 image (JPEG-friendly, so lossy errors stay small)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    channels = [
        np.sin(2 * np.pi * (f * xx + g * yy) + p) for f, g, p in rng.uniform(0.5, 2, (3, 3))
    ]
    return np.clip(127.5 + 100 * np.stack(channels, axis=-1), 0, 255).astype(np.uint8)


def encode(image: np.ndarray, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


class MeanBrightness(nn.Module):
    """A real (parameter-free) classifier: class 1 if the mean intensity exceeds 0.5."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([0.5 - m, m - 0.5], dim=1)


# ------------------------------------------------------------------ decoders
def test_registries_hold_the_decoders_and_resizers():
    assert DECODERS.names() == ["pil", "opencv", "torchvision"]
    assert set(RESIZERS.names()) == {
        *(f"pil_{m}" for m in ("nearest", "bilinear", "box", "hamming", "bicubic", "lanczos")),
        *(f"cv2_{m}" for m in ("nearest", "bilinear", "area", "cubic", "lanczos")),
    }
    assert len(imagenet_s_variants()) == 33
    with pytest.raises(UnknownNameError, match="cv2_area"):
        SystemNoiseVariant("pil", "cv2_aera")


def test_decoders_are_exact_on_png():
    image = smooth_image()
    data = encode(image, "PNG")
    for name in DECODERS:
        decoded = DECODERS.get(name)(data)
        assert decoded.dtype == np.uint8 and np.array_equal(decoded, image), name


def test_decoders_agree_closely_on_jpeg_and_all_lose_information():
    image = smooth_image()
    data = encode(image, "JPEG", quality=75)
    decoded = {name: DECODERS.get(name)(data).astype(int) for name in DECODERS}
    for name, pixels in decoded.items():
        assert pixels.shape == image.shape
        error = np.abs(pixels - image).mean()
        assert 0.2 < error < 6, name  # lossy, but only slightly
        # The decoders may differ by rounding in the IDCT / chroma upsampling, never by more
        assert np.abs(pixels - decoded["pil"]).max() <= 4, name
    with pytest.raises(InputRangeError, match="decode"):
        DECODERS.get("pil")(b"not an image")


# ------------------------------------------------------------------ resizers and the transform
def test_resizers_produce_the_requested_size_and_differ():
    image = smooth_image(120, 180)
    rng = np.random.default_rng(1)
    noisy = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    outputs = {}
    for name in RESIZERS:
        out = RESIZERS.get(name)(image, (72, 108))
        assert out.shape == (72, 108, 3) and out.dtype == np.uint8, name
        # smooth content: every interpolation is close to the bilinear one
        assert np.abs(out.astype(int) - RESIZERS.get("pil_bilinear")(image, (72, 108))).mean() < 4
        outputs[name] = RESIZERS.get(name)(noisy, (23, 31))
    # on noise, nearest and area differ clearly; Pillow and OpenCV bilinear differ too
    assert np.abs(outputs["cv2_nearest"].astype(int) - outputs["cv2_area"]).mean() > 10
    assert not np.array_equal(outputs["pil_bilinear"], outputs["cv2_bilinear"])
    with pytest.raises(InputRangeError, match="uint8"):
        RESIZERS.get("pil_box")(image.astype(np.float32), (5, 5))
    assert RESIZERS.get("cv2_area")(image[:1, :1], (3, 2)).shape == (3, 2, 3)


def test_validation_transform_resizes_by_8_over_7_and_centre_crops():
    assert resize_size_for(224) == 256 and resize_size_for(28) == 32
    assert shorter_side_size(300, 400, 256) == (256, 341)  # int(256·400/300) = 341
    assert shorter_side_size(70, 50, 32) == (44, 32)
    # a gradient image: after resizing to 32 × 44 with nearest and cropping 28 from the centre,
    # column j of the crop comes from column (j + 8) of the 44-wide image
    width = 44
    ramp = np.tile((np.arange(width) * 5).astype(np.uint8)[None, :, None], (32, 1, 3))
    out = validation_transform(ramp, RESIZERS.get("pil_nearest"), crop_size=28)
    assert out.shape == (3, 28, 28) and out.dtype == torch.float32
    left = round((width - 28) / 2)
    assert left == 8
    assert torch.allclose(out[0, 0], torch.arange(left, left + 28) * 5 / 255.0)
    variant = SystemNoiseVariant("opencv", "cv2_cubic")
    x = variant(encode(smooth_image(300, 400), "PNG"))
    assert x.shape == (3, 224, 224) and x.min() >= 0 and x.max() <= 1


def test_jpeg_quality_variants_degrade_with_quality():
    data = encode(smooth_image(64, 64), "PNG")
    reference = SystemNoiseVariant()(data, crop_size=56)
    errors = {
        v.jpeg_quality: (v(data, crop_size=56) - reference).abs().mean().item()
        for v in jpeg_quality_variants((95, 50, 10))
    }
    assert 0 < errors[95] < errors[50] < errors[10]
    assert [v.name for v in jpeg_quality_variants((30,))] == ["pil-pil_bilinear-q30"]
    with pytest.raises(ConfigError, match="jpeg_quality"):
        SystemNoiseVariant(jpeg_quality=0)


# ------------------------------------------------------------------ CIFAR variant
def test_cifar_variants_change_images_but_keep_shape_and_range():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (4, 3, 32, 32), generator=g).float() / 255  # 8-bit images
    variants = cifar_variants()
    assert [v.name for v in variants][:4] == [
        "nearest-24",
        "nearest-28",
        "nearest-40",
        "nearest-48",
    ]
    assert len(variants) == 12
    for variant in variants:
        out = variant(images)
        assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1, variant.name
        assert not torch.equal(out, images), variant.name
        assert torch.equal(out * 255, (out * 255).round()), variant.name  # 8-bit values
    # nearest 32 → 64 → 32 duplicates and then picks pixels: the identity (a sanity check
    # that the resizing is real resizing and not noise)
    assert torch.equal(CifarResizeVariant("nearest", 64)(images), images)
    with pytest.raises(ConfigError, match="size"):
        CifarResizeVariant("bilinear", 1)


# ------------------------------------------------------------------ evaluation
def test_aggregate_accuracies_hand_computed():
    mean, std = aggregate_accuracies({"a": 1.0, "b": 0.5, "c": 0.75})
    assert mean == pytest.approx(0.75)
    assert std == pytest.approx(np.sqrt((0.25**2 + 0.25**2 + 0) / 3))
    result = SystemNoiseResult({"a": 0.6, "b": 0.8}, num_images=5)
    assert result.metrics() == pytest.approx(
        {
            "system_noise/a": 0.6,
            "system_noise/b": 0.8,
            "system_noise/mean": 0.7,
            "system_noise/std": 0.1,
        }
    )
    assert result.to_dict()["max"] == 0.8
    with pytest.raises(ConfigError, match="no system-noise variants"):
        aggregate_accuracies({})


def write_brightness_folder(root: Path) -> None:
    """Three bright and two dark images; one dark image is (wrongly) in the bright class."""
    for folder, values in (("0_dark", [30, 60]), ("1_bright", [200, 220, 40])):
        (root / folder).mkdir(parents=True)
        for i, v in enumerate(values):
            pixels = np.clip(smooth_image(40, 50, seed=i) // 8 + v, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / folder / f"{i}.png")


def test_evaluate_system_noise_on_a_folder_with_a_tiny_model(tmp_path):
    write_brightness_folder(tmp_path)
    variants = [
        SystemNoiseVariant("pil", "pil_bilinear"),
        SystemNoiseVariant("opencv", "cv2_area"),
        SystemNoiseVariant("torchvision", "pil_lanczos", jpeg_quality=50),
    ]
    result = evaluate_system_noise(MeanBrightness(), tmp_path, variants, crop_size=28, batch_size=2)
    # 4 of 5 correct under every variant (the dark image labelled "bright" is always wrong)
    assert result.accuracy == pytest.approx(
        {"pil-pil_bilinear": 0.8, "opencv-cv2_area": 0.8, "torchvision-pil_lanczos-q50": 0.8}
    )
    assert result.num_images == 5 and result.mean == pytest.approx(0.8)
    assert result.std == pytest.approx(0, abs=1e-12)
    # explicit (file, label) list; the output transform sees the logits before the argmax
    files = sorted((tmp_path / "1_bright").glob("*.png"))
    flipped = evaluate_system_noise(
        MeanBrightness(),
        [(f, 0) for f in files],
        variants[:1],
        crop_size=28,
        output_transform=lambda logits: -logits,
    )
    assert flipped.accuracy == {"pil-pil_bilinear": pytest.approx(2 / 3)}
    with pytest.raises(DatasetNotFoundError, match="not found"):
        evaluate_system_noise(MeanBrightness(), [(tmp_path / "nope.png", 0)], variants)
    with pytest.raises(ConfigError, match="repeat"):
        evaluate_system_noise(MeanBrightness(), tmp_path, [variants[0], variants[0]])


def test_evaluate_cifar_system_noise_counts_per_variant():
    # constant bright images labelled 1 and dark ones labelled 0: resizing keeps them constant
    images = torch.cat([torch.full((3, 3, 32, 32), 0.8), torch.full((2, 3, 32, 32), 0.1)])
    labels = torch.tensor([1, 1, 1, 0, 0])
    labels[2] = 0  # one wrong label → 4/5 everywhere
    result = evaluate_cifar_system_noise(MeanBrightness(), images, labels, batch_size=2)
    assert result.clean == pytest.approx(0.8)
    assert len(result.accuracy) == 12
    assert list(result.accuracy.values()) == pytest.approx([0.8] * 12)
    assert result.std == pytest.approx(0.0)
    with pytest.raises(ConfigError, match="labels"):
        evaluate_cifar_system_noise(MeanBrightness(), images, labels[:3])
