"""The contract every registered corruption keeps, at every severity, and its functional form.

For each corruption in the registry and severities 1..5, on 32-px images:

* the output has the input's shape, dtype and device, with values in [0, 1];
* a seeded generator reproduces it exactly;
* a batch equals its images corrupted one by one with the same per-image randomness (exactly,
  but for the exemption :data:`BATCH_ROUNDING`): one
  generator per image, seeded alike in both calls (a corruption that draws its randomness
  for the whole batch at once runs image by image when given per-image generators; the
  others draw image i's randomness from generator i, and this checks that they do, and that
  nothing else mixes the images of a batch);
* :mod:`robustart.corruptions.functional` with the severity's parameters gives the same
  output as the registry.
"""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F

from robustart.corruptions import CORRUPTIONS, SEVERITIES, create_corruption, functional
from robustart.errors import ConfigError
from robustart.utils import make_generator

SIZE = 32
BATCH = 3
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


#: Exemption from the exact batch = per-image equality, with the tolerance that holds instead.
BATCH_ROUNDING = {
    # each image's blur has its own angle; the Fourier transforms are padded to the longest
    # reach in the batch, so their sizes, and the float rounding, depend on the batch (4e-7
    # measured). Padding every image for the longest possible reach would make them ~30 %
    # larger at 224 px.
    "motion_blur": 1e-6,
}


def natural_images(device: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Smooth images with some texture, so that blurs, JPEG and edge detection have work."""
    g = torch.Generator().manual_seed(0)
    low = torch.rand(BATCH, 3, SIZE // 4, SIZE // 4, generator=g)
    smooth = F.interpolate(low, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    images = (0.1 + 0.75 * smooth + 0.15 * torch.rand(BATCH, 3, SIZE, SIZE, generator=g)).clamp(
        0, 1
    )
    return images.to(device, dtype)


def generators(seed: int, device: str, count: int = BATCH) -> list[torch.Generator]:
    return [make_generator(seed + i, device) for i in range(count)]


def test_every_registered_corruption_has_a_functional_form():
    assert sorted(functional.__all__) == sorted(CORRUPTIONS.names())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", CORRUPTIONS.names())
def test_corruption_contract(name, device):
    corruption = create_corruption(name)
    images = natural_images(device)
    function = getattr(functional, name)
    takes_generator = "generator" in inspect.signature(function).parameters
    for severity in SEVERITIES:
        out = corruption(images, severity, make_generator(severity, device))
        assert out.shape == images.shape and out.dtype == images.dtype, severity
        assert out.device == images.device, severity
        assert out.min() >= 0 and out.max() <= 1, severity
        again = corruption(images, severity, make_generator(severity, device))
        assert torch.equal(out, again), f"severity {severity} not reproducible under a seed"

        batch = corruption(images, severity, generators(10 * severity, device))
        for i in range(BATCH):
            alone = corruption(
                images[i : i + 1], severity, [make_generator(10 * severity + i, device)]
            )
            tolerance = BATCH_ROUNDING.get(name, 0.0)
            difference = (batch[i : i + 1] - alone).abs().max().item()
            assert difference <= tolerance, f"severity {severity}, image {i}: {difference}"

        param, scale = corruption.parameter(severity, SIZE, SIZE)
        assert scale == 1.0
        extra = {"generator": make_generator(severity, device)} if takes_generator else {}
        param = param if isinstance(param, tuple) else (param,)
        assert torch.equal(function(images, *param, **extra), out), (
            f"functional, severity {severity}"
        )


@pytest.mark.parametrize("name", CORRUPTIONS.names())
def test_double_precision_stays_double(name):
    images = natural_images("cpu", torch.float64)
    out = create_corruption(name)(images, 3, make_generator(0))
    assert out.dtype == torch.float64 and out.shape == images.shape
    assert out.min() >= 0 and out.max() <= 1


def test_per_image_generators_must_match_the_batch():
    images = natural_images("cpu")
    with pytest.raises(ConfigError, match="one per image"):
        create_corruption("gaussian_noise")(images, 1, generators(0, "cpu", BATCH - 1))
