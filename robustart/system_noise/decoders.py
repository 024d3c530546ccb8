"""Image decoders of different libraries, keyed by name in :data:`DECODERS`.

Every decoder maps the encoded bytes of an image file to a uint8 RGB array (H, W, 3). EXIF
orientation is ignored by all of them (PIL ignores it, OpenCV is told to), so the decoders differ
only in how they turn the file into pixels.

With the wheels current at the time of writing, Pillow, OpenCV and torchvision all decode JPEG
with libjpeg-turbo and default settings, and agree bit for bit; deployments with other builds
(or hardware decoders) differ, which is what the system-noise benchmark measures.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable

import numpy as np

from robustart.errors import InputRangeError
from robustart.registry import Registry
from robustart.system_noise.optional import import_cv2

Decoder = Callable[[bytes], np.ndarray]

#: Decoder name → function ``bytes → uint8 (H, W, 3) RGB``.
DECODERS: Registry[Decoder] = Registry("decoder")
#: The decoders that need OpenCV (the ``system-noise`` extra).
OPENCV_DECODERS = frozenset({"opencv"})


def _check(image: np.ndarray | None, library: str) -> np.ndarray:
    """The decoded RGB pixels as 8-bit (H, W, 3): 16-bit samples (torchvision and OpenCV keep
    a 16-bit PNG's depth) are divided by 257 and rounded, as the Pillow decoder's
    :func:`~robustart.data.folders.to_rgb` does; other depths are refused, never wrapped."""
    if image is None or image.ndim != 3 or image.shape[2] != 3:
        raise InputRangeError(f"{library} could not decode the image into RGB pixels")
    if image.dtype == np.uint16:
        image = np.rint(image.astype(np.float64) / 257.0)
    elif image.dtype != np.uint8:
        raise InputRangeError(
            f"{library} decoded the image into {image.dtype} samples; only 8- and 16-bit "
            "images are supported"
        )
    return np.ascontiguousarray(image, dtype=np.uint8)


@DECODERS.register("pil")
def decode_pil(data: bytes) -> np.ndarray:
    """Pillow: ``Image.open(...).convert("RGB")`` (16-bit greyscale scaled to 8 bits, see
    :func:`~robustart.data.folders.to_rgb`)."""
    from PIL import Image

    from robustart.data.folders import to_rgb

    try:
        with Image.open(io.BytesIO(data)) as image:
            return _check(np.asarray(to_rgb(image, "the image")), "Pillow")
    except (MemoryError, InputRangeError):
        raise
    except Exception as err:  # unidentified, truncated, corrupt: OSError, struct.error, ...
        raise InputRangeError(f"Pillow could not decode the image: {err}") from None


@DECODERS.register("opencv")
def decode_opencv(data: bytes) -> np.ndarray:
    """OpenCV: ``cv2.imdecode`` (BGR, converted to RGB), EXIF orientation ignored.

    Needs the ``system-noise`` extra (:func:`~robustart.system_noise.optional.import_cv2`).
    """
    cv2 = import_cv2("the OpenCV decoder")

    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    except cv2.error as err:  # e.g. an empty file
        raise InputRangeError(f"OpenCV could not decode the image: {err}") from None
    image = _check(image, "OpenCV")
    return np.ascontiguousarray(image[:, :, ::-1])


@DECODERS.register("torchvision")
def decode_torchvision(data: bytes) -> np.ndarray:
    """torchvision: ``torchvision.io.decode_image`` (libjpeg / libpng / libwebp) in RGB mode.

    torchvision 0.29 deprecates its codecs in favour of TorchCodec; the warning is silenced
    here until a TorchCodec decoder is registered alongside.
    """
    import torch
    from torchvision.io import ImageReadMode, decode_image

    encoded = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            tensor = decode_image(encoded, ImageReadMode.RGB)
    except RuntimeError as err:
        raise InputRangeError(f"torchvision could not decode the image: {err}") from None
    return _check(tensor.permute(1, 2, 0).numpy(), "torchvision")


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """Encode uint8 RGB (H, W, 3) as JPEG with Pillow at ``quality`` (1..95 recommended)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality))
    return buffer.getvalue()
