"""Defocus blur: convolution with an anti-aliased disk."""

from __future__ import annotations

from torch import Tensor

from robustart.corruptions.base import CORRUPTIONS, Bound, Corruption, Generators
from robustart.corruptions.disk_filter import disk_filter


@CORRUPTIONS.register("defocus_blur")
class DefocusBlur(Corruption):
    """Correlation with :func:`~robustart.corruptions.kernels.disk_kernel` (radius, alias σ),
    with OpenCV's default "mirror" border as ``cv2.filter2D`` in the reference. Deterministic.
    On the CPU, disks up to radius 6 run as box sums (:mod:`~robustart.corruptions.disk_filter`).

    Both the disk radius and the anti-aliasing σ are spatial (pixels).
    """

    name = "defocus_blur"
    category = "blur"
    pixel_lengths = True
    parameter_bounds = (
        Bound("radius", 0.0, open_low=True, per_side=4),
        Bound("alias_blur", 0.0, per_side=4),
    )
    imagenet = ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5))
    cifar = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))

    batched_generators = True  # deterministic: no draws

    def apply(
        self,
        images: Tensor,
        param: tuple[float, float],
        scale: float,
        generator: Generators,
    ) -> Tensor:
        radius, alias_blur = param
        return disk_filter(images, radius * scale, alias_blur * scale)
