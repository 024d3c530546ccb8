"""Saturation change in HSV."""

from __future__ import annotations

from torch import Tensor

from robustart.corruptions.base import (
    CORRUPTIONS,
    Bound,
    Corruption,
    Generators,
    map_image_chunks,
)
from robustart.corruptions.color import affine_hsv_saturation


@CORRUPTIONS.register("saturate")
class Saturate(Corruption):
    """HSV saturation ``S ← clip(S · a + b, 0, 1)`` with ``(a, b)`` per severity. Deterministic.

    Severities 1–2 wash colours out (a < 1), 3–5 boost them, so the distortion is not monotonic
    in the severity. Grey pixels have hue 0 in the reference conversion and turn reddish when
    ``b > 0`` (severities 4–5), as in the reference. No spatial parameters.
    """

    name = "saturate"
    category = "extra"
    parameter_bounds = (Bound("factor", 0.0), Bound("offset"))
    imagenet = ((0.3, 0.0), (0.1, 0.0), (2.0, 0.0), (5.0, 0.1), (20.0, 0.2))
    cifar = ((0.3, 0.0), (0.1, 0.0), (1.5, 0.0), (2.0, 0.1), (2.5, 0.2))

    batched_generators = True  # deterministic: no draws

    def apply(
        self,
        images: Tensor,
        param: tuple[float, float],
        scale: float,
        generator: Generators,
    ) -> Tensor:
        factor, offset = param
        return map_image_chunks(lambda chunk: affine_hsv_saturation(chunk, factor, offset), images)
