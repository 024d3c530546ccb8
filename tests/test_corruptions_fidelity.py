"""Fidelity of the corruptions to the reference definitions, and their building blocks.

Random corruptions are compared with the per-image NumPy ports in ``reference_corruptions.py``
by distribution (mean PSNR and SSIM to the clean images per severity); deterministic ones and
the deterministic stages of random ones pixel by pixel. The 224-px sweep over all severities is
marked slow; ``benchmarks/fidelity_corruptions.py`` prints the full table.
"""

import os

import numpy as np
import pytest
import reference_corruptions as ref
import torch
import torch.nn.functional as F

from robustart.corruptions import corrupt, create_corruption
from robustart.errors import DatasetNotFoundError
from robustart.utils import make_generator

pytest.importorskip("skimage")
cv2 = pytest.importorskip("cv2")

RANDOM = [name for name in ref.NAMES if name not in ref.DETERMINISTIC]
#: Tolerances on the mean over the test images (sampling noise of the random corruptions at
#: 48 CIFAR images is ≈ 0.3 dB and 0.01 SSIM; a wrong table entry is several dB off).
CIFAR_TOLERANCE = {"psnr": 1.0, "ssim": 0.04}
IMAGENET_TOLERANCE = {"psnr": 1.5, "ssim": 0.06}


@pytest.fixture(scope="module")
def cifar_images():
    return ref.natural_test_images(48, 32, seed=0)


@pytest.fixture(scope="module")
def imagenet_images():
    return ref.natural_test_images(3, 224, seed=0)


@pytest.fixture(scope="module")
def frost_files():
    from robustart.corruptions.frost import frost_texture_files

    return frost_texture_files()  # the synthetic textures of conftest.py


def ours(images: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    return corrupt(x, name, severity, make_generator(seed)).permute(0, 2, 3, 1).double().numpy()


def compare(images, name, severity, frost_files, tolerance):
    a = ours(images, name, severity, seed=0)
    b = ref.reference_corrupt(images, name, severity, seed=1, frost_files=frost_files)
    d_psnr = ref.psnr(images, a).mean() - ref.psnr(images, b).mean()
    d_ssim = ref.ssim(images, a).mean() - ref.ssim(images, b).mean()
    assert abs(d_psnr) <= tolerance["psnr"], (name, severity, d_psnr)
    assert abs(d_ssim) <= tolerance["ssim"], (name, severity, d_ssim)


# --------------------------------------------------------------------------- distributions
@pytest.mark.parametrize("name", RANDOM)
def test_random_corruptions_match_reference_distribution_cifar(name, cifar_images, frost_files):
    for severity in range(1, 6):
        compare(cifar_images, name, severity, frost_files, CIFAR_TOLERANCE)


@pytest.mark.parametrize("name", RANDOM)
def test_random_corruptions_match_reference_distribution_imagenet_subset(
    name, imagenet_images, frost_files
):
    compare(imagenet_images[:2], name, 3, frost_files, IMAGENET_TOLERANCE)


@pytest.mark.slow
@pytest.mark.parametrize("name", RANDOM)
def test_random_corruptions_match_reference_distribution_imagenet_sweep(name, frost_files):
    images = ref.natural_test_images(8, 224, seed=3)
    for severity in range(1, 6):
        compare(images, name, severity, frost_files, IMAGENET_TOLERANCE)


@pytest.mark.parametrize("name", ref.DETERMINISTIC)
def test_deterministic_corruptions_match_reference_pixelwise(name, cifar_images, imagenet_images):
    # at 224 px: severity 5, and 1 where the kernel rule differs (defocus radius ≤ 8)
    large = (1, 5) if name == "defocus_blur" else (5,)
    for images, severities in ((cifar_images[:16], range(1, 6)), (imagenet_images[:1], large)):
        for severity in severities:
            a = ours(images, name, severity)
            b = ref.reference_corrupt(images, name, severity)
            assert np.abs(a - b).max() < 1e-4, (name, images.shape[1], severity)


def test_pixelate_equals_pil_box_then_nearest():
    from PIL import Image

    images = ref.natural_test_images(2, 224, seed=5)
    out = ours(images, "pixelate", 4)
    for img, result in zip(images, out):
        for d in range(3):
            band = Image.fromarray(img[:, :, d].astype(np.float32), mode="F")
            small = band.resize((int(224 * 0.3),) * 2, Image.BOX)
            nearest = np.asarray(small.resize((224, 224), Image.NEAREST))
            np.testing.assert_allclose(result[:, :, d], nearest, atol=1e-5)


def test_saturate_tints_grey_pixels_red_like_the_hsv_reference():
    images = ref.natural_test_images(2, 32, seed=1)
    images[:, :6, :6] = 0.5  # grey: hue 0 in skimage's conversion
    for severity in (4, 5):
        np.testing.assert_allclose(
            ours(images, "saturate", severity),
            ref.reference_corrupt(images, "saturate", severity),
            atol=1e-5,
        )
    out = ours(images, "saturate", 5)
    assert out[0, 0, 0, 0] > out[0, 0, 0, 1] == pytest.approx(out[0, 0, 0, 2])


# --------------------------------------------------------------------------- glass blur
class FixedOffsets:
    """Hands the reference port the offsets robustart drew (same order and shape)."""

    def __init__(self, values):
        self.values = list(values)

    def integers(self, low, high, size):
        values = self.values.pop(0)
        assert low == -high and tuple(size) == values.shape and values.max() < high
        return values


def test_the_reference_swap_idiom_copies_rgb_pixels():
    """``x[a], x[b] = x[b], x[a]`` on rows of an RGB array copies x[b] into x[a]."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(12, 11, 3)).astype(np.uint8)
    literal = ref.literal_glass_shuffle(image, 2, 2, np.random.default_rng(1))
    port = ref.sequential_glass_shuffle(image, 2, 2, np.random.default_rng(1))
    np.testing.assert_array_equal(literal, port)


@pytest.mark.parametrize("delta, size", [(1, (32, 32)), (2, (40, 36)), (4, (30, 45))])
def test_glass_moves_are_exactly_the_sequential_reference(delta, size):
    """The batched pointer-doubling moves equal the reference's sequential loop."""
    from robustart.corruptions.glass_blur import copy_offsets, sequential_copies

    h, w = size
    rng = np.random.default_rng(delta)
    images = rng.integers(0, 256, size=(3, h, w, 3)).astype(np.uint8)
    passes = [copy_offsets(3, h, w, delta, make_generator(k), "cpu") for k in range(2)]
    expected = np.stack(
        [
            ref.sequential_glass_shuffle(img, delta, 2, FixedOffsets(o[k].numpy() for o in passes))
            for k, img in enumerate(images)
        ]
    )
    got = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    for offsets in passes:
        got = sequential_copies(got, delta, offsets)
    np.testing.assert_array_equal(got.permute(0, 2, 3, 1).numpy().astype(np.uint8), expected)
    assert not np.array_equal(expected, images)


def test_glass_blur_displacement_statistics_match_the_sequential_reference():
    """Where pixels come from (index images, independent draws): same spread and duplication."""
    from robustart.corruptions.glass_blur import copy_offsets, sequential_copies

    h = w = 48
    index = torch.arange(h * w, dtype=torch.float64).reshape(1, 1, h, w).expand(8, 3, h, w)
    ours_src = sequential_copies(index, 2, copy_offsets(8, h, w, 2, make_generator(0), "cpu"))
    ours_src = ours_src[:, 0].long().numpy()
    rng = np.random.default_rng(0)
    ref_src = np.stack(
        [
            ref.sequential_glass_shuffle(np.arange(h * w).reshape(h, w, 1), 2, 1, rng)[..., 0]
            for _ in range(8)
        ]
    )
    rows, cols = np.mgrid[:h, :w]

    def spread(sources):
        sy, sx = np.divmod(sources, w)
        distance = np.hypot(sy - rows, sx - cols)
        distinct = np.mean([len(np.unique(s)) / s.size for s in sources])
        return (distance == 0).mean(), distance.mean(), np.percentile(distance, 95), distinct

    for a, b in zip(spread(ours_src), spread(ref_src)):
        assert a == pytest.approx(b, rel=0.1, abs=0.02)


# --------------------------------------------------------------------------- motion blur
def test_motion_blur_kernel_matches_the_gaussian_line_reference():
    from robustart.corruptions.kernels import motion_blur

    rng = np.random.default_rng(0)
    image = rng.random((40, 36, 3))
    angles = [-135.0, -44.0, 0.0, 17.0, 90.0, 170.0]
    batch = torch.from_numpy(image).permute(2, 0, 1)[None].float().expand(len(angles), -1, -1, -1)
    got = motion_blur(batch, 9, 3.0, torch.tensor(angles)).permute(0, 2, 3, 1).numpy()
    for out, angle in zip(got, angles):
        np.testing.assert_allclose(out, ref._line_motion_blur(image, 9, 3.0, angle), atol=1e-5)


def test_motion_blur_matches_imagecorruptions_implementation():
    package = ref.import_imagecorruptions()
    if package is None:
        pytest.skip("imagecorruptions is not installed")
    from imagecorruptions.corruptions import _motion_blur

    from robustart.corruptions.kernels import motion_blur

    image = (ref.natural_test_images(1, 64, seed=2)[0] * 255).astype(np.float64)
    for angle in (-30.0, 12.5, 44.0):
        expected = _motion_blur(image, radius=15, sigma=5, angle=angle)
        batch = torch.from_numpy(image).permute(2, 0, 1)[None].float()
        got = motion_blur(batch, 15, 5.0, torch.tensor([angle]))[0].permute(1, 2, 0).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-3)


# --------------------------------------------------------------------------- spatter stages
def test_liquid_spatter_stages_match_opencv_on_the_same_layer():
    from skimage.filters import gaussian

    from robustart.corruptions.imgproc import (
        box_blur_uint8,
        canny_edges,
        equalize_histogram,
        filter_uint8,
    )
    from robustart.corruptions.spatter import EMBOSS, water_drops

    rng = np.random.default_rng(0)
    for size, sigma, threshold in ((64, 2.0, 0.68), (32, 0.8, 0.7)):
        layer = gaussian(rng.normal(size=(size, size), loc=0.65, scale=0.3), sigma)
        layer[layer < threshold] = 0
        levels = (layer * 255).astype(np.uint8)

        def t(array):
            return torch.from_numpy(np.asarray(array, dtype=np.float32))[None, None]

        canny = cv2.Canny(levels, 50, 150) > 0
        ours_canny = canny_edges(t(levels), 50, 150)[0, 0].numpy()
        assert canny.any() and np.array_equal(ours_canny, canny)
        dist = cv2.distanceTransform(255 - cv2.Canny(levels, 50, 150), cv2.DIST_L2, 5)
        _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        blurred = cv2.blur(dist, (3, 3)).astype(np.uint8)
        got = box_blur_uint8(t(dist), round_result=False)[0, 0].numpy()
        assert np.array_equal(got, blurred)
        equalised = cv2.equalizeHist(blurred)
        assert np.array_equal(equalize_histogram(t(blurred))[0, 0].numpy(), equalised)
        embossed = cv2.filter2D(equalised, cv2.CV_8U, np.array(EMBOSS))
        assert np.array_equal(filter_uint8(t(equalised), torch.tensor(EMBOSS))[0, 0], embossed)
        shade = cv2.blur(embossed, (3, 3))
        assert np.array_equal(box_blur_uint8(t(embossed))[0, 0].numpy(), shade)
        opacity = levels * shade.astype(np.float32)
        opacity = opacity / opacity.max() * 0.6
        got = water_drops(t(layer), 0.6)[0, 0].numpy()
        # exact Euclidean distance instead of OpenCV's 5×5 chamfer mask: tiny differences
        assert np.abs(got - opacity).mean() < 0.005


def test_distance_to_edges_is_the_capped_euclidean_distance():
    from scipy.ndimage import distance_transform_edt

    from robustart.corruptions.imgproc import distance_to_edges

    edges = torch.rand(2, 1, 50, 40, generator=torch.Generator().manual_seed(0)) > 0.995
    got = distance_to_edges(edges, 20.0).numpy()
    for k in range(2):
        expected = np.minimum(distance_transform_edt(~edges[k, 0].numpy()), 20.0)
        np.testing.assert_allclose(got[k, 0], expected, atol=1e-5)
    assert np.all(distance_to_edges(torch.zeros(1, 1, 8, 8, dtype=torch.bool), 5.0).numpy() == 5)


# --------------------------------------------------------------------------- elastic, fog
def test_elastic_affine_and_displacement_match_opencv_and_scipy():
    from scipy.ndimage import map_coordinates
    from skimage.filters import gaussian

    from robustart.corruptions.elastic_transform import jitter_affine
    from robustart.corruptions.geometry import sample_pixels, warp_perspective
    from robustart.corruptions.kernels import gaussian_blur

    image = ref.natural_test_images(1, 48, seed=4)[0].astype(np.float32)
    rng = np.random.default_rng(0)
    jitter = rng.uniform(-4, 4, size=(3, 2)).astype(np.float32)
    centre, third = np.float32(image.shape[:2]) // 2, min(image.shape[:2]) // 3
    source = np.float32([centre + third, [centre[0] + third, centre[1] - third], centre - third])
    matrix = cv2.getAffineTransform(source, source + jitter)
    expected = cv2.warpAffine(image, matrix, (48, 48), borderMode=cv2.BORDER_REFLECT_101)
    batch = torch.from_numpy(image).permute(2, 0, 1)[None]
    warped = warp_perspective(
        batch, jitter_affine(48, 48, torch.from_numpy(jitter)[None]), "mirror"
    )
    np.testing.assert_allclose(warped[0].permute(1, 2, 0).numpy(), expected, atol=1e-4)

    noise = rng.uniform(-1, 1, size=(2, 48, 48))
    field = np.stack([gaussian(n, 3.0, mode="reflect", truncate=3) * 6.0 for n in noise])
    ours_field = gaussian_blur(torch.from_numpy(noise)[None].float(), 3.0, 3.0, "reflect")[0] * 6
    np.testing.assert_allclose(ours_field.numpy(), field, atol=1e-5)
    ys, xs = np.mgrid[:48, :48]
    expected = np.stack(
        [
            map_coordinates(image[:, :, d], (ys + field[1], xs + field[0]), order=1, mode="reflect")
            for d in range(3)
        ],
        axis=-1,
    )
    rows = torch.arange(48.0).view(1, 48, 1) + torch.from_numpy(field[1]).float()[None]
    cols = torch.arange(48.0).view(1, 1, 48) + torch.from_numpy(field[0]).float()[None]
    got = sample_pixels(batch, rows, cols, "reflect")[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_plasma_fractal_statistics_match_the_reference():
    from robustart.corruptions.fractal import plasma_fractal

    ours_maps = plasma_fractal(200, 32, 2.0, make_generator(0), "cpu").numpy()
    rng = np.random.default_rng(0)
    ref_maps = np.stack([ref._plasma(32, 2.0, rng) for _ in range(200)])
    for stat in (np.mean, np.std):
        assert stat(ours_maps) == pytest.approx(stat(ref_maps), rel=0.05)
    roughness = [np.abs(np.diff(m, axis=-1)).mean() for m in (ours_maps, ref_maps)]
    assert roughness[0] == pytest.approx(roughness[1], rel=0.05)
    assert ours_maps.min() == 0 and ours_maps.max() == 1


# --------------------------------------------------------------------------- frost sources
def test_frost_crops_come_from_the_textures(tmp_path):
    """Every image gets ``a · x + b · crop`` with a crop of a (fitted) frost texture."""
    from PIL import Image

    from robustart.corruptions.frost import Frost, fit_texture, load_textures

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (60, 70, 3)).astype(np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(rng.integers(0, 256, (230, 236, 3)).astype(np.uint8)).save(tmp_path / "b.png")
    textures = load_textures((tmp_path / "a.png", tmp_path / "b.png"))
    for size, zoom, weight in ((32, 0.2, 0.2), (224, 1.0, 0.4)):  # severity 1 of each table
        fitted = [fit_texture(t, zoom, size, size) for t in textures]
        # CIFAR: 60×70 → 12×14, enlarged to 32×37 to cover the image; 230×236 → 46×47
        out = Frost(frost_dir=tmp_path)(torch.zeros(6, 3, size, size), 1, make_generator(0))
        crops = [t.unfold(1, size, 1).unfold(2, size, 1).permute(1, 2, 0, 3, 4) for t in fitted]
        windows = torch.cat([c.reshape(-1, 3, size, size) for c in crops])  # every crop
        for frost in out / weight:
            assert (windows - frost).abs().amax(dim=(1, 2, 3)).min() < 1e-5
        assert not torch.equal(out[0], out[1])


def test_frost_sources_and_the_error_without_one(tmp_path, monkeypatch):
    from robustart.corruptions import frost as frost_module

    monkeypatch.delenv(frost_module.FROST_ENV, raising=False)
    monkeypatch.setattr(frost_module, "SHIPPED_FROST_DIR", tmp_path / "not installed")
    corruption = frost_module.Frost()  # constructing never fails; applying does
    with pytest.raises(DatasetNotFoundError, match="reinstall robustart") as info:
        corruption(torch.rand(1, 3, 32, 32), 1)
    assert frost_module.FROST_ENV in str(info.value)
    with pytest.raises(DatasetNotFoundError, match="no frost images"):
        frost_module.Frost(frost_dir=tmp_path)(torch.rand(1, 3, 32, 32), 1)
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        frost_module.frost_texture_files(tmp_path / "missing")
    monkeypatch.setenv(frost_module.FROST_ENV, os.fspath(tmp_path))
    (tmp_path / "b.jpg").write_bytes(b"")
    assert frost_module.frost_texture_files() == [tmp_path / "b.jpg"]


def test_frost_reads_the_shipped_photographs_without_configuration(monkeypatch):
    from robustart.corruptions import frost as frost_module

    monkeypatch.delenv(frost_module.FROST_ENV, raising=False)
    files = frost_module.frost_texture_files()
    assert [f.name for f in files] == list(frost_module.REFERENCE_TEXTURES)  # randint(5)
    out = create_corruption("frost")(torch.full((2, 3, 224, 224), 0.2), 3, make_generator(0))
    assert out.mean() > 0.2 * 0.7 + 0.1


# --------------------------------------------------------------------------- sizes
def test_spatial_parameters_scale_with_the_image_size():
    """A 448-px image corrupted = the 224-px result enlarged (deterministic, spatial)."""
    images = torch.from_numpy(ref.natural_test_images(2, 224, seed=6)).permute(0, 3, 1, 2).float()
    large = F.interpolate(images, scale_factor=2, mode="bilinear", align_corners=False)
    for name in ("defocus_blur", "gaussian_blur"):
        small_out = corrupt(images, name, 3)
        large_out = F.avg_pool2d(corrupt(large, name, 3), 2)
        unscaled = F.avg_pool2d(corrupt(large, name, 1), 2)
        error = F.mse_loss(large_out, small_out)
        assert error < 0.25 * F.mse_loss(unscaled, small_out), name


@pytest.mark.parametrize("name", ref.NAMES)
def test_non_square_and_single_channel_images(name):
    rect = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(0))
    out = corrupt(rect, name, 5, make_generator(0))
    assert out.shape == rect.shape and out.min() >= 0 and out.max() <= 1
    grey = rect[:, :1]
    out = corrupt(grey, name, 3, make_generator(0))
    assert out.shape == grey.shape and out.min() >= 0 and out.max() <= 1


# --------------------------------------------------------------------------- accuracy drop
@pytest.mark.parametrize("severity", [pytest.param(3, marks=pytest.mark.slow), 5])
def test_accuracy_drop_of_a_trained_model_matches_the_reference(
    trained_model, digits, frost_files, severity
):
    """The same model loses the same accuracy on our corruptions as on the reference port's
    (the 297 digits it did not train on; the random corruptions differ in their draws, hence a
    tolerance of 8 points, about two standard errors of a difference at this size)."""
    images, labels = digits[0][1500:], digits[1][1500:]
    array = images.permute(0, 2, 3, 1).double().numpy()
    for name in ref.NAMES:
        mine = torch.from_numpy(ours(array, name, severity, seed=0)).permute(0, 3, 1, 2).float()
        theirs = ref.reference_corrupt(array, name, severity, seed=1, frost_files=frost_files)
        theirs = torch.from_numpy(theirs).permute(0, 3, 1, 2).float()
        with torch.no_grad():
            acc_mine = (trained_model(mine).argmax(1) == labels).float().mean().item()
            acc_theirs = (trained_model(theirs).argmax(1) == labels).float().mean().item()
        assert abs(acc_mine - acc_theirs) <= 0.08, (name, severity, acc_mine, acc_theirs)
