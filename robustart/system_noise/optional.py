"""OpenCV for the system-noise decoders and resizers: an optional dependency.

OpenCV is installed by the ``system-noise`` extra (``pip install "robustart[system-noise]"``);
nothing else in robustart needs it. Variants that use it check for it when they are built
(:class:`~robustart.system_noise.SystemNoiseVariant`), so a missing install fails before any
image is read or model evaluated.
"""

from __future__ import annotations

from types import ModuleType

from robustart.errors import ConfigError

#: How to install OpenCV for robustart.
OPENCV_INSTALL = '`pip install "robustart[system-noise]"` (or `pip install opencv-python-headless`)'


def import_cv2(what: str = "the OpenCV decoder and resizers") -> ModuleType:
    """The ``cv2`` module.

    Args:
        what: What needs it, for the message.

    Raises:
        ConfigError: OpenCV is not installed; the message names the extra that installs it.
    """
    try:
        import cv2
    except ImportError as err:
        raise ConfigError(f"{what} needs OpenCV, which is not installed: {OPENCV_INSTALL}") from err
    return cv2
