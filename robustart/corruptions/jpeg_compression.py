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


def jpeg_roundtrip(images: Tensor, quality: int, codec: str = "auto") -> Tensor:
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
        # small buffers that stay in the cache. Same arithmetic as ``(x * 255).round()``.
        roundtrip = _codec()
        for start in range(first, last, step):
            stop = min(start + step, last)
            block, result = source[start:stop].numpy(), out[start:stop].numpy()
            scale = result.dtype.type(255)
            pixels = np.clip(np.rint(block * scale), 0, 255).astype(np.uint8)
            decoded = roundtrip(list(torch.from_numpy(pixels)), int(quality))
            np.divide(np.stack([d.numpy() for d in decoded]), scale, out=result, dtype=result.dtype)

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


@functools.lru_cache(maxsize=1)
def _thread_pool(workers: int) -> ThreadPoolExecutor:
    """A pool of ``workers`` threads, kept for later calls with the same count."""
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="robustart-jpeg")


@functools.lru_cache(maxsize=1)
def _codec() -> Callable[[list[Tensor], int], list[Tensor]]:
    """JPEG round trip of uint8 images (C, H, W): torchvision's libjpeg (one call for a list)
    if available, else PIL's (the same library)."""
    try:
        with warnings.catch_warnings():  # torchvision 0.29 deprecates its codec for torchcodec
            warnings.simplefilter("ignore", DeprecationWarning)
            from torchvision.io import decode_jpeg, encode_jpeg

            probe = torch.zeros(3, 8, 8, dtype=torch.uint8)
            decode_jpeg(encode_jpeg(probe, quality=50))
    except (ImportError, RuntimeError):  # no torchvision codec

        def pil_roundtrip(images: list[Tensor], quality: int) -> list[Tensor]:
            return [_pil_roundtrip(image, quality) for image in images]

        return pil_roundtrip

    def torchvision_roundtrip(images: list[Tensor], quality: int) -> list[Tensor]:
        return decode_jpeg(encode_jpeg(images, quality=quality))

    return torchvision_roundtrip


def _pil_roundtrip(pixels: Tensor, quality: int) -> Tensor:
    """JPEG round trip of one uint8 image (C, H, W) through PIL."""
    from PIL import Image

    array = pixels.permute(1, 2, 0).numpy()
    image = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    out = np.asarray(Image.open(buffer))
    return torch.from_numpy(out.reshape(*out.shape[:2], -1).copy()).permute(2, 0, 1)


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

    def apply(self, images: Tensor, param: int, scale: float, generator: Generators) -> Tensor:
        return jpeg_roundtrip(images, param)
