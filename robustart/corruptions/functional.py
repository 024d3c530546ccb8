"""Every registered corruption as a function of its physical parameters (kornia-style).

The registry (:data:`~robustart.corruptions.CORRUPTIONS`, :func:`~robustart.corruptions.corrupt`)
picks a corruption's parameters from a severity 1..5 and the image size; these functions take
the parameters themselves, in pixels of the images passed in, and run the same implementation
(:meth:`~robustart.corruptions.base.Corruption.apply_parameter`). At 32 and 224 px, a severity's
parameters are ``create_corruption(name).parameter(severity, 32, 32)[0]`` (in this order), so
``functional.glass_blur(x, *params, generator=g)`` equals ``corrupt(x, "glass_blur", s, g)``.

Every function takes float images (N, C, H, W) in [0, 1] with 1 (grey) or 3 (RGB) channels on
any device and returns corrupted images of the same shape, dtype and device, in [0, 1].
Random corruptions take ``generator``: one :class:`torch.Generator` on the images' device for
the batch, a sequence of N of them (one per image: each image's result then depends on that
image and its generator alone), or ``None`` (PyTorch's global generator).

The parameters are checked before any work (:class:`~robustart.errors.ConfigError`): they
must be numbers (not strings or bools) within float32 range and in each corruption's range;
lengths in pixels and zoom factors are at most a few times the longer image side (at least 32
px; see :class:`~robustart.corruptions.base.Bound`), glass blur takes at most 100 iterations,
zoom blur at most 1000 zooms and shot noise rates up to 1e12. An output with NaN pixels is
refused (:class:`~robustart.errors.NonFiniteError`) rather than returned.

Example:
    >>> import torch
    >>> from robustart.corruptions import functional
    >>> images = torch.rand(2, 3, 32, 32)
    >>> functional.gaussian_blur(images, sigma=1.5).shape
    torch.Size([2, 3, 32, 32])
"""

from __future__ import annotations

import functools
import os
from typing import Any

from torch import Tensor

from robustart.corruptions.base import Generators, create_corruption
from robustart.corruptions.frost import Frost
from robustart.utils import check_flag

__all__ = [
    "brightness",
    "contrast",
    "defocus_blur",
    "elastic_transform",
    "fog",
    "frost",
    "gaussian_blur",
    "gaussian_noise",
    "glass_blur",
    "impulse_noise",
    "jpeg_compression",
    "motion_blur",
    "pixelate",
    "saturate",
    "shot_noise",
    "snow",
    "spatter",
    "speckle_noise",
    "zoom_blur",
]


@functools.lru_cache(maxsize=8)
def _frost(frost_dir: str | os.PathLike | None) -> Frost:
    return Frost(frost_dir)  # one instance per folder keeps its fitted textures cached


def _apply(name: str, images: Tensor, param: Any, generator: Generators = None) -> Tensor:
    return create_corruption(name).apply_parameter(images, param, 1.0, generator)


# ----------------------------------------------------------------------------- noise
def gaussian_noise(images: Tensor, sigma: float, generator: Generators = None) -> Tensor:
    """Additive Gaussian noise ``x + N(0, σ²)``, independent per pixel and channel.

    Args:
        images: (N, C, H, W) float in [0, 1].
        sigma: Standard deviation σ ≥ 0 (severities: 0.08–0.38 at 224 px, 0.04–0.10 at 32).
        generator: See the module docstring.

    Returns:
        (N, C, H, W) in [0, 1].

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> gaussian_noise(torch.full((1, 3, 8, 8), 0.5), 0.1, g).std().item() > 0.05
        True
    """
    return _apply("gaussian_noise", images, sigma, generator)


def shot_noise(images: Tensor, rate: float, generator: Generators = None) -> Tensor:
    """Poisson (shot) noise ``Poisson(λ · x) / λ``; fewer photons (smaller λ) is noisier.

    Args:
        images: (N, C, H, W) float in [0, 1].
        rate: Photon count λ > 0 at intensity 1 (severities: 60–3 at 224 px, 500–50 at 32).
        generator: See the module docstring.

    Returns:
        (N, C, H, W) in [0, 1], multiples of 1/λ.

    Example:
        >>> out = shot_noise(torch.rand(2, 3, 8, 8), 4.0, torch.Generator().manual_seed(0))
        >>> bool(((out * 4) - (out * 4).round()).abs().max() < 1e-5)
        True
    """
    return _apply("shot_noise", images, rate, generator)


def impulse_noise(images: Tensor, amount: float, generator: Generators = None) -> Tensor:
    """Salt-and-pepper noise drawn per element: each value becomes 0 or 1 with probability
    ``amount`` (channels independently, as the reference).

    Args:
        images: (N, C, H, W) float in [0, 1].
        amount: Probability in [0, 1] (severities: 0.03–0.27 at 224 px, 0.01–0.07 at 32).
        generator: See the module docstring.

    Returns:
        (N, C, H, W) in [0, 1].

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> out = impulse_noise(torch.full((1, 3, 16, 16), 0.5), 0.5, g)
        >>> sorted(out.unique().tolist())
        [0.0, 0.5, 1.0]
    """
    return _apply("impulse_noise", images, amount, generator)


def speckle_noise(images: Tensor, sigma: float, generator: Generators = None) -> Tensor:
    """Multiplicative Gaussian noise ``x + x · N(0, σ²)``: black stays black.

    Args:
        images: (N, C, H, W) float in [0, 1].
        sigma: Standard deviation σ ≥ 0 (severities: 0.15–0.6 at 224 px, 0.06–0.2 at 32).
        generator: See the module docstring.

    Returns:
        (N, C, H, W) in [0, 1].

    Example:
        >>> speckle_noise(torch.zeros(1, 3, 8, 8), 0.6).abs().max().item()
        0.0
    """
    return _apply("speckle_noise", images, sigma, generator)


# ----------------------------------------------------------------------------- blur
def defocus_blur(images: Tensor, radius: float, alias_blur: float) -> Tensor:
    """Correlation with an anti-aliased disk (mirror border, as ``cv2.filter2D``).

    Args:
        images: (N, C, H, W) float in [0, 1].
        radius: Disk radius in pixels (severities: 3–10 at 224 px, 0.3–1.5 at 32).
        alias_blur: σ in pixels of the Gaussian that smooths the disk (0.1–0.6).

    Returns:
        (N, C, H, W) in [0, 1].

    Example:
        >>> flat = torch.full((1, 3, 32, 32), 0.25)
        >>> torch.allclose(defocus_blur(flat, 3.0, 0.5), flat)
        True
    """
    return _apply("defocus_blur", images, (radius, alias_blur))


def glass_blur(
    images: Tensor,
    sigma: float,
    max_delta: int,
    iterations: int,
    generator: Generators = None,
) -> Tensor:
    """Gaussian blur, 8-bit truncation, local pixel moves as the reference's sequential loop,
    Gaussian blur again.

    Args:
        images: (N, C, H, W) float in [0, 1].
        sigma: Blur σ in pixels (severities: 0.7–1.5 at 224 px, 0.05–0.4 at 32).
        max_delta: Largest move d in pixels (rounded, at least 1); moves are in ``[−d, d − 1]``.
        iterations: Passes of moves (1–3).
        generator: See the module docstring.

    Returns:
        (N, C, H, W) in [0, 1].

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> glass_blur(torch.rand(2, 3, 32, 32), 0.7, 1, 2, g).shape
        torch.Size([2, 3, 32, 32])
    """
    return _apply("glass_blur", images, (sigma, max_delta, iterations), generator)


def motion_blur(
    images: Tensor, radius: float, sigma: float, generator: Generators = None
) -> Tensor:
    """The reference's Gaussian-weighted line blur at an angle drawn per image from
    U(−45°, 45°).

    Args:
        images: (N, C, H, W) float in [0, 1].
        radius: Line radius in pixels, rounded, at least 1 (severities: 10–20 at 224 px, 6–9
            at 32).
        sigma: σ in pixels of the weights along the line (1–15).
        generator: See the module docstring.

    Returns:
        (N, C, H, W) in [0, 1].

    Example:
        >>> motion_blur(torch.rand(2, 3, 32, 32), 6, 1.0).shape
        torch.Size([2, 3, 32, 32])
    """
    return _apply("motion_blur", images, (radius, sigma), generator)


def zoom_blur(images: Tensor, start: float, stop: float, step: float) -> Tensor:
    """The mean of the image and its copies zoomed into the centre by
    ``numpy.arange(start, stop, step)``.

    Args:
        images: (N, C, H, W) float in [0, 1].
        start: First zoom factor ≥ 1 (1 in the tables).
        stop: End of the zoom factors, excluded (severities: 1.11–1.31 at 224 px).
        step: Spacing of the zoom factors (0.01–0.03).

    Returns:
        (N, C, H, W) in [0, 1].

    Example:
        >>> flat = torch.full((1, 3, 32, 32), 0.5)
        >>> torch.allclose(zoom_blur(flat, 1.0, 1.11, 0.01), flat)
        True
    """
    return _apply("zoom_blur", images, (start, stop, step))


def gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """Gaussian blur as ``skimage.filters.gaussian``: nearest border, truncated at 4σ.

    Args:
        images: (N, C, H, W) float in [0, 1].
        sigma: σ in pixels (severities: 1–6 at 224 px, 0.4–1 at 32).

    Returns:
        (N, C, H, W) in [0, 1].

    Example:
        >>> impulse = torch.zeros(1, 1, 9, 9)
        >>> impulse[..., 4, 4] = 1.0
        >>> round(gaussian_blur(impulse, 1.0).sum().item(), 4)
        1.0
    """
    return _apply("gaussian_blur", images, sigma)


# ----------------------------------------------------------------------------- weather
def snow(
    images: Tensor,
    mean: float,
    std: float,
    zoom: float,
    threshold: float,
    radius: float,
    sigma: float,
    blend: float,
    generator: Generators = None,
) -> Tensor:
    """The reference's snow: motion-blurred flakes over a brightened, greyed image.

    Args:
        images: (N, C, H, W) float in [0, 1].
        mean: Mean of the flake noise (0.1–0.55).
        std: Standard deviation of the flake noise (0.2–0.4).
        zoom: Flake enlargement ≥ 1 (1–4.5; spatial).
        threshold: Noise below it is no snow (0.5–0.9).
        radius: Motion-blur radius in pixels (8–14), rounded.
        sigma: Motion-blur σ in pixels (3–12); the angle is drawn per image in U(−135°, −45°).
        blend: Weight of the image against its brightened grey (0.55–0.95).
        generator: See the module docstring.

    Returns:
        (N, C, H, W) in [0, 1].

    Example:
        >>> snow(torch.rand(2, 3, 32, 32), 0.1, 0.2, 1.0, 0.6, 8, 3.0, 0.95).shape
        torch.Size([2, 3, 32, 32])
    """
    param = (mean, std, zoom, threshold, radius, sigma, blend)
    return _apply("snow", images, param, generator)


def frost(
    images: Tensor,
    image_weight: float,
    frost_weight: float,
    texture_zoom: float = 1.0,
    generator: Generators = None,
    frost_dir: str | os.PathLike | None = None,
) -> Tensor:
    """``a · x + b · frost`` with a random crop of a random frost photograph per image.

    Args:
        images: (N, C, H, W) float in [0, 1].
        image_weight: a (severities: 1–0.6 at 224 px, 1–0.75 at 32).
        frost_weight: b (0.4–0.75 at 224 px, 0.2–0.45 at 32).
        texture_zoom: Resize factor of the photographs (1 at 224 px, 0.2 at 32; spatial).
        generator: See the module docstring.
        frost_dir: Folder of frost photographs (see :mod:`robustart.corruptions.frost`);
            default ``$ROBUSTART_FROST_DIR``, else the photographs shipped with robustart.

    Returns:
        (N, C, H, W) in [0, 1].

    Example:
        >>> frost(torch.rand(2, 3, 32, 32), 1.0, 0.3, texture_zoom=0.2).shape
        torch.Size([2, 3, 32, 32])
    """
    param = (image_weight, frost_weight, texture_zoom)
    return _frost(frost_dir).apply_parameter(images, param, 1.0, generator)


def fog(
    images: Tensor, strength: float, wibble_decay: float, generator: Generators = None
) -> Tensor:
    """Haze from a plasma fractal per image: ``(x + s · plasma) · max(x) / (max(x) + s)``.

    Args:
        images: (N, C, H, W) float in [0, 1].
        strength: s ≥ 0 (severities: 1.5–3 at 224 px, 0.2–1.5 at 32).
        wibble_decay: Roughness decay > 1 of the fractal; larger is smoother (1.4–3).
        generator: See the module docstring.

    Returns:
        (N, C, H, W) in [0, 1].

    Example:
        >>> fog(torch.rand(2, 3, 32, 32), 0.5, 3.0).shape
        torch.Size([2, 3, 32, 32])
    """
    return _apply("fog", images, (strength, wibble_decay), generator)


def brightness(images: Tensor, delta: float) -> Tensor:
    """Raise the HSV value by ``delta`` (clipped to 1), hue and saturation kept.

    Args:
        images: (N, C, H, W) float in [0, 1]; one channel is its own value.
        delta: Added value (severities: 0.1–0.5 at 224 px, 0.05–0.3 at 32).

    Returns:
        (N, C, H, W) in [0, 1].

    Example:
        >>> out = brightness(torch.tensor([[[[0.2]], [[0.4]], [[0.0]]]]), 0.4)
        >>> [round(v, 4) for v in out.flatten().tolist()]
        [0.4, 0.8, 0.0]
    """
    return _apply("brightness", images, delta)


# ----------------------------------------------------------------------------- digital
def contrast(images: Tensor, factor: float) -> Tensor:
    """``(x − m) · c + m`` with ``m`` each image's per-channel mean; smaller ``c`` is stronger.

    Args:
        images: (N, C, H, W) float in [0, 1].
        factor: c (severities: 0.4–0.05 at 224 px, 0.75–0.15 at 32).

    Returns:
        (N, C, H, W) in [0, 1].

    Example:
        >>> contrast(torch.tensor([[[[0.0, 1.0]]]]), 0.5).flatten().tolist()
        [0.25, 0.75]
    """
    return _apply("contrast", images, factor)


def elastic_transform(
    images: Tensor,
    alpha: float,
    sigma: float,
    jitter: float,
    generator: Generators = None,
) -> Tensor:
    """A random affine jitter, then a smooth random displacement field, per image.

    Args:
        images: (N, C, H, W) float in [0, 1].
        alpha: Displacement scale in pixels (at 224 px: 2–0.12 × 244).
        sigma: Smoothing σ of the field in pixels (0.7–0.01 × 244).
        jitter: Largest move in pixels of the affine map's reference points (0.1–0.02 × 244).
        generator: See the module docstring.

    Returns:
        (N, C, H, W) in [0, 1].

    Example:
        >>> elastic_transform(torch.rand(2, 3, 32, 32), 1.6, 6.4, 2.24).shape
        torch.Size([2, 3, 32, 32])
    """
    return _apply("elastic_transform", images, (alpha, sigma, jitter), generator)


def pixelate(images: Tensor, fraction: float) -> Tensor:
    """Shrink to ``int(side · fraction)`` with PIL's box filter and enlarge back (nearest).

    Args:
        images: (N, C, H, W) float in [0, 1].
        fraction: Size fraction in (0, 1] (severities: 0.6–0.25 at 224 px, 0.95–0.65 at 32).

    Returns:
        (N, C, H, W) in [0, 1].

    Example:
        >>> out = pixelate(torch.rand(1, 3, 32, 32), 0.5)
        >>> torch.equal(out[..., 0::2, 0::2], out[..., 1::2, 1::2])
        True
    """
    return _apply("pixelate", images, fraction)


def jpeg_compression(images: Tensor, quality: int) -> Tensor:
    """A real JPEG encode and decode at ``quality``: libjpeg-turbo's pixels (computed on the GPU
    for CUDA images, see :func:`~robustart.corruptions.jpeg_compression.jpeg_roundtrip`).

    Args:
        images: (N, C, H, W) float in [0, 1].
        quality: JPEG quality 1..100; lower is stronger (25–7 at 224 px, 80–40 at 32).

    Returns:
        (N, C, H, W) in [0, 1], multiples of 1/255.

    Example:
        >>> jpeg_compression(torch.rand(2, 3, 32, 32), 50).shape
        torch.Size([2, 3, 32, 32])
    """
    return _apply("jpeg_compression", images, quality)


def spatter(
    images: Tensor,
    mean: float,
    std: float,
    sigma: float,
    threshold: float,
    intensity: float,
    mud: bool,
    generator: Generators = None,
) -> Tensor:
    """Water drops (``mud=False``) or mud splashes (``mud=True``) occluding the image.

    Args:
        images: (N, C, H, W) float in [0, 1].
        mean: Mean of the liquid noise (0.62–0.67).
        std: Its standard deviation (0.1–0.4).
        sigma: Its blur σ in pixels (0.5–4).
        threshold: Liquid below it is dry (0.65–0.7).
        intensity: Water: largest opacity (0.5–0.6); mud: blur σ of the mud mask in pixels.
        mud: Mud instead of water (a bool, or 0 / 1).
        generator: See the module docstring.

    Returns:
        (N, C, H, W) in [0, 1].

    Example:
        >>> spatter(torch.rand(2, 3, 32, 32), 0.62, 0.1, 0.7, 0.7, 0.5, False).shape
        torch.Size([2, 3, 32, 32])
    """
    mud = check_flag("corruption 'spatter'", "mud", mud, "True (mud) or False (water)")
    param = (mean, std, sigma, threshold, intensity, int(mud))
    return _apply("spatter", images, param, generator)


def saturate(images: Tensor, factor: float, offset: float = 0.0) -> Tensor:
    """Set the HSV saturation to ``clip(S · factor + offset, 0, 1)``, hue and value kept.

    Args:
        images: (N, C, H, W) float in [0, 1].
        factor: Saturation factor (severities: 0.3, 0.1 wash out; 2–20 boost).
        offset: Added saturation (0–0.2); grey turns red as in the reference.

    Returns:
        (N, C, H, W) in [0, 1].

    Example:
        >>> saturate(torch.tensor([[[[1.0]], [[0.5]], [[0.5]]]]), 0.0).flatten().tolist()
        [1.0, 1.0, 1.0]
    """
    return _apply("saturate", images, (factor, offset))
