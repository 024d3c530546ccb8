"""The faster corruption building blocks give what the slower ones gave.

* Poisson counts by table inversion (shot noise) follow the Poisson distribution; the
  Bernoulli successes by geometric skipping (impulse noise) are independent trials.
* Pixelate equals PIL's BOX reduction and NEAREST enlargement, at sizes where PyTorch's
  ``nearest-exact`` picks PIL's pixels and where it does not, and where PIL's boxes leave out or
  share a pixel.
* JPEG equals PIL's libjpeg round trip bit for bit, whatever the number of threads.
* The plasma fractal's rolled sums equal ``torch.roll``'s.
* Frost's texture crops (slices, or one gather from a strided view) equal per-pixel indexing.
* The corruptions that work a few images at a time on the CPU give what one call gives.
* Defocus blur's box sums equal the Fourier correlation with the disk kernel wherever they
  apply, and leave the other radii, dtypes and gradients to it.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from robustart.corruptions import base, corrupt, create_corruption, jpeg_compression, sampling
from robustart.corruptions.disk_filter import disk_filter, disk_row_widths
from robustart.corruptions.fractal import add_rolled_, plasma_fractal, plus_rolled
from robustart.corruptions.frost import crop_textures
from robustart.corruptions.geometry import clipped_zoom
from robustart.corruptions.jpeg_compression import jpeg_roundtrip
from robustart.corruptions.kernels import disk_kernel, fft_correlate
from robustart.corruptions.pixelate import (
    box_reduce,
    nearest_enlarge,
    pixelate_axis,
    torch_nearest_exact_indices,
)
from robustart.corruptions.sampling import bernoulli_indices, poisson_table, scaled_poisson
from robustart.corruptions.zoom_blur import FOLD_LANES, _balanced_chunks, zoom_factors
from robustart.utils import make_generator

stats = pytest.importorskip("scipy.stats")


def chi_square_p(counts: np.ndarray, rate: float) -> float:
    """p-value of the counts against Poisson(rate), bins with ≥ 5 expected, tail pooled."""
    n = len(counts)
    ks = np.arange(int(rate + 10 * np.sqrt(rate) + 20))
    observed = np.bincount(counts.astype(int), minlength=len(ks))[: len(ks)]
    expected = stats.poisson.pmf(ks, rate) * n
    keep = expected > 5
    observed = np.append(observed[keep], n - observed[keep].sum())
    expected = np.append(expected[keep], n - expected[keep].sum())
    if expected[-1] < 1e-6:
        observed, expected = observed[:-1], expected[:-1]
    if len(observed) < 2:
        return 1.0
    return float(stats.chisquare(observed, expected * observed.sum() / expected.sum()).pvalue)


@pytest.mark.parametrize("scale", [3.0, 12.0, 60.0, 500.0])
def test_scaled_poisson_follows_the_poisson_distribution(scale):
    g = make_generator(0)
    p_values = []
    for x in (0.013, 0.37, 0.5, 0.999, 1.0):
        counts = scaled_poisson(torch.full((100_000,), x), scale, g)
        assert counts.dtype == torch.float32 and torch.equal(counts, counts.round())
        p_values.append(chi_square_p(counts.numpy(), float(np.float32(x)) * scale))
    assert min(p_values) > 1e-4, p_values  # 5 tests: a wrong sampler gives p ≈ 0
    assert torch.equal(scaled_poisson(torch.zeros(1000), scale, g), torch.zeros(1000))


def test_scaled_poisson_of_mixed_rates_shapes_and_seeds():
    g = make_generator(1)
    x = torch.rand(400_000, generator=torch.Generator().manual_seed(2))
    counts = scaled_poisson(x, 25.0, g).numpy().astype(int)
    # the pooled histogram against the exact mixture of the 400 000 Poisson laws
    ks = np.arange(60)
    expected = sum(
        stats.poisson.pmf(ks[:, None], chunk[None] * 25.0).sum(1)
        for chunk in np.array_split(x.numpy().astype(np.float64), 20)
    )
    observed = np.bincount(counts, minlength=len(ks))[: len(ks)]
    keep = expected > 5
    chi = ((observed[keep] - expected[keep]) ** 2 / expected[keep]).sum()
    assert stats.chi2.sf(chi, keep.sum() - 1) > 1e-4
    images = torch.rand(2, 3, 5, 7, dtype=torch.float64)
    a = scaled_poisson(images, 60.0, make_generator(3))
    assert a.shape == images.shape and a.dtype == torch.float64
    assert torch.equal(a, scaled_poisson(images, 60.0, make_generator(3)))
    assert scaled_poisson(torch.zeros(0), 5.0, g).shape == (0,)


@pytest.mark.parametrize("scale", [3.0, 12.0, 60.0, 500.0])
def test_eight_bit_images_skip_the_remainder_draws(scale, monkeypatch):
    """k / 255 values (an 8-bit image's floats) lie on the table's grid: their counts come
    from the tables alone and still follow Poisson(scale · k / 255); other values take the
    remainder's draws."""
    calls = []
    original = sampling._add_small_poisson
    monkeypatch.setattr(sampling, "_add_small_poisson", lambda *a: calls.append(1) or original(*a))
    g = make_generator(5)
    every_level = torch.arange(256, dtype=torch.float32).div_(255).repeat(40)
    scaled_poisson(every_level, scale, g)
    p_values = []
    for k in (1, 77, 128, 254, 255):
        x = torch.full((100_000,), k / 255, dtype=torch.float64).float()
        counts = scaled_poisson(x, scale, g)
        p_values.append(chi_square_p(counts.numpy(), float(x[0]) * scale))
    assert calls == [], "8-bit values took the remainder's draws"
    assert min(p_values) > 1e-4, p_values
    scaled_poisson(every_level * 0.999, scale, g)
    assert calls == [1]


def test_poisson_tables_are_bounded_and_consistent():
    for scale in (0.5, 3.0, 60.0, 500.0, 5000.0):
        table = poisson_table(scale, torch.device("cpu"))
        cdf = table.cdf.view(table.rows + 1, table.columns)
        assert cdf.numel() <= 1 << 22 and table.guide.numel() <= 1 << 22
        assert bool((cdf.diff(dim=1) >= 0).all()) and bool((cdf[:, -1] > 1).all())


@pytest.mark.parametrize("p", [0.01, 0.09, 0.5, 0.97])
def test_bernoulli_indices_are_independent_trials(p):
    count = 200_000
    hits = bernoulli_indices(count, p, make_generator(4), "cpu")
    assert hits.dtype == torch.long and bool((hits.diff() > 0).all())
    assert int(hits.min()) >= 0 and int(hits.max()) < count
    k = len(hits)
    assert abs(k - count * p) < 5 * np.sqrt(count * p * (1 - p))
    # successes spread uniformly: the counts per tenth of the trials
    per_tenth = np.bincount(hits.numpy() * 10 // count, minlength=10)
    assert stats.chisquare(per_tenth).pvalue > 1e-4
    # gaps between successes are geometric: P(gap = 1) = p
    gaps = hits.diff().numpy()
    assert abs((gaps == 1).mean() - p) < 5 * np.sqrt(p * (1 - p) / len(gaps))


def test_bernoulli_indices_edge_cases():
    g = make_generator(5)
    assert len(bernoulli_indices(1000, 0.0, g, "cpu")) == 0
    assert torch.equal(bernoulli_indices(7, 1.0, g, "cpu"), torch.arange(7))
    assert len(bernoulli_indices(0, 0.5, g, "cpu")) == 0
    # few expected successes among many trials: several batches of draws
    assert 0 <= len(bernoulli_indices(10**7, 1e-6, g, "cpu")) < 40


def pil_pixelate(image: np.ndarray, fraction: float, up=Image.BOX) -> np.ndarray:
    """The reference on a float image (H, W, C): per band, BOX down, then ``up`` (ImageNet-C's
    BOX; ``imagecorruptions`` uses NEAREST)."""
    h, w = image.shape[:2]
    small = (max(int(w * fraction), 1), max(int(h * fraction), 1))
    bands = []
    for band in np.moveaxis(image, -1, 0):
        reduced = Image.fromarray(band.astype(np.float32), mode="F").resize(small, Image.BOX)
        bands.append(np.asarray(reduced.resize((w, h), up)))
    return np.stack(bands, -1)


FRACTIONS = (0.95, 0.9, 0.85, 0.75, 0.65, 0.6, 0.5, 0.4, 0.3, 0.25)


@pytest.mark.parametrize("size", [(32, 32), (224, 224), (23, 41), (15, 81), (13, 55)])
def test_pixelate_equals_pil_at_every_fraction(size):
    images = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(6))
    for fraction in FRACTIONS:
        rows, cols = pixelate_axis(size[0], fraction), pixelate_axis(size[1], fraction)
        ours = nearest_enlarge(box_reduce(images, rows, cols), rows, cols)
        reference = np.stack([pil_pixelate(x.permute(1, 2, 0).numpy(), fraction) for x in images])
        np.testing.assert_allclose(ours.permute(0, 2, 3, 1).numpy(), reference, atol=1e-6)
        # the matrix path (other devices) gives the same
        matrices = rows.down.float() @ images @ cols.down.float().T
        torch.testing.assert_close(box_reduce(images, rows, cols), matrices, atol=1e-6, rtol=0)
    # sizes above: 23 and 41 at 0.65 and 0.4 take the gather path, 15 at 0.95 the matrices
    assert not pixelate_axis(23, 0.65).torch_nearest and pixelate_axis(15, 0.95).window is None


@pytest.mark.parametrize("size", [32, 224])
def test_pixelate_equals_pil_nearest_enlargement_at_the_table_sizes(size):
    """At 32 and 224 px PIL's NEAREST enlargement picks the same pixels as its BOX one (at
    some other sizes, e.g. 81 → 72 → 81, it picks a neighbour)."""
    images = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(9))
    image = images[0].permute(1, 2, 0).numpy()
    for fraction in FRACTIONS:
        rows = pixelate_axis(size, fraction)
        out = nearest_enlarge(box_reduce(images, rows, rows), rows, rows)[0].permute(1, 2, 0)
        reference = pil_pixelate(image, fraction, Image.NEAREST)
        np.testing.assert_allclose(out.numpy(), reference, atol=1e-6)


def test_torch_nearest_exact_indices_are_what_interpolate_picks():
    for small, size in [(12, 32), (89, 224), (15, 23), (9, 41), (1, 5), (67, 224)]:
        ramp = torch.arange(small, dtype=torch.float64).view(1, 1, 1, small)
        picked = F.interpolate(ramp, size=(1, size), mode="nearest-exact").flatten().long()
        assert np.array_equal(picked.numpy(), torch_nearest_exact_indices(small, size))


def pil_jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    buffer = io.BytesIO()
    pil.save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer)).reshape(image.shape)


@pytest.mark.parametrize("channels", [3, 1])
def test_jpeg_equals_pil_bit_for_bit_with_any_number_of_threads(channels):
    g = torch.Generator().manual_seed(7)
    images = F.interpolate(torch.rand(5, channels, 12, 12, generator=g), size=(48, 40))
    pixels = (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    threads = torch.get_num_threads()
    try:
        for quality in (80, 15, 7):
            reference = np.stack([pil_jpeg(p, quality) for p in pixels]).astype(np.float32) / 255
            for count in (1, 3):
                torch.set_num_threads(count)
                ours = jpeg_roundtrip(images, quality).permute(0, 2, 3, 1).numpy()
                np.testing.assert_array_equal(ours, reference)
    finally:
        torch.set_num_threads(threads)
    double = jpeg_roundtrip(images.double(), 15)
    assert double.dtype == torch.float64
    torch.testing.assert_close(double.float(), jpeg_roundtrip(images, 15), atol=1e-7, rtol=0)


def test_jpeg_pixels_of_checked_and_unchecked_values():
    """The 8-bit rounding (the low byte of 255·x + 1.5·2²³) gives ``(x * 255).round()`` for
    checked values, including the tolerance around [0, 1] and the rounding ties; unchecked
    values outside [0, 1] are clipped first, as before."""
    ties = (torch.arange(255) + 0.5) / 255  # 0.5 to 254.5: every tie inside [0, 1]
    edges = torch.tensor([-1e-5, -0.0, 0.0, 1.0, 1 + 1e-5, 0.5 / 255, 254.5 / 255])
    values = torch.cat([ties, edges, torch.rand(2000, generator=torch.Generator().manual_seed(3))])
    values = values[: 3 * 8 * (len(values) // 24)].view(-1, 3, 8, 1).float()
    expected = (values * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for clip in (False, True):
        pixels = np.empty(expected.shape, np.uint8)
        work = np.empty(values.shape, np.float32)
        np.testing.assert_array_equal(
            jpeg_compression.to_pixels(values.numpy(), work, pixels, clip=clip), expected
        )
    wide = torch.tensor([-0.3, 1.2, 7.0, -5.0]).repeat(6).view(2, 3, 2, 2)
    pixels = np.empty((2, 2, 2, 3), np.uint8)
    clipped = jpeg_compression.to_pixels(wide.numpy(), np.empty((2, 3, 2, 2), np.float32), pixels)
    assert set(np.unique(clipped).tolist()) == {0, 255}
    assert torch.equal(jpeg_roundtrip(wide, 50), jpeg_roundtrip(wide.clamp(0, 1), 50))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torchvision 0.29's codec
@pytest.mark.parametrize("channels", [3, 1])
def test_jpeg_block_by_block_and_both_libraries_give_pils_pixels(channels, monkeypatch):
    """Blocks of two images (the last one short) reuse their work buffers; torchvision's
    codec and the PIL fallback give PIL's own round trip."""
    g = torch.Generator().manual_seed(8)
    images = F.interpolate(torch.rand(5, channels, 9, 11, generator=g), size=(37, 50))
    pixels = (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    reference = np.stack([pil_jpeg(p, 20) for p in pixels])
    for codec in (jpeg_compression._codec(), None):
        if codec is None:  # the fallback used where torchvision has no codec
            codec = lambda p, q, out: np.stack(  # noqa: E731
                [jpeg_compression._pil_roundtrip(i, q) for i in p], out=out
            )
        np.testing.assert_array_equal(codec(pixels, 20, np.empty_like(pixels)), reference)
    monkeypatch.setattr(jpeg_compression, "BLOCK_PIXELS", 2 * images[0].numel())
    for dtype in (torch.float32, torch.float64):
        ours = jpeg_roundtrip(images.to(dtype), 20)
        expected = torch.from_numpy(reference).permute(0, 3, 1, 2).to(dtype) / 255
        assert ours.dtype == dtype and torch.equal(ours, expected)


def test_rolled_sums_equal_torch_roll():
    for shape in ((2, 5, 6), (2, 100, 90)):  # rolled by torch.roll, and by slices
        a, b = torch.rand(shape), torch.rand(shape)
        for shift in (1, -1):
            for dim in (1, 2):
                expected = a + b.roll(shift, dims=dim)
                assert torch.equal(plus_rolled(a, b, shift, dim), expected)
                assert torch.equal(add_rolled_(a.clone(), b, shift, dim), expected)
    one = torch.rand(3, 1, 1)
    assert torch.equal(plus_rolled(one, one, -1, 1), one + one)
    with pytest.raises(ValueError, match="shift"):
        plus_rolled(a, b, 2, 1)


def test_plasma_maps_are_normalised_and_per_image_generators_are_per_map():
    maps = plasma_fractal(3, 64, 2.0, [make_generator(s) for s in (1, 2, 3)], "cpu")
    assert maps.dtype == torch.float32 and maps.shape == (3, 64, 64)
    assert torch.equal(maps.amin(dim=(1, 2)), torch.zeros(3))
    assert torch.equal(maps.amax(dim=(1, 2)), torch.ones(3))
    alone = plasma_fractal(1, 64, 2.0, [make_generator(2)], "cpu")
    assert torch.equal(maps[1:2], alone)


def test_fog_chunks_give_the_same_maps_as_one_call():
    """Fog generates its maps a few images at a time; with per-image generators the result
    cannot depend on how the batch is cut."""
    images = torch.rand(11, 3, 256, 256, generator=torch.Generator().manual_seed(8))
    generators = [make_generator(s) for s in range(11)]
    batch = corrupt(images, "fog", 3, generators)
    alone = [corrupt(images[i : i + 1], "fog", 3, [make_generator(i)]) for i in range(11)]
    assert torch.equal(batch, torch.cat(alone))


@pytest.mark.parametrize("method", ["slices", "gather", "auto"])
def test_frost_crops_equal_per_pixel_indexing(method):
    """Every crop, also those touching the last row and column of the stack and of the last
    texture, is the crop that indexing with row and column tensors (the route before) gives."""
    g = make_generator(0)
    stack = torch.rand(4, 3, 37, 53, generator=g)
    n, h, w = 50, 11, 20
    pick = torch.randint(0, 4, (n,), generator=g)
    top = torch.randint(0, 37 - h + 1, (n,), generator=g)
    left = torch.randint(0, 53 - w + 1, (n,), generator=g)
    pick[:3], top[:3], left[:3] = torch.tensor([3, 3, 0]), torch.tensor([37 - h, 0, 37 - h]), 0
    left[0] = 53 - w
    rows = top[:, None, None] + torch.arange(h)[None, :, None]
    cols = left[:, None, None] + torch.arange(w)[None, None, :]
    expected = stack[pick[:, None, None], :, rows, cols].permute(0, 3, 1, 2)
    crops = crop_textures(stack, pick, top, left, h, w, method=method)
    assert crops.is_contiguous() and torch.equal(crops, expected)
    empty = crop_textures(stack, pick[:0], top[:0], left[:0], h, w, method=method)
    assert empty.shape == (0, 3, h, w)


@pytest.mark.parametrize("name", ["brightness", "saturate", "zoom_blur", "snow"])
@pytest.mark.parametrize(("size", "count"), [(32, 300), (97, 20), (224, 5)])
def test_chunked_corruptions_equal_one_call(name, size, count, monkeypatch):
    """map_image_chunks splits the batch on the CPU (about CHUNK_BYTES of images per call: 85
    images at 32 px, 9 at 97 px, one at 224 px); the result is bit-equal to one call."""
    images = torch.rand(count, 3, size, size, generator=make_generator(size))
    corruption = create_corruption(name)
    chunked = corruption(images, 3, make_generator(1))
    monkeypatch.setattr(base, "CHUNK_BYTES", 1 << 40)
    assert torch.equal(chunked, corruption(images, 3, make_generator(1)))


# ----------------------------------------------------------------------------- defocus blur
def _disk_by_fft(images, radius, alias_blur):
    return fft_correlate(images, disk_kernel(radius, alias_blur), border="mirror")


@pytest.mark.parametrize(
    ("radius", "alias_blur"),
    # the ImageNet table at 224 px and scaled to 32 px, the CIFAR table, the float32 edges of
    # the box sums (6.99 and 7: the last radius kept and the first left to the Fourier route)
    [
        *[(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5), (6 * 32 / 224, 0.5 * 32 / 224)],
        *[(0.3, 0.4), (1, 0.2), (1.5, 0.1), (2.5, 0.0), (6.99, 0.3), (7, 0.5)],
    ],
)
def test_defocus_box_sums_equal_the_fourier_correlation(radius, alias_blur):
    images = torch.rand(5, 3, 61, 47, generator=torch.Generator().manual_seed(0))
    expected = _disk_by_fft(images, radius, alias_blur)
    assert (disk_filter(images, radius, alias_blur) - expected).abs().max() < 1e-6
    assert (disk_row_widths(radius) is not None) == (radius < 7)


def test_defocus_box_sums_in_chunks_and_on_random_radii(monkeypatch):
    """Chunks of a few planes (the last one short) and random radii and sizes: the same."""
    from robustart.corruptions import disk_filter as module

    monkeypatch.setattr(module, "CHUNK_ELEMENTS", 3 * 40 * 40)
    generator = torch.Generator().manual_seed(1)
    for _ in range(25):
        radius = 0.05 + 6.9 * torch.rand((), generator=generator).item()
        alias_blur = 0.8 * torch.rand((), generator=generator).item()
        h, w = (int(v) for v in torch.randint(9, 40, (2,), generator=generator))
        images = torch.rand(int(torch.randint(1, 4, ())), 3, h, w, generator=generator)
        expected = _disk_by_fft(images, radius, alias_blur)
        assert (disk_filter(images, radius, alias_blur) - expected).abs().max() < 1e-6


def test_defocus_box_sums_leave_other_inputs_to_the_fourier_route():
    """float64 images and images smaller than the disk take the Fourier route (equal)."""
    images = torch.rand(2, 3, 20, 20, dtype=torch.float64)
    assert torch.equal(disk_filter(images, 3, 0.5), _disk_by_fft(images, 3, 0.5))
    small = torch.rand(1, 3, 5, 5)
    assert torch.equal(disk_filter(small, 6, 0.5), _disk_by_fft(small, 6, 0.5))


# ----------------------------------------------------------------------------- zoom blur
def _zooms_channels_last(images, factors):
    """The route before the fold: the batch channels-last, three channels per pixel."""
    planes = images.contiguous(memory_format=torch.channels_last)
    total = planes.clone()
    for zoom in factors:
        total += clipped_zoom(planes, zoom)
    return (total / (len(factors) + 1)).contiguous()


@pytest.mark.parametrize(("size", "count"), [(224, 18), (32, 300), (32, 6), (45, 40)])
def test_zoom_blur_folded_into_channels_equals_the_batch_route(size, count):
    """The CPU fold (images as the channels of one image, padded to FOLD_LANES) gives the
    values of the channels-last batch route up to the vector loop's float rounding."""
    images = torch.rand(count, 3, size, size + 5, generator=make_generator(size))
    corruption = create_corruption("zoom_blur")
    for severity in (1, 3, 5):
        param, _ = corruption.parameter(severity, size, size + 5)
        expected = _zooms_channels_last(images, zoom_factors(*param))
        out = corruption(images, severity)
        assert out.is_contiguous() and out.dtype == images.dtype
        assert (out - expected).abs().max().item() <= 1e-6, severity


def test_zoom_blur_gives_an_image_the_same_values_in_any_batch_of_six_or_more():
    """Every folded plane runs the vector loop, so an image's values do not depend on its
    batch-mates or its place (the zero planes pad the fold); a batch below FOLD_LANES planes
    and a lone image take the three-channel route, equal up to rounding."""
    images = torch.rand(40, 3, 32, 32, generator=make_generator(0))
    corruption = create_corruption("zoom_blur")
    whole = corruption(images, 4)
    assert FOLD_LANES == 16  # batches of 6 images (18 planes) and up are folded
    for part in (slice(0, 6), slice(3, 40), slice(17, 25), slice(7, 39)):
        assert torch.equal(corruption(images[part], 4), whole[part])
    lone = torch.cat([corruption(images[i : i + 1], 4) for i in range(5)])
    assert (lone - whole[:5]).abs().max().item() <= 1e-6
    assert torch.equal(corruption(images[:5], 4), lone)  # 15 planes: the batch route


def test_balanced_chunks_leave_no_small_remainder():
    assert _balanced_chunks(10, 16) == [slice(0, 10)]
    assert _balanced_chunks(17, 16) == [slice(0, 8), slice(8, 17)]
    chunks = _balanced_chunks(300, 85)
    assert [c.stop - c.start for c in chunks] == [75, 75, 75, 75]
    assert chunks[0].start == 0 and chunks[-1].stop == 300
