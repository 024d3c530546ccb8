"""Straightforward per-image NumPy ports of the reference corruption definitions, for fidelity
tests and ``benchmarks/fidelity_corruptions.py``.

Written from the reference definitions (Hendrycks & Dietterich's ``make_imagenet_c.py`` and
``make_cifar_c.py``): one image at a time, in the reference's order of operations, with the
libraries the reference uses (SciPy, scikit-image, OpenCV, PIL). The parameter tables are
repeated here on purpose, from the reference code, so that a wrong entry in robustart's tables
shows up. Two replacements: ImageMagick's motion blur (``wand``) is the Gaussian-weighted line
sum of the ``imagecorruptions`` package (as corruptions.md describes), and glass blur's
sequential pixel moves run on Python lists (same result, faster than NumPy scalar access).

Images are (H, W, 3) float64 arrays in [0, 1]; every function returns one, clipped to [0, 1]
(without the reference's final 8-bit truncation). Randomness comes from a
``numpy.random.Generator``.

Also: natural test images from ``skimage.data``, PSNR/SSIM helpers and an importer for the
``imagecorruptions`` package that works without ``pkg_resources``.
"""

from __future__ import annotations

import importlib
import math
import sys
import types
from pathlib import Path

import numpy as np

# --------------------------------------------------------------------------- reference tables
TABLES = {
    "imagenet": {
        "speckle_noise": [0.15, 0.2, 0.35, 0.45, 0.6],
        "defocus_blur": [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)],
        "glass_blur": [(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)],
        "motion_blur": [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)],
        "zoom_blur": [
            np.arange(1, 1.11, 0.01),
            np.arange(1, 1.16, 0.01),
            np.arange(1, 1.21, 0.02),
            np.arange(1, 1.26, 0.02),
            np.arange(1, 1.31, 0.03),
        ],
        "snow": [
            (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
            (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
            (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
            (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
            (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
        ],
        "frost": [(1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)],
        "fog": [(1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)],
        "spatter": [
            (0.65, 0.3, 4, 0.69, 0.6, 0),
            (0.65, 0.3, 3, 0.68, 0.6, 0),
            (0.65, 0.3, 2, 0.68, 0.5, 0),
            (0.65, 0.3, 1, 0.65, 1.5, 1),
            (0.67, 0.4, 1, 0.65, 1.5, 1),
        ],
        "saturate": [(0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)],
        "elastic_transform": [
            (244 * 2, 244 * 0.7, 244 * 0.1),
            (244 * 2, 244 * 0.08, 244 * 0.2),
            (244 * 0.05, 244 * 0.01, 244 * 0.02),
            (244 * 0.07, 244 * 0.01, 244 * 0.02),
            (244 * 0.12, 244 * 0.01, 244 * 0.02),
        ],
        "pixelate": [0.6, 0.5, 0.4, 0.3, 0.25],
    },
    "cifar": {
        "speckle_noise": [0.06, 0.1, 0.12, 0.16, 0.2],
        "defocus_blur": [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)],
        "glass_blur": [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)],
        "motion_blur": [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)],
        "zoom_blur": [
            np.arange(1, 1.06, 0.01),
            np.arange(1, 1.11, 0.01),
            np.arange(1, 1.16, 0.01),
            np.arange(1, 1.21, 0.01),
            np.arange(1, 1.26, 0.01),
        ],
        "snow": [
            (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
            (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
            (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
            (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
            (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
        ],
        "frost": [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)],
        "fog": [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)],
        "spatter": [
            (0.62, 0.1, 0.7, 0.7, 0.5, 0),
            (0.65, 0.1, 0.8, 0.7, 0.5, 0),
            (0.65, 0.3, 1, 0.69, 0.5, 0),
            (0.65, 0.1, 0.7, 0.69, 0.6, 1),
            (0.65, 0.1, 0.5, 0.68, 0.6, 1),
        ],
        "saturate": [(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)],
        "elastic_transform": [
            (32 * 0, 32 * 0, 32 * 0.08),
            (32 * 0.05, 32 * 0.2, 32 * 0.07),
            (32 * 0.08, 32 * 0.06, 32 * 0.06),
            (32 * 0.1, 32 * 0.04, 32 * 0.05),
            (32 * 0.1, 32 * 0.03, 32 * 0.03),
        ],
        "pixelate": [0.95, 0.9, 0.85, 0.75, 0.65],
    },
}
NAMES = tuple(TABLES["imagenet"])


# --------------------------------------------------------------------------- helpers
def _skimage_gaussian(image: np.ndarray, sigma: float, **kwargs) -> np.ndarray:
    from skimage.filters import gaussian

    channel_axis = -1 if image.ndim == 3 else None
    return gaussian(image, sigma=sigma, channel_axis=channel_axis, **kwargs)


def _reference_clipped_zoom(image: np.ndarray, zoom: float) -> np.ndarray:
    """Centre crop of ceil(h / zoom), ``scipy.ndimage.zoom(order=1)``, centred trim."""
    from scipy.ndimage import zoom as scipy_zoom

    h = image.shape[0]
    crop = int(np.ceil(h / zoom))
    top = (h - crop) // 2
    zoomed = scipy_zoom(image[top : top + crop, top : top + crop], (zoom, zoom, 1), order=1)
    trim = (zoomed.shape[0] - h) // 2
    return zoomed[trim : trim + h, trim : trim + h]


def _line_motion_blur(image: np.ndarray, radius: int, sigma: float, angle: float) -> np.ndarray:
    """Gaussian-weighted sum of edge-replicated shifts along a line (ImageMagick's kernel)."""
    width = 2 * radius + 1
    weights = np.exp(-(np.arange(width) ** 2) / (2 * sigma**2))
    weights /= weights.sum()
    h, w = image.shape[:2]
    out = np.zeros_like(image, dtype=np.float64)
    # ImageMagick's arithmetic, in its order (it decides rounding ties at angles like 30°)
    point = (width * np.sin(np.deg2rad(angle)), width * np.cos(np.deg2rad(angle)))
    length = math.hypot(*point)
    for i in range(width):
        dy = math.ceil(i * point[0] / length - 0.5)
        dx = math.ceil(i * point[1] / length - 0.5)
        if abs(dy) >= h or abs(dx) >= w:
            break
        rows = np.clip(np.arange(h) + dy, 0, h - 1)
        cols = np.clip(np.arange(w) + dx, 0, w - 1)
        out += weights[i] * image[rows][:, cols]
    return out


def _plasma(mapsize: int, decay: float, rng: np.random.Generator) -> np.ndarray:
    """Diamond-square on a periodic grid, wibble starting at 100 and divided by ``decay``."""
    grid = np.zeros((mapsize, mapsize))
    step, wibble = mapsize, 100.0
    while step >= 2:
        half = step // 2
        corner = grid[0::step, 0::step]
        total = corner + np.roll(corner, -1, axis=0)
        total = total + np.roll(total, -1, axis=1)
        grid[half::step, half::step] = total / 4 + wibble * rng.uniform(
            -wibble, wibble, total.shape
        )
        centre = grid[half::step, half::step]
        corner = grid[0::step, 0::step]
        total = centre + np.roll(centre, 1, axis=0) + corner + np.roll(corner, -1, axis=1)
        grid[0::step, half::step] = total / 4 + wibble * rng.uniform(-wibble, wibble, total.shape)
        total = centre + np.roll(centre, 1, axis=1) + corner + np.roll(corner, -1, axis=0)
        grid[half::step, 0::step] = total / 4 + wibble * rng.uniform(-wibble, wibble, total.shape)
        step //= 2
        wibble /= decay
    grid -= grid.min()
    return grid / grid.max()


def sequential_glass_shuffle(
    image: np.ndarray, delta: int, iterations: int, rng: np.random.Generator
) -> np.ndarray:
    """The reference's local pixel moves on an (H, W, C) array: reverse raster order, and at
    each visited pixel the reference's ``x[h, w], x[h', w'] = x[h', w'], x[h, w]``, which on
    NumPy views copies ``x[h', w']`` into ``x[h, w]`` (see ``literal_glass_shuffle``). Python
    lists make the same sequential copies about 20× faster than NumPy scalar indexing."""
    h, w = image.shape[:2]
    pixels = [[image[i, j] for j in range(w)] for i in range(h)]
    rows, cols = range(h - delta, delta, -1), range(w - delta, delta, -1)
    for _ in range(iterations):
        offsets = rng.integers(-delta, delta, size=(len(rows), len(cols), 2)).tolist()
        for a, y in enumerate(rows):
            for b, x in enumerate(cols):
                dx, dy = offsets[a][b]
                pixels[y][x] = pixels[y + dy][x + dx]
    return np.array(pixels)


def literal_glass_shuffle(
    image: np.ndarray, delta: int, iterations: int, rng: np.random.Generator
) -> np.ndarray:
    """The reference's loop verbatim in behaviour (slow): the tuple "swap" on NumPy views."""
    x = image.copy()
    h, w = x.shape[:2]
    for _ in range(iterations):
        offsets = rng.integers(-delta, delta, size=(h - 2 * delta, w - 2 * delta, 2))
        for a, y in enumerate(range(h - delta, delta, -1)):
            for b, z in enumerate(range(w - delta, delta, -1)):
                dx, dy = offsets[a, b]
                x[y, z], x[y + dy, z + dx] = x[y + dy, z + dx], x[y, z]
    return x


# --------------------------------------------------------------------------- corruptions
def speckle_noise(x, c, rng, **_):
    return np.clip(x + x * rng.normal(size=x.shape, scale=c), 0, 1)


def defocus_blur(x, c, rng=None, **_):
    import cv2

    radius, alias = c
    half = 8 if radius <= 8 else radius
    grid = np.arange(-half, half + 1)
    xx, yy = np.meshgrid(grid, grid)
    disk = ((xx**2 + yy**2) <= radius**2).astype(np.float32)
    disk /= disk.sum()
    ksize = (3, 3) if radius <= 8 else (5, 5)
    kernel = cv2.GaussianBlur(disk, ksize=ksize, sigmaX=alias)
    channels = [cv2.filter2D(x[:, :, d], -1, kernel) for d in range(3)]
    return np.clip(np.stack(channels, axis=2), 0, 1)


def glass_blur(x, c, rng, **_):
    sigma, delta, iterations = c
    image = np.uint8(_skimage_gaussian(x, sigma) * 255)
    image = sequential_glass_shuffle(image, delta, iterations, rng)
    return np.clip(_skimage_gaussian(image / 255.0, sigma), 0, 1)


def motion_blur(x, c, rng, **_):
    radius, sigma = c
    return np.clip(_line_motion_blur(x, radius, sigma, rng.uniform(-45, 45)), 0, 1)


def zoom_blur(x, c, rng=None, **_):
    x = x.astype(np.float32)
    total = np.zeros_like(x)
    for zoom in c:
        total += _reference_clipped_zoom(x, zoom)
    return np.clip((x + total) / (len(c) + 1), 0, 1)


def snow(x, c, rng, **_):
    import cv2

    mean, std, zoom, threshold, radius, sigma, blend = c
    x = x.astype(np.float32)
    layer = rng.normal(size=x.shape[:2], loc=mean, scale=std)
    layer = _reference_clipped_zoom(layer[..., None], zoom)
    layer[layer < threshold] = 0
    layer = (np.clip(layer.squeeze(-1), 0, 1) * 255).astype(np.uint8) / 255.0  # to a PNG
    layer = _line_motion_blur(layer, radius, sigma, rng.uniform(-135, -45))
    layer = (np.round(layer * 255) / 255.0)[..., None]  # ImageMagick's 8-bit PNG output
    gray = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)[..., None]
    x = blend * x + (1 - blend) * np.maximum(x, gray * 1.5 + 0.5)
    return np.clip(x + layer + np.rot90(layer, k=2), 0, 1)


def frost(x, c, rng, frost_files, table, **_):
    import cv2

    texture = cv2.imread(str(frost_files[rng.integers(len(frost_files))]))
    if table == "cifar":
        texture = cv2.resize(texture, (0, 0), fx=0.2, fy=0.2)
    h, w = x.shape[:2]
    if texture.shape[0] < h or texture.shape[1] < w:  # beyond the reference: enlarge to fit
        zoom = max(h / texture.shape[0], w / texture.shape[1])
        size = (max(round(texture.shape[1] * zoom), w), max(round(texture.shape[0] * zoom), h))
        texture = cv2.resize(texture, size, interpolation=cv2.INTER_LINEAR)
    top = rng.integers(0, max(texture.shape[0] - h, 1))
    left = rng.integers(0, max(texture.shape[1] - w, 1))
    crop = texture[top : top + h, left : left + w][..., [2, 1, 0]] / 255.0
    return np.clip(c[0] * x + c[1] * crop, 0, 1)


def fog(x, c, rng, **_):
    strength, decay = c
    h, w = x.shape[:2]
    mapsize = 1 << (max(h, w) - 1).bit_length()
    peak = x.max()
    x = x + strength * _plasma(mapsize, decay, rng)[:h, :w][..., None]
    return np.clip(x * peak / (peak + strength), 0, 1)


def spatter(x, c, rng, **_):
    import cv2

    mean, std, sigma, threshold, intensity, mud = c
    x = x.astype(np.float32)
    layer = _skimage_gaussian(rng.normal(size=x.shape[:2], loc=mean, scale=std), sigma)
    layer[layer < threshold] = 0
    if not mud:
        layer8 = (layer * 255).astype(np.uint8)
        dist = 255 - cv2.Canny(layer8, 50, 150)
        dist = cv2.distanceTransform(dist, cv2.DIST_L2, 5)
        _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        dist = cv2.blur(dist, (3, 3)).astype(np.uint8)
        dist = cv2.equalizeHist(dist)
        emboss = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])
        dist = cv2.filter2D(dist, cv2.CV_8U, emboss)
        dist = cv2.blur(dist, (3, 3)).astype(np.float32)
        opacity = layer8 * dist
        opacity = opacity / max(opacity.max(), 1e-12) * intensity
        color = np.array([175, 238, 238]) / 255.0
        return np.clip(x + opacity[..., None] * color, 0, 1)
    mask = _skimage_gaussian(np.where(layer > threshold, 1.0, 0.0).astype(np.float32), intensity)
    mask[mask < 0.8] = 0
    color = np.array([63, 42, 20]) / 255.0
    return np.clip(x * (1 - mask[..., None]) + color * mask[..., None], 0, 1)


def saturate(x, c, rng=None, **_):
    from skimage.color import hsv2rgb, rgb2hsv

    hsv = rgb2hsv(x)
    hsv[:, :, 1] = np.clip(hsv[:, :, 1] * c[0] + c[1], 0, 1)
    return np.clip(hsv2rgb(hsv), 0, 1)


def elastic_transform(x, c, rng, **_):
    import cv2
    from scipy.ndimage import map_coordinates

    alpha, sigma, jitter = c
    image = x.astype(np.float32)
    shape = image.shape
    centre = np.float32(shape[:2]) // 2
    third = min(shape[:2]) // 3
    source = np.float32([centre + third, [centre[0] + third, centre[1] - third], centre - third])
    target = source + rng.uniform(-jitter, jitter, size=source.shape).astype(np.float32)
    matrix = cv2.getAffineTransform(source, target)
    image = cv2.warpAffine(image, matrix, shape[1::-1], borderMode=cv2.BORDER_REFLECT_101)
    fields = [
        _skimage_gaussian(rng.uniform(-1, 1, size=shape[:2]), sigma, mode="reflect", truncate=3)
        * alpha
        for _ in range(2)
    ]
    dx, dy = (f.astype(np.float32)[..., None] for f in fields)
    xs, ys, zs = np.meshgrid(np.arange(shape[1]), np.arange(shape[0]), np.arange(shape[2]))
    coords = (ys + dy).reshape(-1), (xs + dx).reshape(-1), zs.reshape(-1)
    out = map_coordinates(image, coords, order=1, mode="reflect").reshape(shape)
    return np.clip(out, 0, 1)


def pixelate(x, c, rng=None, **_):
    """PIL BOX down then BOX up, per channel in float mode ("F") to avoid 8-bit rounding."""
    from PIL import Image

    h, w = x.shape[:2]
    small = (int(w * c), int(h * c))
    channels = []
    for d in range(x.shape[2]):
        band = Image.fromarray(x[:, :, d].astype(np.float32), mode="F")
        band = band.resize(small, Image.BOX).resize((w, h), Image.BOX)
        channels.append(np.asarray(band, dtype=np.float64))
    return np.clip(np.stack(channels, axis=2), 0, 1)


REFERENCES = {
    "speckle_noise": speckle_noise,
    "defocus_blur": defocus_blur,
    "glass_blur": glass_blur,
    "motion_blur": motion_blur,
    "zoom_blur": zoom_blur,
    "snow": snow,
    "frost": frost,
    "fog": fog,
    "spatter": spatter,
    "saturate": saturate,
    "elastic_transform": elastic_transform,
    "pixelate": pixelate,
}
#: Corruptions without randomness: compared pixel by pixel.
DETERMINISTIC = ("defocus_blur", "zoom_blur", "saturate", "pixelate")


def reference_corrupt(
    images: np.ndarray, name: str, severity: int, seed: int = 0, frost_files=None
) -> np.ndarray:
    """Corrupt a batch (N, H, W, 3) in [0, 1] image by image with the reference port."""
    table = "cifar" if min(images.shape[1:3]) < 85 else "imagenet"
    c = TABLES[table][name][severity - 1]
    rng = np.random.default_rng(seed)
    function = REFERENCES[name]
    return np.stack(
        [function(img, c, rng=rng, frost_files=frost_files, table=table) for img in images]
    )


# --------------------------------------------------------------------------- test images
SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "retina")


def natural_test_images(count: int, size: int, seed: int = 0) -> np.ndarray:
    """``count`` square crops of scikit-image's sample photographs, resized to ``size`` px with
    PIL's antialiased filter and rounded to 8 bits. Shape (count, size, size, 3), float64."""
    import skimage.data
    from PIL import Image

    rng = np.random.default_rng(seed)
    photos = [getattr(skimage.data, name)() for name in SKIMAGE_PHOTOS]
    out = []
    for i in range(count):
        photo = photos[i % len(photos)]
        side = min(photo.shape[:2])
        crop = int(rng.integers(side // 2, side + 1))
        top = int(rng.integers(0, photo.shape[0] - crop + 1))
        left = int(rng.integers(0, photo.shape[1] - crop + 1))
        patch = Image.fromarray(photo[top : top + crop, left : left + crop, :3])
        patch = patch.resize((size, size), Image.LANCZOS)
        out.append(np.asarray(patch, dtype=np.float64) / 255.0)
    return np.stack(out)


# --------------------------------------------------------------------------- metrics
def psnr(clean: np.ndarray, corrupted: np.ndarray) -> np.ndarray:
    """PSNR (dB) of each image pair (N, H, W, C) in [0, 1]; capped at 100 dB."""
    mse = ((clean - corrupted) ** 2).reshape(len(clean), -1).mean(axis=1)
    return np.minimum(10 * np.log10(1.0 / np.maximum(mse, 1e-10)), 100.0)


def ssim(clean: np.ndarray, corrupted: np.ndarray) -> np.ndarray:
    """Mean SSIM of each image pair (N, H, W, C) in [0, 1] (scikit-image, 7×7 window)."""
    from skimage.metrics import structural_similarity

    return np.array(
        [
            structural_similarity(a, b, channel_axis=-1, data_range=1.0)
            for a, b in zip(clean, corrupted)
        ]
    )


# --------------------------------------------------------------------------- imagecorruptions
def import_imagecorruptions(compat: bool = False):
    """Import the ``imagecorruptions`` package, or return ``None`` if it is not installed.

    Version 1.1.2 imports ``pkg_resources`` (gone from recent setuptools) only to locate its
    frost images; a stand-in module resolving paths inside the package is installed first.
    With ``compat=True``, the three functions broken on current libraries are made to run
    (for timing): ``glass_blur`` and ``gaussian_blur`` get scikit-image's ``channel_axis``
    instead of the removed ``multichannel``, ``fog`` a NumPy with the removed ``float_``.
    """
    if importlib.util.find_spec("imagecorruptions") is None:
        return None
    stand_in = None
    if "pkg_resources" not in sys.modules:
        try:
            import pkg_resources  # noqa: F401
        except ImportError:
            stand_in = types.ModuleType("pkg_resources")

            def resource_filename(package: str, resource: str) -> str:
                spec = importlib.util.find_spec(package.split(".")[0])
                return str(Path(spec.submodule_search_locations[0]) / resource)

            stand_in.resource_filename = resource_filename
            sys.modules["pkg_resources"] = stand_in
    try:
        package = importlib.import_module("imagecorruptions")
        functions = importlib.import_module("imagecorruptions.corruptions")
    except Exception:  # a broken install should skip, not fail
        return None
    finally:
        # the package keeps the function it imported; others (pytest's monkeypatch) must not
        # find a pkg_resources without the rest of its API
        if stand_in is not None and sys.modules.get("pkg_resources") is stand_in:
            del sys.modules["pkg_resources"]
    if compat and not getattr(functions, "_robustart_compat", False):
        original_gaussian = functions.gaussian

        def gaussian(image, sigma=1, multichannel=None, **kwargs):
            if multichannel:
                kwargs.setdefault("channel_axis", -1)
            return original_gaussian(image, sigma=sigma, **kwargs)

        class NumpyWithFloat(types.ModuleType):
            float_ = np.float64

            def __getattr__(self, name):
                return getattr(np, name)

        functions.gaussian = gaussian
        functions.np = NumpyWithFloat("numpy")
        functions._robustart_compat = True
    return package
