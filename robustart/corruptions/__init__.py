"""Common corruptions generated on the images' device, keyed by name in :data:`CORRUPTIONS`.

Example:
    >>> from robustart.corruptions import corrupt
    >>> noisy = corrupt(images, "gaussian_noise", severity=3)  # doctest: +SKIP
"""

from robustart.corruptions import (  # noqa: F401  (registers the corruptions)
    brightness,
    contrast,
    defocus_blur,
    elastic_transform,
    fog,
    frost,
    gaussian_blur,
    gaussian_noise,
    glass_blur,
    impulse_noise,
    jpeg_compression,
    motion_blur,
    pixelate,
    saturate,
    shot_noise,
    snow,
    spatter,
    speckle_noise,
    zoom_blur,
)
from robustart.corruptions.base import (
    BENCHMARK_CORRUPTIONS,
    CORRUPTION_CATEGORIES,
    CORRUPTIONS,
    EXTRA_CORRUPTIONS,
    SEVERITIES,
    Corruption,
    check_severity,
    corrupt,
    create_corruption,
    table_for_size,
)

__all__ = [
    "BENCHMARK_CORRUPTIONS",
    "CORRUPTIONS",
    "CORRUPTION_CATEGORIES",
    "EXTRA_CORRUPTIONS",
    "SEVERITIES",
    "Corruption",
    "check_severity",
    "corrupt",
    "create_corruption",
    "table_for_size",
]
