"""robustart's image operations against kornia's.

* Replaced by kornia: the helpers robustart used to write by hand are kept here, frozen as
  they were before the switch (``_old_*``), and their outputs compared with the kornia-based
  functions that replaced them, on random inputs. The measured maximum absolute differences
  (images in [0, 1]) stand next to the tolerances below.
* Kept because kornia is faithful but slower on the CPU: compared with kornia directly, so the
  equivalence stays proven and a switch is a one-line change.
* Kept because kornia is not faithful: the documented differences are asserted to persist
  (a kornia release that closes them makes these tests fail: then switch).
"""

from __future__ import annotations

import kornia
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from robustart.corruptions import color, geometry, imgproc, kernels
from robustart.corruptions.elastic_transform import jitter_affine
from robustart.corruptions.spatter import liquid_layer
from robustart.utils import make_generator

SIZES = (32, 224)


def random_images(n: int, size: int, seed: int, channels: int = 3) -> Tensor:
    return torch.rand(n, channels, size, size, generator=make_generator(seed))


# ------------------------------------------------------------- frozen pre-kornia helpers
def _old_gaussian_kernel1d(sigma: float, truncate: float = 4.0, radius: int | None = None):
    if radius is None:
        radius = int(truncate * float(sigma) + 0.5)
    if sigma <= 0 or radius == 0:
        kernel = torch.zeros(2 * radius + 1)
        kernel[radius] = 1.0
        return kernel
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


_OLD_GRID_BORDERS = {
    "nearest": ("border", True),
    "mirror": ("reflection", True),
    "reflect": ("reflection", False),
    "constant": ("zeros", True),
}


def _old_sample_pixels(images: Tensor, ys: Tensor, xs: Tensor, border: str) -> Tensor:
    padding_mode, align_corners = _OLD_GRID_BORDERS[border]
    h, w = images.shape[-2:]
    if align_corners:
        gx = xs * (2.0 / max(w - 1, 1)) - 1.0
        gy = ys * (2.0 / max(h - 1, 1)) - 1.0
    else:
        gx = (2.0 * xs + 1.0) / w - 1.0
        gy = (2.0 * ys + 1.0) / h - 1.0
    grid = torch.stack((gx, gy), dim=-1).to(images.dtype)
    if grid.shape[0] != images.shape[0]:
        grid = grid.expand(images.shape[0], -1, -1, -1)
    return F.grid_sample(
        images, grid, mode="bilinear", padding_mode=padding_mode, align_corners=align_corners
    )


def _old_warp_perspective(images: Tensor, matrices: Tensor, border: str, inverse: bool) -> Tensor:
    h, w = images.shape[-2:]
    m = matrices.to(images.device, torch.float64)
    if m.ndim == 2:
        m = m.unsqueeze(0)
    if not inverse:
        m = torch.linalg.inv(m)
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij"
    )
    grid = torch.stack((xs.reshape(-1), ys.reshape(-1), torch.ones_like(xs).reshape(-1)))
    src = m @ grid
    xs = (src[:, 0] / src[:, 2]).reshape(-1, h, w)
    ys = (src[:, 1] / src[:, 2]).reshape(-1, h, w)
    return _old_sample_pixels(images, ys, xs, border)


# ------------------------------------------------------------- replaced by kornia
#: Measured maximum absolute differences, old helper vs its kornia replacement.
GAUSSIAN_KERNEL_TOLERANCE = 1e-7  # measured 1e-8
REMAP_TOLERANCE = 0.0  # measured 0: the same grid_sample call
#: The normalised coordinates are rounded differently (one float32 step of a coordinate near
#: 224 px is 1.5e-5 px); measured 3.0e-6 at 32 px and 2.7e-5 at 224 px.
DISPLACED_TOLERANCE = 5e-5
WARP_TOLERANCE = {32: 2e-5, 224: 1.5e-4}  # measured 6e-6 and 6e-5: kornia's float32 grid


@pytest.mark.parametrize("sigma", [0.0, 0.05, 0.4, 1.0, 2.5, 6.0, 20.0])
def test_gaussian_kernel_is_kornias(sigma):
    assert torch.allclose(
        kernels.gaussian_kernel1d(sigma),
        _old_gaussian_kernel1d(sigma),
        rtol=0,
        atol=GAUSSIAN_KERNEL_TOLERANCE,
    )
    assert torch.allclose(
        kernels.gaussian_kernel1d(sigma, radius=2),
        _old_gaussian_kernel1d(sigma, radius=2),
        rtol=0,
        atol=GAUSSIAN_KERNEL_TOLERANCE,
    )


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("border", ["nearest", "mirror", "reflect", "constant"])
def test_sample_pixels_is_kornia_remap(size, border):
    images = random_images(2, size, 0)
    g = make_generator(1)
    ys = torch.rand(2, size, size, generator=g) * (size + 8) - 4  # also outside the image
    xs = torch.rand(2, size, size, generator=g) * (size + 8) - 4
    for y, x in ((ys, xs), (ys[:1], xs[:1])):  # per image, and one map for all
        new = geometry.sample_pixels(images, y, x, border)
        assert (new - _old_sample_pixels(images, y, x, border)).abs().max() <= REMAP_TOLERANCE


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("border", ["nearest", "mirror", "reflect", "constant"])
def test_sample_displaced_is_sample_pixels_at_the_displaced_positions(size, border):
    """The elastic transform's sampling (its grid written in place) reads the same positions
    as kornia's remap, also beyond the image, with a gain on the displacements."""
    images = random_images(2, size, 4)
    field = torch.randn(2, 2, size, size, generator=make_generator(5)) * 3
    rows = torch.arange(size, dtype=torch.float32).view(1, size, 1)
    cols = torch.arange(size, dtype=torch.float32).view(1, 1, size)
    for gain in (1.0, 2.5):
        new = geometry.sample_displaced(images, field, border, gain=gain)
        old = geometry.sample_pixels(
            images, rows + gain * field[:, 1], cols + gain * field[:, 0], border
        )
        assert (new - old).abs().max() <= DISPLACED_TOLERANCE, gain


@pytest.mark.parametrize("size", SIZES)
def test_warps_are_kornias(size):
    images = random_images(2, size, 2)
    jitter = (torch.rand(2, 3, 2, generator=make_generator(3)) * 2 - 1) * 0.1 * size
    affine = jitter_affine(size, size, jitter)
    for border in ("nearest", "mirror", "constant"):
        new = geometry.warp_perspective(images, affine, border)
        old = _old_warp_perspective(images, affine, border, inverse=False)
        assert (new - old).abs().max() <= WARP_TOLERANCE[size], border
    # the elastic transform's call: kornia's warp_affine, reflection = OpenCV's REFLECT_101
    warped = kornia.geometry.transform.warp_affine(
        images, affine[:, :2].float(), (size, size), padding_mode="reflection", align_corners=True
    )
    old = _old_warp_perspective(images, affine, "mirror", inverse=False)
    assert (warped - old).abs().max() <= WARP_TOLERANCE[size]
    ours = geometry.warp_perspective(images, affine, "mirror")  # its grid written in place
    assert (ours - warped).abs().max() <= WARP_TOLERANCE[size]
    for matrix in (
        geometry.tilt_homography(size, size, 10),
        geometry.torchvision_affine(size, size, 12, 1.1, 5),
    ):
        new = geometry.warp_perspective(images, matrix, "constant", inverse=True)
        old = _old_warp_perspective(images, matrix, "constant", inverse=True)
        assert (new - old).abs().max() <= WARP_TOLERANCE[size]


@pytest.mark.parametrize(("height", "width"), [(1, 5), (7, 3), (224, 224)])
def test_affine_sampling_grid_is_the_normalised_float64_positions(height, width):
    """The affine warps' grid (two outer sums per axis) holds ``maps @ (x, y, 1)`` normalised
    with align_corners=True, to float32 rounding."""
    maps = torch.randn(3, 2, 3, generator=make_generator(6), dtype=torch.float64) * 40
    grid = geometry.affine_sampling_grid(maps, height, width, torch.float32)
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float64),
        torch.arange(width, dtype=torch.float64),
        indexing="ij",
    )
    for axis, size in ((0, width), (1, height)):
        to_unit = 2.0 / (size - 1) if size > 1 else 0.0
        per_column = maps[:, axis, 0, None, None] * xs * to_unit
        per_row = (maps[:, axis, 1, None, None] * ys + maps[:, axis, 2, None, None]) * to_unit - 1
        expected = per_row + per_column
        # three float32 roundings (each term, their sum): at most two units in the last place of
        # the larger term, 2.4e-7 of its magnitude
        magnitude = torch.maximum(per_row.abs(), per_column.abs()).clamp(min=1.0)
        error = (grid[..., axis].double() - expected).abs() / magnitude
        assert error.max() <= 2.4e-7, axis


# ------------------------------------------------------------- kept: faithful, slower
def _kornia_gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    size = 2 * int(4 * sigma + 0.5) + 1  # scikit-image's truncation at 4σ
    return kornia.filters.gaussian_blur2d(images, size, (sigma, sigma), border_type="replicate")


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("sigma", [0.4, 1.0, 3.0, 6.0])
def test_gaussian_blur_equals_kornia_gaussian_blur2d(size, sigma):
    images = random_images(2, size, 4)
    new = kernels.gaussian_blur(images, sigma)
    assert (new - _kornia_gaussian_blur(images, sigma)).abs().max() <= 1e-6  # measured 3e-7


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("param", [(0.5, 0.6), (1.5, 0.1), (3, 0.1), (6, 0.5), (10, 0.5)])
def test_defocus_filter_equals_kornia_filter2d(size, param):
    images = random_images(2, size, 5)
    kernel = kernels.disk_kernel(*param)
    ours = kernels.filter2d_depthwise(images, kernel, border="mirror")
    theirs = kornia.filters.filter2d(images, kernel[None], border_type="reflect")
    assert (ours - theirs).abs().max() <= 2e-6  # measured 8e-7


def _old_fft_filter(images: Tensor, kernel: Tensor, border: str) -> Tensor:
    """The Fourier filtering before the faster row-first inverse (frozen)."""
    h, w = images.shape[-2:]
    kh, kw = kernel.shape
    padded = kernels.pad2d(images, kh // 2, (kh - 1) // 2, kw // 2, (kw - 1) // 2, border)
    hp, wp = padded.shape[-2:]
    transfer = torch.zeros(hp, wp)
    transfer[:kh, :kw] = kernel.flip(0, 1)
    spectrum = torch.fft.rfft2(padded.float()) * torch.fft.rfft2(transfer)
    return torch.fft.irfft2(spectrum, s=(hp, wp))[..., kh - 1 : kh - 1 + h, kw - 1 : kw - 1 + w]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("border", kernels.BORDERS)
def test_fft_filtering_equals_the_previous_one(size, border):
    images = random_images(3, size, 6)
    for kernel in (kernels.disk_kernel(6, 0.5), kernels.disk_kernel(10, 0.5), torch.rand(9, 7)):
        tolerance = 1e-6 * float(kernel.abs().sum())  # measured 3e-7 per unit of kernel mass
        new = kernels.fft_correlate(images, kernel, border)
        assert (new - _old_fft_filter(images, kernel, border)).abs().max() <= tolerance


@pytest.mark.parametrize("size", SIZES)
def test_box_blur_equals_kornia_box_blur_after_rounding(size):
    levels = torch.randint(0, 256, (2, 1, size, size), generator=make_generator(7)).float()
    theirs = kornia.filters.box_blur(levels, 3, border_type="reflect")
    assert torch.equal(imgproc.box_blur_uint8(levels), theirs.round())
    distances = torch.rand(2, 1, size, size, generator=make_generator(8)) * 20
    theirs = kornia.filters.box_blur(distances, 3, border_type="reflect")
    assert torch.equal(imgproc.box_blur_uint8(distances, round_result=False), theirs.floor())


def _kornia_hsv_edit(images: Tensor, channel: int, edit) -> Tensor:
    hsv = kornia.color.rgb_to_hsv(images)
    edited = edit(hsv[:, channel : channel + 1]).clamp(0.0, 1.0)
    return kornia.color.hsv_to_rgb(torch.cat((hsv[:, :channel], edited, hsv[:, channel + 1 :]), 1))


@pytest.mark.parametrize("size", SIZES)
def test_hsv_closed_forms_equal_the_kornia_round_trip(size):
    images = random_images(2, size, 9)
    grey = images[:, :1].expand(-1, 3, -1, -1)  # hue 0 (red) in both conversions
    for x in (images, grey, torch.zeros_like(images)):
        for delta in (0.05, 0.3, 0.5):
            theirs = _kornia_hsv_edit(x, 2, lambda v, d=delta: v + d)
            assert (color.add_hsv_value(x, delta) - theirs).abs().max() <= 2e-6  # measured 1e-6
        for a, b in ((0.3, 0.0), (2.0, 0.0), (5.0, 0.1), (20.0, 0.2)):
            theirs = _kornia_hsv_edit(x, 1, lambda s, a=a, b=b: s * a + b)
            ours = color.affine_hsv_saturation(x, a, b)
            assert (ours - theirs).abs().max() <= 2e-6  # measured 8e-7


# ------------------------------------------------------------- kept: kornia not faithful
def test_kornia_adjust_brightness_and_saturation_are_not_the_hsv_edits():
    images = random_images(2, 32, 10)
    shift = kornia.enhance.adjust_brightness(images, 0.3)  # additive in RGB
    assert (color.add_hsv_value(images, 0.3) - shift).abs().max() > 0.25
    without_offset = kornia.enhance.adjust_saturation(images, 5.0)  # no offset b
    assert (color.affine_hsv_saturation(images, 5.0, 0.1) - without_offset).abs().max() > 0.05


def test_kornia_motion_blur_is_not_the_reference_kernel():
    smooth = F.interpolate(random_images(2, 8, 11), size=64, mode="bilinear")
    angles = torch.full((2,), 30.0)
    ours = kernels.motion_blur(smooth, 15, 5.0, angles)
    theirs = kornia.filters.motion_blur(smooth, 31, angles, torch.zeros(2), "replicate")
    assert (ours - theirs).abs().max() > 0.1  # uniform line vs Gaussian-weighted (0.5 at 224)


@pytest.fixture(scope="module")
def spatter_levels() -> Tensor:
    """8-bit liquid layers of spatter severity 1 (ImageNet table) at 96 px."""
    layer = liquid_layer(4, 96, 96, 0.65, 0.3, 4 * 96 / 224, 0.69, make_generator(0), "cpu")
    return torch.floor(layer.clamp(0, 1) * 255)


def test_kornia_canny_distance_and_equalize_are_not_opencvs(spatter_levels):
    ours = imgproc.canny_edges(spatter_levels, 50, 150)
    _, theirs = kornia.filters.canny(spatter_levels, 50.0, 150.0, kernel_size=1)
    assert int((ours != (theirs > 0)).sum()) > 0  # L2 vs OpenCV's L1 gradient magnitude
    distance = imgproc.distance_to_edges(ours, 20.0)
    approximate = kornia.contrib.distance_transform(ours.float()).clamp_max(20.0)
    assert (distance - approximate).abs().max() > 1.0  # cascaded-convolution approximation
    blurred = imgproc.box_blur_uint8(distance, round_result=False)
    equalized = kornia.enhance.equalize(blurred / 255) * 255  # PIL's, not OpenCV's
    assert (imgproc.equalize_histogram(blurred) - equalized).abs().max() > 10
