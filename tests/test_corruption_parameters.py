"""Explicit corruption parameters (the functional forms, ``apply_parameter``) are checked.

Before, a NaN noise level or contrast factor gave NaN images, a shot-noise rate of -5 black
ones, a pixelation fraction of 0 grey ones and an empty zoom range unchanged ones, all returned
as corrupted images; others failed with raw ValueError, ZeroDivisionError or kornia errors.
"""

from __future__ import annotations

import math

import pytest
import torch

from robustart.corruptions import CORRUPTIONS, create_corruption
from robustart.corruptions import functional as F
from robustart.corruptions.sampling import scaled_poisson, table_is_exact
from robustart.errors import ConfigError, InputRangeError, NonFiniteError

IMAGES = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", CORRUPTIONS.names())
def test_every_table_parameter_passes_its_bounds(name):
    corruption = create_corruption(name)
    for size in (16, 32, 64, 100, 224, 320):
        for severity in range(1, 6):
            corruption.check_parameter(corruption.parameter(severity, size, size)[0])


@pytest.mark.parametrize("name", CORRUPTIONS.names())
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_parameters_are_refused_by_every_corruption(name, bad):
    corruption = create_corruption(name)
    param, _ = corruption.parameter(3, 32, 32)
    entries = list(param) if isinstance(param, tuple) else [param]
    for i in range(len(entries)):
        broken = [*entries[:i], bad, *entries[i + 1 :]]
        with pytest.raises(ConfigError, match=f"corruption '{name}'.*finite"):
            corruption.apply_parameter(IMAGES, tuple(broken) if len(broken) > 1 else broken[0])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: F.gaussian_noise(IMAGES, -0.1), "sigma must be a number >= 0"),
        (lambda: F.shot_noise(IMAGES, 0), r"rate must be a number in \(0, 1e\+12\]"),
        (lambda: F.shot_noise(IMAGES, -5), r"rate must be a number in \(0, 1e\+12\]"),
        (lambda: F.impulse_noise(IMAGES, 1.5), r"amount must be a number in \[0, 1\]"),
        (lambda: F.defocus_blur(IMAGES, -3, 0.1), "radius must be a number > 0"),
        (lambda: F.gaussian_blur(IMAGES, 0), "sigma must be a number > 0"),
        (
            lambda: F.glass_blur(IMAGES, 0.5, 1, 1.5),
            r"iterations must be a whole number in \[0, 100\]",
        ),
        (lambda: F.zoom_blur(IMAGES, 1.2, 1.0, 0.01), "start must be below stop"),
        (lambda: F.zoom_blur(IMAGES, 1.0, 1.1, 0.0), "step must be a number > 0"),
        (lambda: F.contrast(IMAGES, -1), "factor must be a number >= 0"),
        (lambda: F.pixelate(IMAGES, 0), r"fraction must be a number in \(0, 1\]"),
        (lambda: F.pixelate(IMAGES, 1.5), r"fraction must be a number in \(0, 1\]"),
        (lambda: F.jpeg_compression(IMAGES, 0), r"quality must be a whole number in \[1, 100\]"),
        (lambda: F.jpeg_compression(IMAGES, 101), r"quality must be a whole number in \[1, 100\]"),
        (lambda: F.jpeg_compression(IMAGES, 50.5), "quality must be a whole number"),
        (lambda: F.fog(IMAGES, 1.0, 0.5), "wibble_decay must be a number > 1"),
        (lambda: F.saturate(IMAGES, -2.0), "factor must be a number >= 0"),
        (lambda: F.brightness(IMAGES, "bright"), "delta must be a number"),
    ],
    ids=lambda value: "" if callable(value) else value.split(" must")[0].replace("\\", ""),
)
def test_out_of_range_parameters_are_refused_with_their_range(call, match):
    with pytest.raises(ConfigError, match=match):
        call()


def test_a_parameter_with_the_wrong_number_of_entries_is_refused():
    with pytest.raises(ConfigError, match=r"takes 2 parameter value\(s\) \(radius, alias_blur\)"):
        create_corruption("defocus_blur").apply_parameter(IMAGES, (3, 0.1, 7))


def test_parameters_in_range_still_corrupt():
    out = F.pixelate(IMAGES, 1.0)  # the top of the range: unchanged size, still allowed
    assert out.shape == IMAGES.shape
    assert not torch.equal(F.shot_noise(IMAGES, 0.5, torch.Generator().manual_seed(0)), IMAGES)


# ----------------------------------------------------------------------------- audit 5


def generator(seed: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_shot_noise_shrinks_with_the_rate_and_matches_the_poisson_spread():
    # Before, rates of 1e5 and more rounded every rate down to a coarse table grid: the error
    # grew with the rate (0.17 at 1e6, 300x the Poisson spread) instead of shrinking.
    x = torch.rand(2, 3, 32, 32, generator=generator(0))
    errors = []
    for rate in (1e3, 1e4, 1e5, 1e6):
        error = (F.shot_noise(x, rate, generator()) - x).abs().mean().item()
        # E|Poisson(λx)/λ − x| ≈ sqrt(2/π) · sqrt(x/λ) for large λx
        expected = (math.sqrt(2 / math.pi) * (x / rate).sqrt()).mean().item()
        assert expected / 1.5 < error < expected * 1.5, (rate, error, expected)
        errors.append(error)
    assert errors == sorted(errors, reverse=True)


@pytest.mark.parametrize("rate", [60.0, 500.0, 1e4, 1e5, 1e6])
def test_scaled_poisson_has_the_poisson_mean_and_variance(rate):
    x = torch.full((20_000,), 0.37)
    counts = scaled_poisson(x, rate, generator()).double()
    assert abs(counts.mean().item() / (0.37 * rate) - 1) < 0.01
    assert abs(counts.var().item() / (0.37 * rate) - 1) < 0.05


def test_every_table_rate_keeps_the_table_route():
    shot = create_corruption("shot_noise")
    assert all(table_is_exact(float(rate)) for rate in (*shot.imagenet, *shot.cifar))


def test_tiny_and_huge_shot_noise_rates_are_handled_or_refused():
    # 1e-20 raised a raw IndexError (an int64 overflow), 1e30 a raw OverflowError
    out = F.shot_noise(IMAGES, 1e-20, generator())
    assert out.shape == IMAGES.shape and bool(torch.isfinite(out).all())
    for rate in (1e13, 1e30):
        with pytest.raises(ConfigError, match=r"rate must be a number in \(0, 1e\+12\]"):
            F.shot_noise(IMAGES, rate, generator())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_large_shot_noise_rates_do_not_overflow_half_precision_counts(dtype):
    out = F.shot_noise(IMAGES.to(dtype), 1e5, generator())
    assert out.dtype == dtype
    assert (out.float() - IMAGES).abs().mean() < 0.01


@pytest.mark.parametrize("name", CORRUPTIONS.names())
def test_an_empty_batch_gives_an_empty_batch(name):
    # five corruptions raised raw RuntimeErrors on N = 0 (max() of nothing, reshapes)
    for dtype in (torch.float32, torch.float64):
        images = torch.rand(0, 3, 32, 32, dtype=dtype)
        out = create_corruption(name)(images, 3, generator())
        assert out.shape == images.shape and out.dtype == dtype


@pytest.mark.parametrize("name", CORRUPTIONS.names())
@pytest.mark.parametrize("shape", [(2, 3, 0, 32), (2, 3, 32, 0), (0, 3, 0, 0)])
def test_images_without_pixels_are_refused(name, shape):
    with pytest.raises(InputRangeError):
        create_corruption(name)(torch.rand(*shape), 3, generator())


@pytest.mark.parametrize("name", CORRUPTIONS.names())
@pytest.mark.parametrize("shape", [(1, 3, 1, 1), (1, 3, 2, 2), (1, 3, 1, 50), (1, 3, 50, 1)])
def test_tiny_images_are_corrupted_or_refused_clearly(name, shape):
    corruption = create_corruption(name)
    images = torch.rand(*shape, generator=generator(0))
    if min(shape[2:]) < corruption.min_side:
        with pytest.raises(InputRangeError, match=f"at least {corruption.min_side}x"):
            corruption(images, 1, generator())
        return
    for severity in (1, 5):
        out = corruption(images, severity, generator())
        assert out.shape == images.shape and bool(torch.isfinite(out).all())


def test_elastic_transform_refuses_images_thinner_than_3_px():
    # a raw torch._C._LinAlgError (a singular affine system) at every severity before
    with pytest.raises(InputRangeError, match="at least 3x3 pixels, got 2x50"):
        create_corruption("elastic_transform")(torch.rand(1, 3, 2, 50), 1)
    assert create_corruption("elastic_transform")(torch.rand(1, 3, 3, 50), 1).shape[-2:] == (3, 50)


@pytest.mark.parametrize("name", CORRUPTIONS.names())
def test_every_table_parameter_fits_the_image_size_limits(name):
    corruption = create_corruption(name)
    for height, width in ((1, 1), (3, 50), (16, 16), (32, 32), (100, 60), (224, 224), (320, 320)):
        for severity in range(1, 6):
            param, scale = corruption.parameter(severity, height, width)
            corruption.check_parameter(param, (height, width), scale)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: F.fog(IMAGES, 1e39, 2.0), "strength must lie within float32 range"),
        (lambda: F.fog(IMAGES, 1e6, 2.0), r"strength must be a number in \[0, 1000\]"),
        (lambda: F.motion_blur(IMAGES, 5, 1e-30), "sigma must be a number >= 0.01"),
        (lambda: F.snow(IMAGES, 1e300, 1e300, 1, 0.6, 8, 3.0, 0.9), "mean must lie within"),
        (lambda: F.snow(IMAGES, 0.1, 1e30, 1, 0.6, 8, 3.0, 0.9), "std must be a number in"),
        (lambda: F.defocus_blur(IMAGES, 1e4, 0.5), "radius must be at most 4 x .* <= 128"),
        (lambda: F.motion_blur(IMAGES, 1e4, 5), "radius must be at most 4 x .* <= 128"),
        (lambda: F.gaussian_blur(IMAGES, 1e5), "sigma must be at most 4 x"),
        (lambda: F.elastic_transform(IMAGES, 1.0, 1e6, 1.0), "sigma must be at most 4 x"),
        (lambda: F.elastic_transform(IMAGES, 1e30, 6.4, 1.0), "alpha must be at most 16 x"),
        (lambda: F.spatter(IMAGES, 0.62, 0.1, 1e30, 0.7, 0.5, False), "sigma must be at most"),
        (lambda: F.glass_blur(IMAGES, 0.5, 1, 10**9), r"iterations must be .* \[0, 100\]"),
        (lambda: F.glass_blur(IMAGES, 0.5, 1e9, 1), "max_delta must be at most 4 x"),
        (lambda: F.zoom_blur(IMAGES, 1.0, 2.0, 1e-9), "at most 1000 zooms"),
        (lambda: F.zoom_blur(IMAGES, 1.0, 1e6, 1e5), "stop must be at most 1 x"),
        (lambda: F.zoom_blur(IMAGES, 0.5, 1.1, 0.1), "start must be a number >= 1"),
        (lambda: F.snow(IMAGES, 0.1, 0.2, 1e6, 0.6, 8, 3.0, 0.9), "zoom must be at most 1 x"),
        (lambda: F.frost(IMAGES, 1e39, 0.3), "image_weight must lie within float32 range"),
        (lambda: F.frost(IMAGES, 1.0, 0.3, texture_zoom=50), "texture_zoom must be at most 2"),
        (lambda: F.shot_noise(IMAGES, 1e30), r"rate must be a number in \(0, 1e\+12\]"),
    ],
    ids=lambda value: "" if callable(value) else value.split(" must")[0].replace("\\", ""),
)
def test_extreme_parameters_are_refused_before_any_work(call, match):
    # NaN images (fog, motion_blur, snow), raw OverflowError / RuntimeError / MemoryError, or
    # no end at all (glass_blur) before
    with pytest.raises(ConfigError, match=match):
        call()


def test_spatial_limits_grow_with_the_image():
    big = torch.rand(1, 3, 200, 100, generator=generator(0))
    assert F.defocus_blur(big, 700, 0.5).shape == big.shape  # <= 4 x 200
    with pytest.raises(ConfigError, match=r"<= 800 for 200x100 images"):
        F.defocus_blur(big, 801, 0.5)


def test_non_finite_output_of_explicit_parameters_is_refused(monkeypatch):
    corruption = create_corruption("gaussian_noise")
    monkeypatch.setattr(type(corruption), "apply", lambda self, x, *args: x * math.nan)
    with pytest.raises(NonFiniteError, match="'gaussian_noise' gave NaN or infinite pixels"):
        corruption.apply_parameter(IMAGES, 0.1)
    assert corruption(IMAGES, 1).isnan().all()  # the table path is not checked (known good)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: F.gaussian_noise(IMAGES, "0.1"), "sigma must be a number, got the string '0.1'"),
        (lambda: F.gaussian_noise(IMAGES, True), "sigma must be a number, got the bool True"),
        (lambda: F.jpeg_compression(IMAGES, True), "quality must be a number, got the bool"),
        (lambda: F.saturate(IMAGES, 2.0, False), "offset must be a number, got the bool"),
        (lambda: F.brightness(IMAGES, b"0.1"), "delta must be a number, got the string"),
        (
            lambda: F.spatter(IMAGES, 0.62, 0.1, 0.7, 0.7, 0.5, "no"),
            r"mud must be True \(mud\) or False \(water\), got 'no'",
        ),
        (lambda: F.spatter(IMAGES, 0.62, 0.1, 0.7, 0.7, 0.5, 2), "mud must be True"),
        (lambda: F.gaussian_noise(IMAGES, 0.1, 5), "generator must be a torch.Generator, .*int"),
        (lambda: F.gaussian_noise(IMAGES, 0.1, "seed"), "generator must be a torch.Generator"),
        (lambda: F.shot_noise(IMAGES, 50, [1, 2]), "got 2 items; items of type int"),
    ],
    ids=lambda value: "" if callable(value) else value.split(" must")[0].replace("\\", ""),
)
def test_strings_bools_and_non_generators_are_refused(call, match):
    # "0.1" raised a raw TypeError inside, True ran as 1, mud="no" a raw ValueError from
    # int(), generator=5 a raw TypeError ('int' object is not iterable)
    with pytest.raises(ConfigError, match=match):
        call()


def test_spatter_takes_a_bool_or_0_1_for_mud():
    out = F.spatter(IMAGES, 0.65, 0.1, 0.7, 0.69, 0.6, True, generator())
    assert torch.equal(out, F.spatter(IMAGES, 0.65, 0.1, 0.7, 0.69, 0.6, 1, generator()))
