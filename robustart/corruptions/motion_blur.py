"""Motion blur along a random direction per image."""

from __future__ import annotations

from torch import Tensor

from robustart.corruptions.base import CORRUPTIONS, Bound, Corruption, Generators, random_uniform
from robustart.corruptions.kernels import motion_blur


@CORRUPTIONS.register("motion_blur")
class MotionBlur(Corruption):
    """The reference Gaussian-weighted line kernel (radius, σ) at an angle drawn per image
    from U(−45°, 45°); see :func:`~robustart.corruptions.kernels.motion_blur`.

    The radius and σ are spatial (pixels); the radius is rounded to whole pixels after scaling.
    """

    name = "motion_blur"
    category = "blur"
    pixel_lengths = True
    #: σ below 0.01 px leaves the line's other taps at weight 0 (the image unchanged), and σ²
    #: below float32's range gave NaN weights.
    parameter_bounds = (Bound("radius", 0.0, per_side=4), Bound("sigma", 0.01, per_side=4))
    imagenet = ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))
    cifar = ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5))
    batched_generators = True

    def apply(
        self, images: Tensor, param: tuple[float, float], scale: float, generator: Generators
    ) -> Tensor:
        radius, sigma = param
        angles = random_uniform((len(images),), -45.0, 45.0, generator, images.device)
        return motion_blur(images, max(round(radius * scale), 1), sigma * scale, angles)
