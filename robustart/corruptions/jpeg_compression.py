"""JPEG compression with a real codec: libjpeg-turbo on the CPU, its arithmetic in torch on other
devices (the same pixels)."""

from __future__ import annotations

import functools
import io
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import Tensor

from robustart.corruptions.base import CORRUPTIONS, Bound, Corruption, Generators
from robustart.corruptions.jpeg_codec import jpeg_roundtrip_torch


def jpeg_roundtrip(
    images: Tensor, quality: int, codec: str = "auto", *, checked: bool = False
) -> Tensor:
    """Encode and decode ``images`` (N, C, H, W) in [0, 1] as baseline JPEG at ``quality``.

    Images are rounded to 8 bits and coded as PIL's ``save(..., "JPEG", quality=q)`` in the
    reference does with libjpeg-turbo (4:2:0 chroma subsampling, the IJG quantisation tables
    scaled by ``quality``), decoded and returned as floats on the input device. This is the
    real codec's output, not kornia's differentiable approximation. Two codecs give the same
    pixels (``tests/test_jpeg_codec.py``):

    * ``"libjpeg"``: the reference's own library on the CPU (torchvision's build of
      libjpeg-turbo, else PIL's), ``torch.get_num_threads()`` images at a time (the codec
      releases the GIL); images on another device make a round trip to the CPU.
    * ``"torch"``: :func:`~robustart.corruptions.jpeg_codec.jpeg_roundtrip_torch`, libjpeg's
      lossy arithmetic in batched torch on the images' device (no entropy coding, which is
      lossless). On one CPU core it is slower than libjpeg's SIMD code.
    * ``"auto"`` (default): ``"torch"`` for CUDA images, ``"libjpeg"`` for the others (the
      torch codec computes in float64, which e.g. Apple's MPS lacks).

    ``checked``: the values are known to lie within :data:`~robustart.utils.RANGE_TOLERANCE`
    of [0, 1] (:func:`~robustart.utils.check_images` passed, as in the corruption's call), so
    the rounding to 8 bits needs no clipping; others are clipped first (the same pixels).

    Example:
        >>> images = torch.rand(2, 3, 16, 16)
        >>> torch.equal(jpeg_roundtrip(images, 10), jpeg_roundtrip(images, 10, codec="torch"))
        True
    """
    if codec not in ("auto", "libjpeg", "torch"):
        raise ValueError(f"codec must be 'auto', 'libjpeg' or 'torch', got {codec!r}")
    if codec == "torch" or (codec == "auto" and images.device.type == "cuda"):
        dtype = images.dtype if images.dtype in (torch.float32, torch.float64) else torch.float32
        pixels = (images.detach().to(dtype) * 255).round_().clamp_(0, 255)
        decoded = jpeg_roundtrip_torch(pixels, int(quality))
        return (decoded.to(dtype) / 255).to(images.dtype)
    exact = images.dtype in (torch.float32, torch.float64)  # else rounded to 8 bits in float32
    source = images.detach().to("cpu", images.dtype if exact else torch.float32).contiguous()
    out = torch.empty(source.shape, dtype=source.dtype)
    count, pixels_per_image = len(source), source[0].numel() if len(source) else 1
    workers = min(torch.get_num_threads(), count)
    step = max(1, BLOCK_PIXELS // pixels_per_image)

    def code(first: int, last: int) -> None:
        # NumPy, a few images at a time: no OpenMP teams competing with the other threads, and
        # small buffers that stay in the cache.
        # Work buffers reused from block to block: fresh memory costs more than the copies.
        roundtrip = _codec()
        values = np.empty((step, *source.shape[1:]), dtype=source.numpy().dtype)
        pixels = np.empty((2, step, *source.shape[2:], source.shape[1]), dtype=np.uint8)
        for start in range(first, last, step):
            stop = min(start + step, last)
            block, result = source[start:stop].numpy(), out[start:stop].numpy()
            sent, received = pixels[0, : stop - start], pixels[1, : stop - start]
            to_pixels(block, values[: stop - start], sent, clip=not checked)
            from_pixels(roundtrip(sent, int(quality), received), result)

    bounds = [round(i * count / workers) for i in range(workers + 1)] if count else [0, 0]
    with warnings.catch_warnings():  # torchvision 0.29 deprecates its codec for torchcodec
        warnings.simplefilter("ignore", DeprecationWarning)  # (set here: the workers share it)
        if workers > 1:
            list(_thread_pool(workers).map(code, bounds[:-1], bounds[1:]))
        else:
            code(bounds[0], bounds[-1])
    return out.to(images.device, images.dtype)


#: Pixels (values) converted at once per thread: a few images at 224 px, a hundred at 32 px.
BLOCK_PIXELS = 1 << 18


#: ``1.5 · 2²³``: adding it to a float32 in [−2²², 2²²] rounds it to an integer (ties to even,
#: the float32 spacing there is 1), which then sits in the low bits of the sum.
_ROUNDING_OFFSET = np.float32(1.5 * 2**23)


def to_pixels(
    images: np.ndarray, values: np.ndarray, pixels: np.ndarray, clip: bool = True
) -> np.ndarray:
    """8-bit pixels ``clip(rint(255 · x), 0, 255)`` of float images, interleaved for the codec.

    The arithmetic of ``(x * 255).round().clamp(0, 255)`` in the images' dtype. For float32,
    ``fl(fl(255 · x) + 1.5 · 2²³)`` holds ``rint(255 · x)`` (ties to even, as ``np.rint``) in
    its low byte, which is copied out: two passes instead of three and a casting copy, the
    same pixels for every float32 within :data:`~robustart.utils.RANGE_TOLERANCE` of [0, 1]
    (checked exhaustively). With ``clip=False`` the values must lie there, as checked images
    do; otherwise they are clipped to [0, 1] first. The channels are interleaved one plane
    at a time: NumPy copies a plane into every C-th byte quickly, but a transposed copy of
    the whole array runs its inner loop over the C channels, 3-6× slower at 224 px.

    Args:
        images: (N, C, H, W) float32 or float64 array, values in [0, 1].
        values: Work array of the images' shape and dtype (overwritten).
        pixels: (N, H, W, C) uint8 array, written and returned.
        clip: Clip the values to [0, 1] first (not needed for checked images).

    Example:
        >>> images = np.array([[[[0.0, 0.5]], [[1.0, 0.002]]]], np.float32)
        >>> pixels = np.empty((1, 1, 2, 2), np.uint8)
        >>> to_pixels(images, np.empty_like(images), pixels).tolist()
        [[[[0, 255], [128, 1]]]]
    """
    if images.dtype != np.float32:
        np.multiply(images, images.dtype.type(255), out=values)
        np.rint(values, out=values)
        np.clip(values, 0, 255, out=values)
        for channel in range(images.shape[1]):
            np.copyto(pixels[..., channel], values[:, channel], casting="unsafe")
        return pixels
    if clip:
        np.clip(images, 0, 1, out=values)
        images = values
    np.multiply(images, np.float32(255), out=values)
    np.add(values, _ROUNDING_OFFSET, out=values)
    low_bytes = values.view(np.uint8)[..., 0 if np.little_endian else 3 :: 4]
    for channel in range(images.shape[1]):
        np.copyto(pixels[..., channel], low_bytes[:, channel])
    return pixels


def from_pixels(pixels: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Float images ``pixels / 255`` from interleaved 8-bit pixels, one plane at a time.

    Args:
        pixels: (N, H, W, C) uint8 array.
        out: (N, C, H, W) float32 or float64 array, written and returned.
    """
    for channel in range(pixels.shape[-1]):  # exact casting copies, then one division
        np.copyto(out[:, channel], pixels[..., channel])
    np.divide(out, out.dtype.type(255), out=out)  # k / 255 (not k · (1/255): other roundings)
    return out


@functools.lru_cache(maxsize=1)
def _thread_pool(workers: int) -> ThreadPoolExecutor:
    """A pool of ``workers`` threads, kept for later calls with the same count."""
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="robustart-jpeg")


@functools.lru_cache(maxsize=1)
def _codec() -> Callable[[np.ndarray, int, np.ndarray], np.ndarray]:
    """JPEG round trip ``roundtrip(pixels, quality, out)`` of interleaved uint8 images
    (N, H, W, C) into ``out`` (same shape): torchvision's libjpeg (one call for the list) if
    available, else PIL's (the same library)."""
    try:
        with warnings.catch_warnings():  # torchvision 0.29 deprecates its codec for torchcodec
            warnings.simplefilter("ignore", DeprecationWarning)
            from torchvision.io import decode_jpeg, encode_jpeg

            probe = torch.zeros(3, 8, 8, dtype=torch.uint8)
            decode_jpeg(encode_jpeg(probe, quality=50))
    except (ImportError, RuntimeError):  # no torchvision codec

        def pil_roundtrip(pixels: np.ndarray, quality: int, out: np.ndarray) -> np.ndarray:
            return np.stack([_pil_roundtrip(image, quality) for image in pixels], out=out)

        return pil_roundtrip

    def torchvision_roundtrip(pixels: np.ndarray, quality: int, out: np.ndarray) -> np.ndarray:
        # (C, H, W) views of interleaved memory: torchvision's encoder interleaves its input
        # with a copy, which is free for these and costs more than the coding for planar
        # images; the decoder returns such views too.
        images = list(torch.from_numpy(pixels).permute(0, 3, 1, 2))
        decoded = decode_jpeg(encode_jpeg(images, quality=quality))
        return np.stack([image.permute(1, 2, 0).numpy() for image in decoded], out=out)

    return torchvision_roundtrip


def _pil_roundtrip(pixels: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip of one uint8 image (H, W, C) through PIL."""
    from PIL import Image

    image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    out = np.asarray(Image.open(buffer))
    return out.reshape(*out.shape[:2], -1)


@CORRUPTIONS.register("jpeg_compression")
class JpegCompression(Corruption):
    """Real JPEG compression at quality ``q`` (lower is stronger). Deterministic; CUDA images
    are coded on the GPU, others with libjpeg on the CPU (the same pixels, see
    :func:`jpeg_roundtrip`)."""

    name = "jpeg_compression"
    category = "digital"
    parameter_bounds = (Bound("quality", 1, 100, integer=True),)
    imagenet = (25, 18, 15, 10, 7)
    cifar = (80, 65, 58, 50, 40)

    batched_generators = True  # deterministic: no draws

    output_in_range = True  # k / 255

    def apply(self, images: Tensor, param: int, scale: float, generator: Generators) -> Tensor:
        return jpeg_roundtrip(images, param, checked=True)  # the call checked the range
