"""Convolution kernels, borders and filtering shared by the corruptions.

Kernels are built on the images' device in float32; filtering is depthwise (each channel with
the same kernel). Gaussian kernels come from kornia (``kornia.filters.get_gaussian_kernel1d``).
The filtering is robustart's own: kornia's ``filters.gaussian_blur2d`` and ``filters.filter2d``
give the same results (max. abs. difference 3e-7 and 8e-7 on images in [0, 1], see
``tests/test_corruptions_kornia.py``) but run a depthwise ``conv2d``, which on the CPU is 4–9×
slower than the shifted sums, matrix products and FFTs below (and kornia has no scipy
"reflect" border, which the elastic transform needs).

Borders are named as in ``scipy.ndimage``, which the reference definitions use (through
``scipy`` and ``skimage``; OpenCV's default ``BORDER_REFLECT_101`` is "mirror"):

=============  ===========================  =====================
border         extension of ``a b c d``      OpenCV / torch name
=============  ===========================  =====================
``nearest``    ``a a | a b c d | d d``      REPLICATE / replicate
``reflect``    ``b a | a b c d | d c``      REFLECT / -
``mirror``     ``c b | a b c d | c b``      REFLECT_101 / reflect
``wrap``       ``c d | a b c d | a b``      WRAP / circular
``constant``   ``0 0 | a b c d | 0 0``      CONSTANT / constant
=============  ===========================  =====================

Any pad width works (the border is applied repeatedly), so kernels may be wider than images.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F
from kornia.filters import get_gaussian_kernel1d
from torch import Tensor

from robustart.errors import ConfigError

BORDERS = ("nearest", "reflect", "mirror", "wrap", "constant")
#: Borders that ``torch.nn.functional.pad`` implements natively (for pads narrower than the image).
_TORCH_PAD_MODES = {"nearest": "replicate", "mirror": "reflect", "wrap": "circular"}


# ----------------------------------------------------------------------------- borders
def border_indices(
    size: int, before: int, after: int, border: str, device: torch.device | str | None = None
) -> Tensor:
    """Source index of every position of an axis of length ``size`` padded by ``before``/``after``.

    Args:
        size: Length of the axis (≥ 1).
        before: Positions added before index 0.
        after: Positions added after index ``size - 1``.
        border: One of :data:`BORDERS` except ``"constant"``.

    Returns:
        Long tensor of shape (before + size + after,) with values in [0, size).

    Example:
        >>> border_indices(4, 2, 2, "reflect").tolist()
        [1, 0, 0, 1, 2, 3, 3, 2]
    """
    position = torch.arange(-before, size + after, device=device)
    if border == "nearest":
        return position.clamp(0, size - 1)
    if border == "wrap":
        return position.remainder(size)
    if border == "reflect":
        folded = position.remainder(2 * size)
        return torch.where(folded < size, folded, 2 * size - 1 - folded)
    if border == "mirror":
        if size == 1:
            return torch.zeros_like(position)
        folded = position.remainder(2 * size - 2)
        return torch.where(folded < size, folded, 2 * size - 2 - folded)
    raise ConfigError(f"unknown border {border!r}; use one of {BORDERS}")


def pad2d(images: Tensor, top: int, bottom: int, left: int, right: int, border: str) -> Tensor:
    """Pad the last two dimensions of ``images`` (..., H, W) with a border of any width."""
    if border not in BORDERS:
        raise ConfigError(f"unknown border {border!r}; use one of {BORDERS}")
    if top == bottom == left == right == 0:
        return images
    h, w = images.shape[-2:]
    if border == "constant":
        return F.pad(images, (left, right, top, bottom))
    if border in _TORCH_PAD_MODES and max(top, bottom) < h and max(left, right) < w:
        flat = images.reshape(-1, 1, h, w) if images.ndim != 4 else images
        padded = F.pad(flat, (left, right, top, bottom), mode=_TORCH_PAD_MODES[border])
        return padded.reshape(*images.shape[:-2], *padded.shape[-2:])
    rows = border_indices(h, top, bottom, border, images.device)
    cols = border_indices(w, left, right, border, images.device)
    return images.index_select(-2, rows).index_select(-1, cols)


# ----------------------------------------------------------------------------- kernels
def gaussian_kernel1d(
    sigma: float,
    truncate: float = 4.0,
    device: torch.device | str | None = None,
    radius: int | None = None,
) -> Tensor:
    """Normalised 1-D Gaussian of standard deviation ``sigma`` (pixels), from kornia.

    The radius is ``int(truncate · sigma + 0.5)``, as in ``scipy.ndimage.gaussian_filter``
    (``kornia.filters.gaussian_blur2d`` with kernel size ``2 · radius + 1`` is the same blur),
    unless ``radius`` is given (OpenCV's fixed ``ksize``, as ``cv2.getGaussianKernel``).
    ``sigma ≤ 0`` gives the identity.

    Returns:
        Tensor of shape (2·radius + 1,), summing to 1.

    Example:
        >>> gaussian_kernel1d(1.0).shape  # radius int(4 · 1 + 0.5) = 4
        torch.Size([9])
        >>> gaussian_kernel1d(0.0, radius=1).tolist()
        [0.0, 1.0, 0.0]
    """
    if radius is None:
        radius = int(truncate * float(sigma) + 0.5)
    return get_gaussian_kernel1d(2 * radius + 1, max(float(sigma), 0.0), device=device)[0]


def disk_kernel(
    radius: float, alias_blur: float, device: torch.device | str | None = None
) -> Tensor:
    """The reference defocus kernel: a normalised disk, anti-aliased by a small Gaussian.

    The disk ``x² + y² ≤ radius²`` lies on a grid of half-width 8 (``radius ≤ 8``) or
    ``ceil(radius)``; it is normalised to sum 1, then blurred with a 3×3 (``radius ≤ 8``) or
    5×5 Gaussian of standard deviation ``alias_blur`` with "mirror" borders, as
    ``cv2.GaussianBlur`` in the reference.

    Returns:
        Tensor of shape (k, k), k = 17 for ``radius ≤ 8``, else 2·ceil(radius) + 1.
    """
    small = radius <= 8
    half = 8 if small else math.ceil(radius)
    grid = torch.arange(-half, half + 1, device=device, dtype=torch.float32)
    disk = ((grid[:, None] ** 2 + grid[None, :] ** 2) <= radius**2).float()
    disk = disk / disk.sum()
    blur = gaussian_kernel1d(alias_blur, device=device, radius=1 if small else 2)
    return separable_filter(disk[None, None], blur, border="mirror")[0, 0]


# kornia.filters.motion_blur is not the reference's: a uniform line kernel (ImageMagick's is
# Gaussian-weighted along the line), max. abs. difference 0.5 at radius 15, σ 5.
def motion_blur_weights(
    radius: int, sigma: float, device: torch.device | str | None = None
) -> Tensor:
    """Weights of the reference motion-blur line kernel (ImageMagick's ``MotionBlurImage``).

    ``2·radius + 1`` taps ``exp(−i² / 2σ²)``, i = 0, 1, ..., normalised to sum 1: a one-sided
    Gaussian along the line, heaviest at the pixel itself.

    Returns:
        Tensor of shape (2·radius + 1,).
    """
    taps = torch.arange(2 * radius + 1, device=device, dtype=torch.float32)
    weights = torch.exp(-(taps**2) / (2 * float(sigma) ** 2))
    return weights / weights.sum()


def motion_line_offsets(num_taps: int, angles: Tensor) -> tuple[Tensor, Tensor]:
    """Integer pixel offsets of the motion-blur taps along lines at ``angles`` (degrees).

    Tap i of an image blurred at angle θ reads the pixel ``(y + ceil(i·p_y/|p| − ½),
    x + ceil(i·p_x/|p| − ½))`` with ``p = num_taps · (sin θ, cos θ)``, as ImageMagick's motion
    blur (0° points right, 90° down). The arithmetic is done in float64 on the host in exactly
    this order, as the reference does, because angles such as 30° or −120° put taps on
    rounding ties that a mathematically equal formula would break differently.

    Args:
        num_taps: Number of taps (2·radius + 1).
        angles: Angles in degrees, shape (N,).

    Returns:
        ``(dy, dx)``, long tensors of shape (N, num_taps) on the angles' device.
    """
    radians = np.deg2rad(angles.detach().to("cpu", torch.float64).numpy())
    point_y, point_x = num_taps * np.sin(radians), num_taps * np.cos(radians)
    length = np.array([math.hypot(y, x) for y, x in zip(point_y.tolist(), point_x.tolist())])
    taps = np.arange(num_taps, dtype=np.float64)[None, :]
    dy = np.ceil(taps * point_y[:, None] / length[:, None] - 0.5)
    dx = np.ceil(taps * point_x[:, None] / length[:, None] - 0.5)
    as_long = functools.partial(torch.as_tensor, dtype=torch.long, device=angles.device)
    return as_long(dy), as_long(dx)


# ----------------------------------------------------------------------------- filtering
def fft_size(minimum: int) -> int:
    """The smallest integer ≥ ``minimum`` whose prime factors are 2, 3 and 5 (fast FFTs)."""
    size = max(int(minimum), 1)
    while True:
        rest = size
        for prime in (2, 3, 5):
            while rest % prime == 0:
                rest //= prime
        if rest == 1:
            return size
        size += 1


#: 2-D kernels with more non-zero taps than this are applied through Fourier transforms (below,
#: shifted sums are faster at 32 and at 224 px).
FFT_MIN_TAPS = 25


def _shifted_sum(padded: Tensor, kernel: Tensor, height: int, width: int) -> Tensor:
    """Σ kernel[i, j] · padded[..., i : i + height, j : j + width] (correlation, no copies of
    the padded image beyond the running sum)."""
    weights = kernel.tolist()
    out = None
    for i, row in enumerate(weights):
        for j, weight in enumerate(row):
            if weight == 0:
                continue
            window = padded[..., i : i + height, j : j + width]
            out = window * weight if out is None else out.add_(window, alpha=weight)
    return out if out is not None else torch.zeros_like(padded[..., :height, :width])


def filter2d_depthwise(images: Tensor, kernel: Tensor, border: str = "nearest") -> Tensor:
    """Correlate every channel of ``images`` (N, C, H, W) with a 2-D ``kernel`` (kh, kw).

    Odd kernel sizes keep the image size; ``border`` is one of :data:`BORDERS`. Kernels with
    few non-zero taps (at most :data:`FFT_MIN_TAPS`) run as a sum of shifted copies, others as
    a product of Fourier transforms (:func:`fft_correlate`); both are much faster on CPUs than
    a depthwise ``conv2d`` (``kornia.filters.filter2d``).
    """
    h, w = images.shape[-2:]
    kh, kw = kernel.shape
    kernel = kernel.to(images.device, torch.float32)
    if int(torch.count_nonzero(kernel)) > FFT_MIN_TAPS:
        return fft_correlate(images, kernel, border)
    padded = pad2d(images, kh // 2, (kh - 1) // 2, kw // 2, (kw - 1) // 2, border)
    return _shifted_sum(padded, kernel, h, w)


def fft_correlate(images: Tensor, kernel: Tensor, border: str = "nearest") -> Tensor:
    """:func:`filter2d_depthwise` through Fourier transforms, for kernels with many taps.

    The images are padded by the kernel's reach with ``border`` (then with zeros up to a size
    with small prime factors, :func:`fft_size`) and multiplied in the frequency domain by the
    spectrum of the kernel centred at the origin, so no circular wrap-around reaches the
    output. Two planes share each complex transform (:func:`fft_filter_pairs`).
    Half-precision images are filtered in float32.

    Args:
        images: Tensor (N, C, H, W).
        kernel: Tensor (kh, kw), correlated (not flipped) with the images.
        border: One of :data:`BORDERS`.

    Returns:
        Tensor (N, C, H, W) of the images' dtype.
    """
    h, w = images.shape[-2:]
    kh, kw = kernel.shape
    top, left = kh // 2, kw // 2
    hp, wp = fft_size(h + kh - 1), fft_size(w + kw - 1)
    dtype = images.dtype if images.dtype in (torch.float32, torch.float64) else torch.float32
    device = images.device
    # correlation: out[y] = Σ_i k[i] · x[y + i − top], a convolution with k at offsets top − i
    rows = (top - torch.arange(kh, device=device)) % hp
    cols = (left - torch.arange(kw, device=device)) % wp
    centred = torch.zeros(hp, wp, device=device, dtype=dtype)
    centred[rows[:, None], cols[None, :]] = kernel.to(dtype)
    padded = pad2d(images.to(dtype), top, kh - 1 - top, left, kw - 1 - left, border)
    filtered = fft_filter_pairs(padded, torch.fft.fft2(centred), (hp, wp), top, left, (h, w))
    return filtered.to(images.dtype)


def fft_filter_pairs(
    padded: Tensor,
    spectrum: Tensor,
    size: tuple[int, int],
    top: int,
    left: int,
    out_size: tuple[int, int],
) -> Tensor:
    """Circularly convolve real planes with one real kernel, two planes per complex transform.

    The planes of ``padded`` are paired as ``a + i·b``; since the kernel is real, the inverse
    transform of ``FFT(a + i·b) · K`` holds ``a ⊛ k`` in its real and ``b ⊛ k`` in its
    imaginary part. A complex transform of half the planes costs what a real transform of all
    of them costs, but the way back skips ``irfft``, which copies its input on the CPU: on one
    CPU thread 1.1–1.7× the speed of real transforms at 224 px, with the same values to float
    rounding (4e-7; ``benchmarks/bench_fft_filter.py``). Per-image kernels lose this way (their
    spectra would need full complex transforms too); :func:`motion_blur`'s Fourier route
    keeps real transforms.

    Args:
        padded: Tensor (N, C, H', W'), float32 or float64, zero-padded to ``size`` by the
            transform.
        spectrum: Full (two-sided) spectrum of the kernel at ``size``, shape (Hp, Wp).
        size: The transform size (Hp, Wp) ≥ (H', W').
        top, left: Where the output starts in the convolved planes.
        out_size: The output's (H, W).

    Returns:
        Tensor (N, C, H, W) of ``padded``'s dtype.
    """
    n, c = padded.shape[:2]
    planes = padded.reshape(-1, *padded.shape[-2:])
    count = len(planes)
    if count % 2:  # the last plane alone: a zero imaginary part
        pairs = padded.new_zeros(count // 2 + 1, *planes.shape[-2:], dtype=spectrum.dtype)
        parts = torch.view_as_real(pairs)
        parts[..., 0].copy_(planes[0::2])
        parts[: count // 2, ..., 1].copy_(planes[1::2])
    else:
        pairs = torch.complex(planes[0::2], planes[1::2])
    transformed = torch.fft.fft2(pairs, s=size)
    filtered = torch.fft.ifft2(transformed.mul_(spectrum), out=transformed)
    h, w = out_size
    window = torch.view_as_real(filtered[..., top : top + h, left : left + w])
    return window.permute(0, 3, 1, 2).reshape(-1, h, w)[: n * c].reshape(n, c, h, w)


@functools.lru_cache(maxsize=256)
def _tap_sources(size: int, taps: int, border: str) -> Tensor:
    """(size, taps) CPU index of the input each tap of each output reads, −1 where a
    "constant" border reads a zero. Cached: do not modify the result in place."""
    radius = taps // 2
    if border == "constant":
        position = torch.arange(size)[:, None] + torch.arange(taps) - radius
        return torch.where((position >= 0) & (position < size), position, -1)
    padded_index = border_indices(size, radius, taps - 1 - radius, border)
    return padded_index[torch.arange(size)[:, None] + torch.arange(taps)]


def filter_matrix(size: int, kernel1d: Tensor, border: str) -> Tensor:
    """The (size × size) matrix of 1-D correlation with ``kernel1d`` under ``border``.

    Rows are output positions; a kernel much wider than the axis folds into the matrix through
    the border, so the cost no longer depends on the kernel width.

    Example:
        >>> filter_matrix(3, torch.tensor([1.0, 2.0, 3.0]), "nearest")
        tensor([[3., 3., 0.],
                [1., 2., 3.],
                [0., 1., 5.]])
    """
    k = kernel1d.numel()
    device = kernel1d.device
    sources = _tap_sources(size, k, border).to(device)
    rows = torch.arange(size, device=device)[:, None].expand(size, k)
    # a zero read ("constant" border) adds a zero weight to column 0: no masking, no host sync
    taps = torch.where(sources >= 0, kernel1d.reshape(1, k), 0)
    matrix = torch.zeros(size, size, device=device, dtype=kernel1d.dtype)
    matrix.index_put_((rows, sources.clamp(min=0)), taps, accumulate=True)
    return matrix


#: Outputs per block of :func:`filter_axis`'s banded matrix product.
BAND_BLOCK = 32


@functools.lru_cache(maxsize=256)
def band_blocks(size: int, taps: int, border: str) -> tuple[tuple[int, int, int, int], ...]:
    """The blocks of the correlation matrix :func:`filter_axis` multiplies by.

    Returns:
        ``(first output, end output, first input, end input)`` per block of
        :data:`BAND_BLOCK` outputs (one block for axes up to twice that): every input a block
        reads lies in its input range, so the rest of its rows of the matrix are zeros.

    Example:
        >>> band_blocks(100, 5, "reflect")
        ((0, 32, 0, 34), (32, 64, 30, 66), (64, 100, 62, 100))
    """
    if size <= 2 * BAND_BLOCK:
        return ((0, size, 0, size),)
    sources = _tap_sources(size, taps, border)
    blocks = []
    for start in range(0, size, BAND_BLOCK):
        end = size if size - start < 2 * BAND_BLOCK else start + BAND_BLOCK
        read = sources[start:end][sources[start:end] >= 0]
        blocks.append((start, end, int(read.min()), int(read.max()) + 1))
        if end == size:
            break
    return tuple(blocks)


def filter_axis(images: Tensor, kernel1d: Tensor, dim: int, border: str = "nearest") -> Tensor:
    """Correlate ``images`` (N, C, H, W) with a 1-D kernel along ``dim`` (−2: rows, −1: columns).

    The correlation is a product with its (size × size) matrix (:func:`filter_matrix`), which
    also handles kernels wider than the image, taken block by block (:func:`band_blocks`): a
    block of outputs multiplies only the band of inputs it reads. On one CPU core this is
    1.2–2× faster than the whole matrix at 224 px and 2–5× faster than shifted sums, even for
    3 taps (``benchmarks/bench_filter_axis.py``). Axes of one block and inputs that require
    gradients take the whole matrix (the blocks write into the output in place).
    """
    size = images.shape[dim]
    k = kernel1d.numel()
    if k == 1:
        return images * float(kernel1d.reshape(-1)[0])
    rows = dim in (-2, 2)
    matrix = filter_matrix(size, kernel1d.to(images.device, images.dtype), border)
    blocks = band_blocks(size, k, border)
    if len(blocks) == 1 or (images.requires_grad and torch.is_grad_enabled()):
        return matrix @ images if rows else images @ matrix.T
    images = images.contiguous()
    out = torch.empty_like(images)
    if rows:  # (N·C, H, W): out[:, i] = M[i] @ x for every image plane
        x = images.view(-1, size, images.shape[-1])
        o = out.view(-1, size, images.shape[-1])
        for start, end, first, last in blocks:
            torch.matmul(matrix[start:end, first:last], x[:, first:last], out=o[:, start:end])
    else:  # (N·C·H, W): out[:, j] = x @ M[j]ᵀ for every image row
        x = images.view(-1, size)
        o = out.view(-1, size)
        for start, end, first, last in blocks:
            torch.mm(x[:, first:last], matrix[start:end, first:last].T, out=o[:, start:end])
    return out


def separable_filter(images: Tensor, kernel1d: Tensor, border: str = "nearest") -> Tensor:
    """Filter rows then columns of ``images`` (N, C, H, W) with the same 1-D kernel."""
    return filter_axis(filter_axis(images, kernel1d, -1, border), kernel1d, -2, border)


def gaussian_blur(
    images: Tensor, sigma: float, truncate: float = 4.0, border: str = "nearest"
) -> Tensor:
    """Gaussian blur matching ``scipy.ndimage.gaussian_filter`` (and ``skimage``'s).

    Args:
        images: Tensor (N, C, H, W).
        sigma: Standard deviation in pixels (0: unchanged).
        truncate: Kernel radius in units of ``sigma``.
        border: One of :data:`BORDERS` ("nearest" is skimage's default).
    """
    return separable_filter(images, gaussian_kernel1d(sigma, truncate, images.device), border)


#: How :func:`motion_blur` correlates: "auto" (shifted sums for CPU images of at least
#: :data:`SHIFTED_MOTION_MIN_PIXELS`, Fourier transforms otherwise), "shifted" or "fft".
MOTION_BLUR_METHODS = ("auto", "shifted", "fft")
#: Image area (H·W) from which "auto" motion blur sums shifted copies on the CPU.
SHIFTED_MOTION_MIN_PIXELS = 48 * 48


def motion_blur(
    images: Tensor,
    radius: int,
    sigma: float,
    angles: Tensor,
    border: str = "nearest",
    method: str = "auto",
) -> Tensor:
    """The reference motion blur: a Gaussian-weighted line kernel at a per-image angle.

    ``out(y, x) = Σ_i w_i · in(y + dy_i, x + dx_i)`` with the weights of
    :func:`motion_blur_weights` and the offsets of :func:`motion_line_offsets`; pixels beyond
    the image repeat the edge (ImageMagick's default virtual pixels). As in the reference,
    taps from the first one whose offset reaches the image size on are dropped (without
    renormalising). Each image has its own kernel. On the CPU each image of 48 × 48 px or
    more sums its shifted copies, one per tap (2.6–3.5× faster than Fourier transforms at
    128–224 px, 1.2–1.4× at 64 px, ``benchmarks/bench_motion_blur.py``). Smaller images, and
    other devices, where one launch per image and tap would dominate, take a product of
    Fourier transforms of the edge-padded images, whose padding keeps the circular
    wrap-around out of the result.

    Args:
        images: Tensor (N, C, H, W).
        radius: Kernel radius in pixels (2·radius + 1 taps).
        sigma: Standard deviation of the weights along the line, in pixels.
        angles: Per-image angles in degrees, shape (N,).
        border: One of :data:`BORDERS`.
        method: One of :data:`MOTION_BLUR_METHODS`.

    Returns:
        Blurred images, same shape.
    """
    if method not in MOTION_BLUR_METHODS:
        raise ConfigError(
            f"unknown motion blur method {method!r}; use one of {MOTION_BLUR_METHODS}"
        )
    n, _, h, w = images.shape
    weights = motion_blur_weights(radius, sigma, images.device)
    dy, dx = motion_line_offsets(weights.numel(), angles.to(images.device))
    inside = ((dy.abs() < h) & (dx.abs() < w)).long().cummin(dim=1).values
    # pad by the reach of the taps actually used
    top, bottom = max(-int(dy.min()), 0), max(int(dy.max()), 0)
    left, right = max(-int(dx.min()), 0), max(int(dx.max()), 0)
    work = images.float() if images.dtype in (torch.float16, torch.bfloat16) else images
    taps = (weights * inside).to(work.dtype)
    shifted_sums = images.device.type == "cpu" and h * w >= SHIFTED_MOTION_MIN_PIXELS
    if method == "shifted" or (method == "auto" and shifted_sums):
        padded = pad2d(work, top, bottom, left, right, border)
        blurred = torch.empty_like(work)
        for image, out, tap_weights, rows, cols in zip(
            padded, blurred, taps.tolist(), (dy + top).tolist(), (dx + left).tolist(), strict=True
        ):
            out.zero_()
            for weight, row, col in zip(tap_weights, rows, cols, strict=True):
                if weight:
                    out.add_(image[:, row : row + h, col : col + w], alpha=weight)
        return blurred.to(images.dtype)
    # then up to sizes the FFT handles fast
    hp, wp = fft_size(h + top + bottom), fft_size(w + left + right)
    padded = pad2d(work, top, hp - h - top, left, wp - w - left, border)
    kernel = torch.zeros(n, hp, wp, device=images.device, dtype=work.dtype)
    image_index = torch.arange(n, device=images.device)[:, None].expand_as(dy)
    kernel.index_put_((image_index, (-dy) % hp, (-dx) % wp), taps, accumulate=True)
    spectrum = torch.fft.rfft2(padded) * torch.fft.rfft2(kernel)[:, None]
    blurred = torch.fft.irfft2(spectrum, s=(hp, wp))[..., top : top + h, left : left + w]
    return blurred.to(images.dtype)
