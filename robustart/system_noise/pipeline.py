"""System-noise variants of the ImageNet validation pipeline (RobustART's ImageNet-S idea).

A variant is one way a deployed system might turn an image file into the model's input:
decoder × resize interpolation (× optional JPEG re-encoding at a given quality), followed by
the validation transform: resize the shorter side to ``round(crop · 8/7)`` (256 for a 224 crop),
then centre crop ``crop × crop``.

Variant names: ``<decoder>-<resizer>`` (e.g. ``pil-pil_bilinear``, ``opencv-cv2_area``), with
``-q<quality>`` appended when the decoded image is re-encoded as JPEG at that quality and
decoded again by the same decoder (e.g. ``pil-pil_bilinear-q30``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from robustart.errors import ConfigError
from robustart.system_noise.decoders import DECODERS, OPENCV_DECODERS, encode_jpeg
from robustart.system_noise.optional import import_cv2
from robustart.system_noise.resizers import OPENCV_RESIZERS, RESIZERS

#: The variant of torchvision's usual validation pipeline (Pillow decode, bilinear resize).
REFERENCE_VARIANT = ("pil", "pil_bilinear")
#: Default JPEG qualities of :func:`jpeg_quality_variants`.
JPEG_QUALITIES = (95, 85, 75, 50, 30, 10)


@dataclass(frozen=True)
class SystemNoiseVariant:
    """One decoding + resizing pipeline.

    Building a variant that uses OpenCV (decoder ``opencv``, resizers ``cv2_*``) checks that
    OpenCV is installed (the ``system-noise`` extra) and raises
    :class:`~robustart.errors.ConfigError` naming the extra if not.

    Attributes:
        decoder: Name in :data:`~robustart.system_noise.DECODERS`.
        resizer: Name in :data:`~robustart.system_noise.RESIZERS`.
        jpeg_quality: Re-encode the decoded image as JPEG at this quality (1..100) first.
    """

    decoder: str = "pil"
    resizer: str = "pil_bilinear"
    jpeg_quality: int | None = None

    def __post_init__(self) -> None:
        DECODERS.get(self.decoder)  # unknown names fail here, with suggestions
        RESIZERS.get(self.resizer)
        if self.decoder in OPENCV_DECODERS or self.resizer in OPENCV_RESIZERS:
            import_cv2(f"system-noise variant {self.name!r}")  # missing OpenCV fails now
        q = self.jpeg_quality
        if q is not None and (isinstance(q, bool) or not isinstance(q, int) or not 1 <= q <= 100):
            raise ConfigError(f"jpeg_quality must be an integer in 1..100, got {q!r}")

    @property
    def name(self) -> str:
        suffix = f"-q{self.jpeg_quality}" if self.jpeg_quality is not None else ""
        return f"{self.decoder}-{self.resizer}{suffix}"

    def decode(self, data: bytes) -> np.ndarray:
        """Encoded bytes → uint8 RGB (H, W, 3), JPEG round trip included."""
        decode = DECODERS.get(self.decoder)
        image = decode(data)
        if self.jpeg_quality is not None:
            image = decode(encode_jpeg(image, self.jpeg_quality))
        return image

    def __call__(self, data: bytes, crop_size: int = 224) -> Tensor:
        """Encoded bytes → model input: float tensor (3, crop, crop) in [0, 1]."""
        return validation_transform(self.decode(data), RESIZERS.get(self.resizer), crop_size)


def resize_size_for(crop_size: int) -> int:
    """Shorter side before the centre crop: ``round(crop · 8/7)`` (224 → 256, 32 → 37)."""
    if crop_size < 1:
        raise ConfigError(f"crop_size must be >= 1, got {crop_size}")
    return round(crop_size * 8 / 7)


def shorter_side_size(height: int, width: int, short: int) -> tuple[int, int]:
    """``(height, width)`` after scaling the shorter side to ``short`` (longer side truncated
    as torchvision does).

    Raises:
        ConfigError: a side or ``short`` below one pixel (an empty image, or a resize to
            nothing).
    """
    if min(height, width, short) < 1:
        raise ConfigError(
            f"cannot resize a {height}×{width} image to a shorter side of {short}: every side "
            "must be at least 1 pixel"
        )
    if height <= width:
        return short, max(1, int(short * width / height))
    return max(1, int(short * height / width)), short


def validation_transform(image: np.ndarray, resizer, crop_size: int = 224) -> Tensor:
    """Resize the shorter side to ``resize_size_for(crop_size)`` with ``resizer``, centre crop.

    Args:
        image: uint8 RGB (H, W, 3).
        resizer: A function of :data:`RESIZERS`.
        crop_size: Side of the output.

    Returns:
        Float tensor (3, crop_size, crop_size) in [0, 1].
    """
    height, width = shorter_side_size(*image.shape[:2], resize_size_for(crop_size))
    resized = resizer(image, (height, width))
    top = round((height - crop_size) / 2.0)
    left = round((width - crop_size) / 2.0)
    crop = resized[top : top + crop_size, left : left + crop_size]
    return torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).float().div_(255)


def imagenet_s_variants(
    decoders: Iterable[str] | None = None, resizers: Iterable[str] | None = None
) -> list[SystemNoiseVariant]:
    """Every decoder × resizer pair (default: all registered: 3 × 11 = 33 variants)."""
    decoders = list(decoders) if decoders is not None else DECODERS.names()
    resizers = list(resizers) if resizers is not None else RESIZERS.names()
    return [SystemNoiseVariant(d, r) for d, r in itertools.product(decoders, resizers)]


def jpeg_quality_variants(
    qualities: Sequence[int] = JPEG_QUALITIES,
    decoder: str = REFERENCE_VARIANT[0],
    resizer: str = REFERENCE_VARIANT[1],
) -> list[SystemNoiseVariant]:
    """The reference pipeline with a JPEG re-encoding at each quality."""
    return [SystemNoiseVariant(decoder, resizer, int(q)) for q in qualities]
