"""Common corruptions generated on the images' device, keyed by name in :data:`CORRUPTIONS`.

Example:
    >>> from robustart.corruptions import corrupt, functional
    >>> images = torch.rand(4, 3, 32, 32)
    >>> noisy = corrupt(images, "gaussian_noise", severity=3)
    >>> blurred = functional.gaussian_blur(images, sigma=0.7)  # or by physical parameter
"""

from robustart.corruptions import (  # noqa: F401  (registers the corruptions; functional API)
    brightness,
    contrast,
    defocus_blur,
    elastic_transform,
    fog,
    frost,
    functional,
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
    "functional",
    "table_for_size",
]
