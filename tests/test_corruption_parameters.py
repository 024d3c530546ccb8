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
from robustart.errors import ConfigError

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
        (lambda: F.shot_noise(IMAGES, 0), "rate must be a number > 0"),
        (lambda: F.shot_noise(IMAGES, -5), "rate must be a number > 0"),
        (lambda: F.impulse_noise(IMAGES, 1.5), r"amount must be a number in \[0, 1\]"),
        (lambda: F.defocus_blur(IMAGES, -3, 0.1), "radius must be a number > 0"),
        (lambda: F.gaussian_blur(IMAGES, 0), "sigma must be a number > 0"),
        (lambda: F.glass_blur(IMAGES, 0.5, 1, 1.5), "iterations must be a whole number >= 0"),
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
