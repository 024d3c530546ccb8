"""ImageNet-P / CIFAR-10-P perturbation sequences: contracts, exact frames and drift."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from robustart.corruptions.color import add_hsv_value
from robustart.corruptions.geometry import shift_image
from robustart.corruptions.kernels import gaussian_blur, motion_blur
from robustart.errors import ConfigError, EmptyInputError, UnknownNameError
from robustart.perturbations import (
    BENCHMARK_PERTURBATIONS,
    EXTRA_PERTURBATIONS,
    PERTURBATIONS,
    create_perturbation,
    is_noise_sequence,
    perturb,
)
from robustart.utils import make_generator

NOISE = {"gaussian_noise", "shot_noise", "speckle_noise"}
RANDOM = NOISE | {"snow", "spatter"}
CIFAR_FRAMES = {"translate": 16, "motion_blur": 21}
IMAGENET_FRAMES = {"translate": 41}


def smooth_images(n=2, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, max(size // 8, 2), max(size // 8, 2), generator=g)
    smooth = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    return (0.1 + 0.75 * smooth + 0.1 * torch.rand(n, 3, size, size, generator=g)).clamp(0, 1)


def test_catalog():
    assert set(PERTURBATIONS.names()) == set(BENCHMARK_PERTURBATIONS) | set(EXTRA_PERTURBATIONS)
    assert len(BENCHMARK_PERTURBATIONS) == 10 and len(EXTRA_PERTURBATIONS) == 4
    assert {n for n in PERTURBATIONS.names() if is_noise_sequence(n)} == NOISE
    with pytest.raises(UnknownNameError, match="Did you mean: rotate"):
        create_perturbation("rotat")


@pytest.mark.parametrize("name", PERTURBATIONS.names())
def test_shapes_range_frame_counts_and_seeds(name):
    images = smooth_images(1)
    video = perturb(images, name, 1, make_generator(0))
    frames = CIFAR_FRAMES.get(name, 31)
    assert video.shape == (1, frames, 3, 32, 32) and video.dtype == images.dtype
    assert video.min() >= 0 and video.max() <= 1
    assert create_perturbation(name).num_frames(32, 32) == frames
    assert create_perturbation(name).num_frames(224, 224) == IMAGENET_FRAMES.get(name, 31)
    assert torch.equal(video, perturb(images, name, 1, make_generator(0)))
    assert not torch.equal(video[:, 0], video[:, -1])  # frames change along the sequence
    if name in RANDOM:
        assert not torch.equal(video, perturb(images, name, 1, make_generator(1)))


def test_crop_follows_the_reference_resize_256_then_crop_224():
    images = smooth_images(1, 256)
    for name in ("translate", "rotate", "gaussian_noise"):
        video = perturb(images, name, 1, make_generator(0), crop=224)
        assert video.shape == (1, IMAGENET_FRAMES.get(name, 31), 3, 224, 224)
    # non-geometric sequences crop first, as the reference: same as perturbing the crop
    inner = images[..., 16:240, 16:240]
    for name in ("gaussian_noise", "gaussian_blur"):
        a = perturb(images, name, 1, make_generator(3), crop=224)
        assert torch.equal(a, perturb(inner, name, 1, make_generator(3)))
    with pytest.raises(ConfigError, match="larger than the images"):
        perturb(images, "rotate", crop=300)


@pytest.mark.parametrize("name", sorted(NOISE))
def test_noise_sequences_start_clean_and_grow_with_difficulty(name):
    images = smooth_images(4)
    spreads = []
    for difficulty in (1, 2, 3):
        video = perturb(images, name, difficulty, make_generator(0))
        assert torch.equal(video[:, 0], images)  # frame 0 is the clean image
        assert not torch.equal(video[:, 1], video[:, 2])  # independent draws
        spreads.append((video[:, 1:] - images[:, None]).std().item())
    assert spreads[0] < spreads[1] < spreads[2]
    with pytest.raises(ConfigError, match="difficulty"):
        perturb(images, name, 4)


def test_gaussian_noise_level_is_the_table_value():
    images = torch.full((2, 3, 32, 32), 0.5)
    for size, sigma in ((32, 0.02), (224, 0.03)):
        batch = F.interpolate(images, size=(size, size))
        noise = perturb(batch, "gaussian_noise", 1, make_generator(0))[:, 1:] - batch[:, None]
        assert noise.std().item() == pytest.approx(sigma, rel=0.03)


def test_only_noise_sequences_have_difficulties():
    with pytest.raises(
        ConfigError, match="difficulty of 'rotate' must be an integer, one of \\[1\\]"
    ):
        perturb(smooth_images(), "rotate", 2)


def test_brightness_frames_are_exact():
    images = smooth_images()
    video = perturb(images, "brightness", 1)
    for i in (0, 7, 15, 30):
        expected = add_hsv_value(images, (i - 15) * 0.015).clamp(0, 1)  # CIFAR-10-P step
        torch.testing.assert_close(video[:, i], expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(video[:, 15], images, atol=1e-6, rtol=0)
    big = perturb(smooth_images(1, 224), "brightness", 1)  # ImageNet-P: ΔV = (i − 15)·0.02
    value = big.amax(dim=2)
    torch.testing.assert_close(value[:, 16] - value[:, 15], torch.full_like(value[:, 15], 0.02))


def test_translate_moves_by_whole_pixels_exactly():
    images = smooth_images()
    video = perturb(images, "translate", 1)  # CIFAR-10-P: dx = i − 7
    assert torch.equal(video[:, 7], images)
    assert torch.equal(video[:, 10], shift_image(images, 3, 0))
    assert torch.equal(video[:, 0, ..., :25], images[..., 7:])
    assert torch.equal(video[:, 0, ..., 25:], torch.zeros_like(video[:, 0, ..., 25:]))
    large = smooth_images(1, 256)
    cropped = perturb(large, "translate", 1, crop=224)  # ImageNet-P: dx = i − 20, real content
    assert torch.equal(cropped[:, 20], large[..., 16:240, 16:240])
    assert torch.equal(cropped[:, 0, ..., :220], large[..., 16:240, 36:256])  # moved 20 px left
    assert not cropped[:, 0, ..., 220:].any()  # beyond the 256-px image: black, as PIL fills


@pytest.mark.parametrize("name, identity", [("rotate", 15), ("shear", 15), ("scale", 24)])
def test_affine_sequences_pass_through_the_identity_frame_and_drift(name, identity):
    """Rotation 0°, shear 0° and scale 100 % leave the image unchanged; the change grows with
    the distance from that frame (ImageNet-P scale: (2.5 i + 40) % is 100 % at i = 24)."""
    images = smooth_images(2, 96)
    video = perturb(images, name, 1, crop=None)
    if name == "scale":
        video = perturb(smooth_images(2, 256), name, 1, crop=224)
        images = smooth_images(2, 256)[..., 16:240, 16:240]
    torch.testing.assert_close(video[:, identity], images, atol=1e-5, rtol=0)
    error = [F.mse_loss(video[:, i], images).item() for i in range(31)]
    after = error[identity:]
    before = error[: identity + 1][::-1]
    for side in (after, before):
        assert all(b >= a - 1e-6 for a, b in itertools.pairwise(side[:8])), side


def test_tilt_is_nearly_identity_at_zero_and_a_growing_perspective_elsewhere():
    # the reference's projection keeps z = 1 + f at 0°, a shrink by f / (1 + f) (0.99 here)
    images = smooth_images(2, 64)
    video = perturb(images, "tilt", 1)
    assert F.mse_loss(video[:, 15, :, 4:-4, 4:-4], images[..., 4:-4, 4:-4]) < 1e-3
    error = [F.mse_loss(video[:, i], images).item() for i in range(15, 31)]
    assert error[0] < error[5] < error[15]


def test_tilt_matches_opencv_warp_perspective():
    cv2 = pytest.importorskip("cv2")
    from robustart.corruptions.geometry import tilt_homography

    image = smooth_images(1, 64)[0].permute(1, 2, 0).numpy()
    video = perturb(torch.from_numpy(image).permute(2, 0, 1)[None], "tilt", 1)  # 0.75·(i − 15)°
    matrix = tilt_homography(64, 64, 0.75 * (25 - 15)).numpy()
    expected = cv2.warpPerspective(image, matrix, (64, 64))
    got = video[0, 25].permute(1, 2, 0).numpy()
    assert np.abs(got - expected)[2:-2, 2:-2].max() < 0.01  # OpenCV's 1/32-pixel grid


def test_motion_blur_turns_and_ends_at_zero_degrees():
    images = smooth_images(2, 32)
    video = perturb(images, "motion_blur", 1)  # CIFAR-10-P: radius 6, σ 1.8, (i − 20)·9°
    expected = motion_blur(images, 6, 1.8, torch.zeros(2))
    torch.testing.assert_close(video[:, -1], expected.clamp(0, 1), atol=1e-5, rtol=0)
    expected = motion_blur(images, 6, 1.8, torch.full((2,), -90.0))
    torch.testing.assert_close(video[:, 10], expected.clamp(0, 1), atol=1e-5, rtol=0)


def test_blur_sequences_drift_monotonically():
    images = smooth_images(2, 32)
    blur = perturb(images, "gaussian_blur", 1)
    torch.testing.assert_close(blur[:, 0], gaussian_blur(images, 0.3, 7.0), atol=1e-6, rtol=0)
    zoom = perturb(images, "zoom_blur", 1)
    assert torch.equal(zoom[:, 0], images)
    for video in (blur, zoom):
        error = [F.mse_loss(video[:, i], images).item() for i in range(31)]
        assert all(b >= a for a, b in itertools.pairwise(error)), error


def test_snow_keeps_its_flakes_and_turns_them():
    video = perturb(smooth_images(2, 64), "snow", 1, make_generator(0))
    change = [F.mse_loss(video[:, i + 1], video[:, i]).item() for i in range(30)]
    assert 0 < max(change) < 0.01  # one snow layer blown in another direction, not redrawn


def test_spatter_drifts_down_like_numpy_convolve():
    from robustart.perturbations.weather import convolve_rows_same

    layer = torch.rand(2, 1, 20, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for kernel in ((0.05, 0.1, 0.15, 0.7), (0.2, 0.8)):
        expected = np.apply_along_axis(
            lambda col, k=kernel: np.convolve(col, np.array(k), mode="same"), 2, layer.numpy()
        )
        np.testing.assert_allclose(convolve_rows_same(layer, kernel).numpy(), expected, atol=1e-12)
    images = smooth_images(2, 32)
    video = perturb(images, "spatter", 1, make_generator(0))
    wet = (video - images[:, None]).abs().sum(dim=2)  # (N, T, H, W)
    rows = torch.arange(32.0).view(1, 1, 32, 1)
    centre = (wet * rows).sum(dim=(2, 3)) / wet.sum(dim=(2, 3)).clamp_min(1e-9)
    assert (centre[:, 20] > centre[:, 0]).all()  # the water runs down


def test_perturbations_refuse_float_difficulties_and_empty_batches():
    """A float difficulty was accepted by the membership check and then failed as a tuple
    index (TypeError); a batch of no images gave an empty video or a reduction error."""
    images = torch.rand(1, 3, 32, 32)
    with pytest.raises(ConfigError, match="must be an integer"):
        perturb(images, "gaussian_noise", 1.0)
    with pytest.raises(EmptyInputError, match="got no images"):
        perturb(images[:0], "gaussian_noise", 1)
    with pytest.raises(EmptyInputError, match="got no images"):
        perturb(images[:0], "rotate", 1)


@pytest.mark.parametrize("sides", [(0, 10, 5), (10, 0, 5), (10, 10, 0), (10, 10, -3)])
def test_shorter_side_size_refuses_empty_sides(sides):
    from robustart.system_noise.pipeline import shorter_side_size

    with pytest.raises(ConfigError, match="at least 1 pixel"):
        shorter_side_size(*sides)
