"""Corruptions: contracts, reference definitions, randomness and bad input."""

import io
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from robustart.corruptions import (
    CORRUPTIONS,
    corrupt,
    create_corruption,
    table_for_size,
)
from robustart.errors import ConfigError, InputRangeError, UnknownNameError
from robustart.utils import make_generator

FOUNDATION = [
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "gaussian_blur",
    "brightness",
    "contrast",
    "jpeg_compression",
]


def natural_images(n=6, size=32, seed=0):
    """Smooth colourful images (upsampled noise): blur and JPEG have something to remove."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, size // 4, size // 4, generator=g)
    smooth = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    texture = 0.15 * torch.rand(n, 3, size, size, generator=g)
    return (0.1 + 0.75 * smooth + texture).clamp(0, 1)


def test_foundation_corruptions_are_registered():
    assert set(FOUNDATION) <= set(CORRUPTIONS.names())


@pytest.mark.parametrize("name", CORRUPTIONS.names())
@pytest.mark.parametrize("size", [32, 224])
def test_shape_dtype_range_and_device_preserved(name, size):
    images = natural_images(2, size)
    for severity in (1, 3, 5):
        out = corrupt(images, name, severity, make_generator(0))
        assert out.shape == images.shape and out.dtype == images.dtype
        assert out.device == images.device
        assert out.min() >= 0 and out.max() <= 1
        assert not torch.equal(out, images)


#: Corruptions whose reference CIFAR table is, by definition, not monotonic in pixel distortion
#: (the reference port shows the same non-monotonic PSNR; see benchmarks/fidelity_corruptions.py).
NOT_MONOTONIC = {
    # severities 1-2 desaturate (a = 0.3, 0.1), 3-5 oversaturate from a = 1.5 up
    "saturate": "desaturation then oversaturation",
    # the affine jitter, which dominates, shrinks from 0.08 to 0.03 of the side as α grows
    "elastic_transform": "affine jitter decreases with severity",
    # severity 4 lowers the image weight (0.9 -> 0.85) at the same frost weight (0.4)
    "frost": "image weight falls while frost weight stays",
    # severity 3 blurs more (σ 0.4) with the same single shuffle pass as severity 2
    "glass_blur": "σ and iterations trade off",
    # severities 1-3 are water drops, 4-5 mud: different effects, not one scale
    "spatter": "liquid then mud",
}


@pytest.mark.parametrize("name", CORRUPTIONS.names())
def test_distortion_grows_with_severity(name):
    images = natural_images(8, 32)
    errors = []
    for severity in range(1, 6):
        out = corrupt(images, name, severity, make_generator(0))
        errors.append(F.mse_loss(out, images).item())
    assert min(errors) > 0, errors
    if name in NOT_MONOTONIC:  # explicit exemption, reason above
        return
    assert all(b >= a * 0.98 for a, b in itertools.pairwise(errors)), errors
    assert errors[-1] > errors[0]


@pytest.mark.parametrize("name", CORRUPTIONS.names())
def test_same_seed_same_output(name):
    images = natural_images(3)
    a = corrupt(images, name, 3, make_generator(7))
    b = corrupt(images, name, 3, make_generator(7))
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["gaussian_noise", "shot_noise", "impulse_noise"])
def test_random_corruptions_differ_per_seed_and_per_image(name):
    images = natural_images(1).expand(2, -1, -1, -1).contiguous()
    a = corrupt(images, name, 3, make_generator(1))
    b = corrupt(images, name, 3, make_generator(2))
    assert not torch.equal(a, b)
    assert not torch.equal(a[0], a[1])  # per-image randomness within a batch


def test_unknown_names_and_bad_severities_are_refused():
    with pytest.raises(UnknownNameError, match="Did you mean: gaussian_noise"):
        create_corruption("gausian_noise")
    images = natural_images(1)
    for bad in (0, 6, 2.5, "3", True):
        with pytest.raises(ConfigError, match="severity must be an integer from 1 to 5"):
            corrupt(images, "contrast", bad)
    with pytest.raises(InputRangeError, match=r"\[0, 1\]"):
        corrupt(images * 255, "contrast", 1)


def test_size_rule():
    assert table_for_size(32, 32) == ("cifar", 1.0)
    assert table_for_size(224, 224) == ("imagenet", 1.0)
    assert table_for_size(64, 80) == ("cifar", 2.0)
    assert table_for_size(112, 112) == ("imagenet", 0.5)


# ----------------------------------------------------------------- reference definitions
def test_gaussian_blur_matches_scipy_reference():
    from scipy.ndimage import gaussian_filter

    for size in (32, 224):
        images = natural_images(2, size)
        corruption = create_corruption("gaussian_blur")
        for severity in (1, 5):
            sigma, _ = corruption.parameter(severity, size, size)
            ours = corruption(images, severity)
            ref = np.stack(
                [
                    gaussian_filter(
                        img.permute(1, 2, 0).numpy(),
                        sigma=(sigma, sigma, 0),
                        mode="nearest",
                        truncate=4.0,
                    )
                    for img in images
                ]
            )
            np.testing.assert_allclose(ours.permute(0, 2, 3, 1).numpy(), ref, atol=2e-6)


@pytest.mark.parametrize("border", ["nearest", "reflect", "mirror", "wrap", "constant"])
def test_filter_axis_is_scipy_correlate1d(border):
    """The banded matrix product (blocks of outputs times the inputs they read) is 1-D
    correlation under every border: axes of one block and of several (with a short last
    block), kernels of 2 to 151 taps (wider than the axis) and both axes; the path for
    inputs that need gradients gives the same values."""
    from scipy.ndimage import correlate1d

    from robustart.corruptions.kernels import filter_axis

    generator = torch.Generator().manual_seed(0)
    for height, width in ((7, 9), (70, 131), (224, 97)):
        images = torch.rand(2, 3, height, width, generator=generator, dtype=torch.float64)
        for taps in (2, 3, 15, 151):
            kernel = torch.rand(taps, generator=generator, dtype=torch.float64)
            for dim, axis in ((-1, 3), (-2, 2)):
                ours = filter_axis(images, kernel, dim, border)
                mode = border if border != "wrap" else "grid-wrap"
                ref = correlate1d(images.numpy(), kernel.numpy(), axis=axis, mode=mode)
                np.testing.assert_allclose(ours.numpy(), ref, atol=1e-12, err_msg=f"{taps} {dim}")
                with torch.enable_grad():
                    tracked = filter_axis(images.clone().requires_grad_(), kernel, dim, border)
                torch.testing.assert_close(tracked.detach(), ours, rtol=0, atol=1e-12)


def test_motion_blur_shifted_sums_equal_the_fourier_route():
    """The CPU's per-image shifted sums and the Fourier route (other devices) are the same
    correlation: angles on rounding ties, taps dropped where the line leaves a small image,
    borders, and half precision computed in float32."""
    from robustart.corruptions.kernels import motion_blur

    generator = torch.Generator().manual_seed(0)
    angles = torch.tensor([0.0, 30.0, -120.0, 45.0, 90.0, -45.0, 12.5])
    for size, radius, sigma in ((224, 15, 5.0), (32, 3, 1.0), (9, 20, 15.0)):
        images = torch.rand(7, 3, size, size, generator=generator, dtype=torch.float64)
        for border in ("nearest", "mirror"):
            shifted = motion_blur(images, radius, sigma, angles, border, method="shifted")
            fourier = motion_blur(images, radius, sigma, angles, border, method="fft")
            torch.testing.assert_close(shifted, fourier, rtol=0, atol=1e-12)
            chosen = shifted if size >= 48 else fourier  # the CPU's choice by image size
            assert torch.equal(motion_blur(images, radius, sigma, angles, border), chosen)
    half = motion_blur(images.half(), 20, 15.0, angles, method="shifted")
    assert half.dtype == torch.float16
    exact = motion_blur(images.half().double(), 20, 15.0, angles, method="fft")
    torch.testing.assert_close(half.double(), exact, rtol=0, atol=1e-3)


def test_brightness_matches_hsv_reference():
    from matplotlib.colors import hsv_to_rgb, rgb_to_hsv

    images = natural_images(3)
    images[0, :, :4, :4] = 0  # black pixels take the grey branch
    for severity in (1, 5):
        c = create_corruption("brightness").cifar[severity - 1]
        ours = corrupt(images, "brightness", severity).permute(0, 2, 3, 1).numpy()
        hsv = rgb_to_hsv(images.permute(0, 2, 3, 1).numpy())
        hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
        np.testing.assert_allclose(ours, hsv_to_rgb(hsv), atol=1e-5)


def test_contrast_uses_per_channel_means():
    images = natural_images(2)
    c = create_corruption("contrast").cifar[2]
    x = images.permute(0, 2, 3, 1).numpy()
    means = x.mean(axis=(1, 2), keepdims=True)
    ref = np.clip((x - means) * c + means, 0, 1)
    ours = corrupt(images, "contrast", 3).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_jpeg_matches_pil_codec():
    images = natural_images(4, 64)
    for severity in (1, 5):
        quality = create_corruption("jpeg_compression").cifar[severity - 1]
        ours = corrupt(images, "jpeg_compression", severity)
        ref = []
        for img in images:
            pil = Image.fromarray((img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
            buffer = io.BytesIO()
            pil.save(buffer, "JPEG", quality=quality)
            ref.append(np.asarray(Image.open(buffer)).astype(np.float32) / 255)
        diff = np.abs(ours.permute(0, 2, 3, 1).numpy() - np.stack(ref))
        assert diff.mean() < 0.5 / 255 and diff.max() <= 3 / 255, (diff.mean(), diff.max())


def test_gaussian_noise_statistics():
    images = torch.full((4, 3, 64, 64), 0.5)
    sigma = create_corruption("gaussian_noise").cifar[4]
    noise = corrupt(images, "gaussian_noise", 5, make_generator(0)) - images
    assert abs(noise.mean().item()) < 0.003
    assert abs(noise.std().item() - sigma) < 0.003


def test_shot_noise_statistics():
    images = torch.full((4, 3, 64, 64), 0.4)
    lam = create_corruption("shot_noise").cifar[4]
    out = corrupt(images, "shot_noise", 5, make_generator(0))
    # Poisson(x λ) / λ has mean x and variance x / λ
    assert abs(out.mean().item() - 0.4) < 0.003
    assert abs(out.var().item() - 0.4 / lam) < 0.1 * 0.4 / lam


def test_impulse_noise_is_drawn_per_channel():
    images = torch.full((8, 3, 32, 32), 0.5)
    amount = create_corruption("impulse_noise").cifar[4]
    out = corrupt(images, "impulse_noise", 5, make_generator(0))
    flipped = out != 0.5
    assert abs(flipped.float().mean().item() - amount) < 0.01
    assert set(out[flipped].unique().tolist()) == {0.0, 1.0}
    per_pixel = flipped.sum(dim=1)  # channels flipped at each pixel
    assert ((per_pixel > 0) & (per_pixel < 3)).any()  # not one mask shared by channels


def test_catalog_lists_and_categories_agree():
    from robustart.corruptions import BENCHMARK_CORRUPTIONS, CORRUPTION_CATEGORIES

    assert len(BENCHMARK_CORRUPTIONS) == 15 and BENCHMARK_CORRUPTIONS[0] == "gaussian_noise"
    assert BENCHMARK_CORRUPTIONS[-1] == "jpeg_compression"
    for name in CORRUPTIONS.names():
        assert name in CORRUPTION_CATEGORIES[create_corruption(name).category], name
