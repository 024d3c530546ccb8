"""JPEG compression with a real codec (libjpeg through torchvision)."""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
from torch import Tensor

from robustart.corruptions.base import CORRUPTIONS, Corruption


def jpeg_roundtrip(images: Tensor, quality: int) -> Tensor:
    """Encode and decode ``images`` (N, C, H, W) in [0, 1] as baseline JPEG at ``quality``.

    Images are rounded to 8 bits, compressed with libjpeg (4:2:0 chroma subsampling, the IJG
    quantisation tables scaled by ``quality``, as PIL's ``save(..., "JPEG", quality=q)`` in the
    reference) on the CPU, decoded and returned as floats on the input device. This is the real
    codec, not kornia's differentiable approximation.
    """
    pixels = (images.detach() * 255).round_().clamp_(0, 255).to(torch.uint8).cpu()
    try:
        with warnings.catch_warnings():  # torchvision 0.29 deprecates its codec for torchcodec
            warnings.simplefilter("ignore", DeprecationWarning)
            from torchvision.io import decode_jpeg, encode_jpeg

            decoded = torch.stack(decode_jpeg(encode_jpeg(list(pixels), quality=int(quality))))
    except (ImportError, RuntimeError):  # no torchvision codec: PIL's libjpeg, per image
        decoded = torch.stack([_pil_roundtrip(p, int(quality)) for p in pixels])
    return decoded.to(images.device, images.dtype) / 255


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
    """Real JPEG compression at quality ``q`` (lower is stronger). Deterministic."""

    name = "jpeg_compression"
    category = "digital"
    imagenet = (25, 18, 15, 10, 7)
    cifar = (80, 65, 58, 50, 40)

    def apply(
        self, images: Tensor, param: int, scale: float, generator: torch.Generator | None
    ) -> Tensor:
        return jpeg_roundtrip(images, param)
