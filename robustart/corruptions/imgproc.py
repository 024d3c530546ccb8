"""Batched versions of the OpenCV operations behind the reference's liquid spatter.

The reference shades water drops with ``cv2.Canny``, ``cv2.distanceTransform``,
``cv2.equalizeHist``, ``cv2.filter2D`` and ``cv2.blur`` on 8-bit images. These functions
follow OpenCV's definitions on batches of single-channel images held as float tensors with
integer values 0..255, shape (N, 1, H, W).

kornia's counterparts are not these operations (differences measured on the liquid layers of
spatter severity 1, in ``tests/test_corruptions_kornia.py``) or are slower, so robustart keeps
its own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from robustart.corruptions.kernels import filter2d_depthwise, pad2d

SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))
#: Largest intermediate (elements) for the one-shot vertical pass of the distance transform.
_UNFOLD_LIMIT = 1 << 24
#: OpenCV's fixed-point tan(22.5°) (15 fractional bits), used to bin gradient directions.
_TAN22_FIXED = int(0.4142135623730950488 * (1 << 15) + 0.5)


# kornia.filters.canny uses the L2 gradient magnitude (OpenCV's default is L1): 0.5 % of the edge
# pixels differ at 224 px, 12 % at 32 px.
def canny_edges(images: Tensor, low: float, high: float) -> Tensor:
    """Edge map of ``cv2.Canny(images, low, high)`` (aperture 3, L1 gradient magnitude).

    Sobel gradients with replicated borders; non-maximum suppression along the gradient
    direction binned into 0°, 45°, 90° and 135° as OpenCV does (ties kept on one side only);
    hysteresis: pixels above ``high`` are edges, and so are pixels above ``low`` that are
    8-connected to an edge through such pixels.

    Args:
        images: (N, 1, H, W) with integer values 0..255.

    Returns:
        Bool tensor (N, 1, H, W).
    """
    sobel = torch.tensor(SOBEL_X, device=images.device, dtype=torch.float32)
    x = images.float()
    grad_x = filter2d_depthwise(x, sobel, border="nearest")
    grad_y = filter2d_depthwise(x, sobel.T, border="nearest")
    magnitude = grad_x.abs() + grad_y.abs()
    padded = F.pad(magnitude, (1, 1, 1, 1))  # zero magnitude outside the image

    def neighbour(dy: int, dx: int) -> Tensor:
        h, w = magnitude.shape[-2:]
        return padded[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]

    ax = grad_x.abs().long()
    ay_fixed = grad_y.abs().long() << 15
    tan22 = ax * _TAN22_FIXED
    tan67 = tan22 + (ax << 16)
    horizontal = ay_fixed < tan22
    vertical = ~horizontal & (ay_fixed > tan67)
    diagonal = ~horizontal & ~vertical
    opposite_signs = (grad_x < 0) != (grad_y < 0)
    m = magnitude
    keep_h = (m > neighbour(0, -1)) & (m >= neighbour(0, 1))
    keep_v = (m > neighbour(-1, 0)) & (m >= neighbour(1, 0))
    # OpenCV: s = −1 if the gradient components have opposite signs, else 1; compares the
    # previous row at column x − s with the next row at column x + s
    keep_d = torch.where(
        opposite_signs,
        (m > neighbour(-1, 1)) & (m > neighbour(1, -1)),
        (m > neighbour(-1, -1)) & (m > neighbour(1, 1)),
    )
    maximum = (horizontal & keep_h) | (vertical & keep_v) | (diagonal & keep_d)
    candidate = maximum & (m > low)
    edges = candidate & (m > high)
    while True:  # hysteresis: grow the strong edges through 8-connected weak candidates
        grown = candidate & dilate3x3(edges)
        if torch.equal(grown, edges):
            return edges
        edges = grown


def dilate3x3(mask: Tensor) -> Tensor:
    """Binary dilation of a bool mask (..., H, W) by a 3×3 square (outside counts as False)."""
    padded = F.pad(mask, (1, 1, 1, 1))
    h, w = mask.shape[-2:]
    rows = padded[..., :, 0:w] | padded[..., :, 1 : w + 1] | padded[..., :, 2 : w + 2]
    return rows[..., 0:h, :] | rows[..., 1 : h + 1, :] | rows[..., 2 : h + 2, :]


# kornia.contrib.distance_transform approximates the distance by cascaded convolutions: up to
# 5.6 px off at 224 px (cap 20 px).
def distance_to_edges(edges: Tensor, limit: float) -> Tensor:
    """Euclidean distance of every pixel to the nearest edge pixel, capped at ``limit``.

    This is ``cv2.distanceTransform(255 − edges, DIST_L2, ...)`` followed by the reference's
    ``cv2.threshold(..., limit, limit, THRESH_TRUNC)``, computed exactly (OpenCV's 5×5 mask is
    a close approximation of it): a per-row scan for the nearest edge in the row, then a
    minimum over vertical offsets up to ``limit``.

    Args:
        edges: Bool tensor (N, 1, H, W).
        limit: Cap in pixels.

    Returns:
        Float tensor (N, 1, H, W) in [0, limit].
    """
    h, w = edges.shape[-2:]
    big = 4 * (h + w + int(limit) + 1)
    cols = torch.arange(w, device=edges.device).expand_as(edges)
    left = torch.where(edges, cols, torch.full_like(cols, -big)).cummax(dim=-1).values
    right = torch.where(edges, cols, torch.full_like(cols, big))
    right = right.flip(-1).cummin(dim=-1).values.flip(-1)
    row_distance = torch.minimum(cols - left, right - cols).float()
    squared = row_distance.square()
    reach = min(int(limit), h - 1)
    padded = F.pad(squared, (0, 0, reach, reach), value=float(big) ** 2)
    offsets = torch.arange(-reach, reach + 1, device=edges.device, dtype=squared.dtype) ** 2
    if squared.numel() * len(offsets) <= _UNFOLD_LIMIT:  # all vertical offsets at once
        windows = padded.unfold(-2, 2 * reach + 1, 1)  # (N, 1, H, W, 2·reach + 1)
        return (windows + offsets).amin(dim=-1).sqrt().clamp_max(limit)
    best = squared.clone()
    for dy in range(1, reach + 1):
        nearer = torch.minimum(
            padded[..., reach - dy : reach - dy + h, :], padded[..., reach + dy : reach + dy + h, :]
        )
        torch.minimum(best, nearer.add_(dy * dy), out=best)
    return best.sqrt().clamp_max(limit)


# kornia.enhance.equalize is PIL's equalisation, not OpenCV's: up to 66 levels (of 255) off.
def equalize_histogram(images: Tensor) -> Tensor:
    """``cv2.equalizeHist`` of each image (N, 1, H, W) with integer values 0..255.

    The lowest occurring level maps to 0 and the others to ``round(255 · cdf')`` with the
    cumulative count taken without that level; a constant image maps to its own level.
    """
    n = images.shape[0]
    levels = images.reshape(n, -1).long()
    total = levels.shape[1]
    offsets = torch.arange(n, device=images.device)[:, None] * 256
    hist = torch.bincount((levels + offsets).reshape(-1), minlength=256 * n).reshape(n, 256)
    first = (hist > 0).float().argmax(dim=1, keepdim=True)
    first_count = hist.gather(1, first)
    scale = 255.0 / (total - first_count).clamp_min(1).double()
    lut = torch.round(hist.cumsum(dim=1).double().sub(first_count) * scale).clamp(0, 255)
    constant = first_count == total
    lut = torch.where(constant, first.double().expand(-1, 256), lut)
    return lut.float().gather(1, levels).reshape(images.shape)


def filter_uint8(images: Tensor, kernel: Tensor) -> Tensor:
    """``cv2.filter2D(images, CV_8U, kernel)``: correlation with "mirror" borders, rounded and
    saturated to 0..255."""
    return torch.round(filter2d_depthwise(images, kernel, border="mirror")).clamp(0, 255)


# kornia.filters.box_blur (reflect border) is exact after rounding, but a depthwise conv2d that
# is 8× slower on the CPU than this average pooling (0.47 vs 3.8 ms per 224-px image).
def box_blur_uint8(images: Tensor, round_result: bool = True) -> Tensor:
    """``cv2.blur(images, (3, 3))`` with "mirror" borders; the 3×3 mean is rounded to an integer
    (``round_result``, 8-bit input) or truncated (float input then ``astype(uint8)``)."""
    padded = pad2d(images, 1, 1, 1, 1, "mirror")
    mean = F.avg_pool2d(padded, 3, stride=1)
    return torch.round(mean) if round_result else torch.floor(mean)
