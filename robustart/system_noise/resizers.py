"""Resize interpolations of Pillow and OpenCV, keyed by name in :data:`RESIZERS`.

Every resizer maps a uint8 RGB array (H, W, 3) and a target ``(height, width)`` to a uint8 RGB
array of that size. Names are ``<library>_<interpolation>``: ``pil_nearest``, ``pil_bilinear``,
``pil_box``, ``pil_hamming``, ``pil_bicubic``, ``pil_lanczos``, ``cv2_nearest``,
``cv2_bilinear``, ``cv2_area``, ``cv2_cubic``, ``cv2_lanczos``. Pillow's filters antialias when
downscaling; OpenCV's (except ``area``) do not, which is part of the system noise. The OpenCV
ones need the ``system-noise`` extra (``pip install "robustart[system-noise]"``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from robustart.errors import InputRangeError
from robustart.registry import Registry
from robustart.system_noise.optional import import_cv2

Resizer = Callable[[np.ndarray, tuple[int, int]], np.ndarray]

#: Resizer name → function ``(uint8 (H, W, 3), (height, width)) → uint8 (height, width, 3)``.
RESIZERS: Registry[Resizer] = Registry("resizer")


def _check_size(image: np.ndarray, size: tuple[int, int]) -> tuple[int, int]:
    if image.dtype != np.uint8 or image.ndim != 3:
        raise InputRangeError(
            f"resizers take uint8 (H, W, C) arrays, got {image.dtype} {image.shape}"
        )
    height, width = (int(s) for s in size)
    if height < 1 or width < 1:
        raise InputRangeError(f"target size must be positive, got {size}")
    return height, width


def _pil_resizer(filter_name: str) -> Resizer:
    def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        from PIL import Image

        height, width = _check_size(image, size)
        resample = getattr(Image.Resampling, filter_name)
        return np.asarray(Image.fromarray(image).resize((width, height), resample=resample))

    resize.__doc__ = f"Pillow ``Image.resize`` with ``Resampling.{filter_name}``."
    return resize


def _cv2_resizer(flag_name: str) -> Resizer:
    def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        cv2 = import_cv2("the OpenCV resizers")
        height, width = _check_size(image, size)
        out = cv2.resize(image, (width, height), interpolation=getattr(cv2, flag_name))
        return out.reshape(height, width, image.shape[2])

    resize.__doc__ = f"OpenCV ``cv2.resize`` with ``cv2.{flag_name}`` (the system-noise extra)."
    return resize


_PIL_FILTERS = {
    "nearest": "NEAREST",
    "bilinear": "BILINEAR",
    "box": "BOX",
    "hamming": "HAMMING",
    "bicubic": "BICUBIC",
    "lanczos": "LANCZOS",
}
_CV2_FLAGS = {
    "nearest": "INTER_NEAREST",
    "bilinear": "INTER_LINEAR",
    "area": "INTER_AREA",
    "cubic": "INTER_CUBIC",
    "lanczos": "INTER_LANCZOS4",
}
for _name, _filter in _PIL_FILTERS.items():
    RESIZERS.register(f"pil_{_name}")(_pil_resizer(_filter))
for _name, _flag in _CV2_FLAGS.items():
    RESIZERS.register(f"cv2_{_name}")(_cv2_resizer(_flag))
#: The resizers that need OpenCV (the ``system-noise`` extra).
OPENCV_RESIZERS = frozenset(f"cv2_{name}" for name in _CV2_FLAGS)
