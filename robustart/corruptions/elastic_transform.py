"""Elastic transform: a small random affine warp, then a smooth random displacement field."""

from __future__ import annotations

import torch
from torch import Tensor

from robustart.corruptions.base import (
    CORRUPTIONS,
    Bound,
    Corruption,
    Generators,
    random_uniform,
    table_for_size,
)
from robustart.corruptions.geometry import affine_from_points, sample_displaced, warp_perspective
from robustart.corruptions.kernels import gaussian_blur

#: The side the fractions of each table multiply. The ImageNet-C reference multiplies by 244,
#: not 224 ("244 should have been 224, but ultimately nothing is incorrect"); the reference wins.
REFERENCE_SIDE = {"imagenet": 244, "cifar": 32}


def jitter_affine(height: int, width: int, jitter: Tensor) -> Tensor:
    """Affine maps moving three reference points of the image by ``jitter``.

    The points are the centre ± a third of the shorter side (the corners (+, +), (+, −),
    (−, −) of a square around the centre), as in the reference.

    Args:
        jitter: (N, 3, 2) displacements ``(dx, dy)`` in pixels.

    Returns:
        (N, 3, 3) matrices mapping input to output positions.
    """
    cx, cy = float(width // 2), float(height // 2)
    half = float(min(height, width) // 3)
    points = torch.tensor(
        [[cx + half, cy + half], [cx + half, cy - half], [cx - half, cy - half]],
        device=jitter.device,
        dtype=torch.float64,
    ).expand(len(jitter), 3, 2)
    return affine_from_points(points, points + jitter.double())


@CORRUPTIONS.register("elastic_transform")
class ElasticTransform(Corruption):
    """Reference elastic transform with (α, σ, affine jitter) as fractions of the image side.

    Per image: the three reference points of :func:`jitter_affine` move by U(−j, j) each and
    the image is warped by the affine map through them (bilinear, "mirror" border, as
    ``cv2.warpAffine``; the positions of kornia's ``warp_affine``). Then a displacement field,
    U(−1, 1) noise per pixel and axis blurred by a Gaussian of σ (truncated at 3σ, "reflect"
    border) and scaled by α, moves every pixel (bilinear, "reflect" border, as
    ``scipy.ndimage.map_coordinates``). kornia's own ``elastic_transform2d`` is a different
    definition (displacements in normalised coordinates, no affine step): max. abs. difference
    0.93 from this displacement on the same noise at 224 px.

    The fractions multiply the reference side (244 for the ImageNet table, as the reference
    code does; 32 for CIFAR) times ``scale``, so all three parameters are spatial;
    :meth:`parameter` gives them in pixels. Severities 1–2 of the ImageNet table are large,
    very smooth fields; 3–5 small, local ones.
    """

    name = "elastic_transform"
    category = "digital"
    pixel_lengths = True
    #: α is a gain on a smoothed field (at most a few pixels' displacement per unit), not a
    #: kernel: it may exceed the image side more (the ImageNet table's is 2.2 × 224 px).
    parameter_bounds = (
        Bound("alpha", 0.0, per_side=16),
        Bound("sigma", 0.0, per_side=4),
        Bound("jitter", 0.0, per_side=4),
    )
    #: The affine jitter's reference points lie a third of the shorter side from the centre:
    #: below 3 px they coincide and the affine map is undefined.
    min_side = 3
    imagenet = (
        (2.0, 0.7, 0.1),
        (2.0, 0.08, 0.2),
        (0.05, 0.01, 0.02),
        (0.07, 0.01, 0.02),
        (0.12, 0.01, 0.02),
    )
    cifar = (
        (0.0, 0.0, 0.08),
        (0.05, 0.2, 0.07),
        (0.08, 0.06, 0.06),
        (0.1, 0.04, 0.05),
        (0.1, 0.03, 0.03),
    )

    batched_generators = True

    def parameter(self, severity: int, height: int, width: int) -> tuple[tuple, float]:
        """``(α, σ, jitter)`` in pixels at this image size (the table's fractions times the
        reference side times the size scale), and scale 1."""
        fractions, scale = super().parameter(severity, height, width)
        side = REFERENCE_SIDE[table_for_size(height, width)[0]] * scale
        return tuple(fraction * side for fraction in fractions), 1.0

    def apply(
        self, images: Tensor, param: tuple[float, float, float], scale: float, generator: Generators
    ) -> Tensor:
        n, _, h, w = images.shape
        alpha, sigma, jitter = (pixels * scale for pixels in param)
        device = images.device
        shift = random_uniform((n, 3, 2), -jitter, jitter, generator, device)
        warped = warp_perspective(images, jitter_affine(h, w, shift), border="mirror")
        noise = random_uniform((n, 2, h, w), -1.0, 1.0, generator, device)
        field = gaussian_blur(noise, sigma, truncate=3.0, border="reflect")
        return sample_displaced(warped, field, border="reflect", gain=alpha)
