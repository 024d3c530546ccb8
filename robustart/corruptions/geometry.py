"""Resampling shared by the geometric corruptions and perturbations.

Coordinates are in pixels: pixel (row i, column j) has its centre at ``(y, x) = (i, j)``.
Sampling is bilinear; the border says how positions outside the image are read (names as in
:mod:`robustart.corruptions.kernels`: "nearest", "reflect" = scipy's half-sample symmetric,
"mirror" = OpenCV's ``BORDER_REFLECT_101``, "constant" = zeros). Sampling and warps are
kornia's (``geometry.transform.remap`` and ``warp_perspective``), except
:func:`sample_displaced` and the affine warps of :func:`warp_perspective`, which write
``grid_sample``'s grid themselves (one pass per axis; kornia's own grids cost more than the
sampling on CPUs).
"""

from __future__ import annotations

import functools
import math

import kornia.geometry.transform as KT
import torch
import torch.nn.functional as F
from torch import Tensor

from robustart.errors import ConfigError

#: How each border is expressed with kornia's (``grid_sample``'s) padding_mode and
#: align_corners.
_GRID_SAMPLE_BORDERS = {
    "nearest": ("border", True),
    "mirror": ("reflection", True),  # reflects about the first/last pixel centre
    "reflect": ("reflection", False),  # reflects about the image edge
    "constant": ("zeros", True),
}


def grid_border(border: str) -> tuple[str, bool]:
    """kornia's ``(padding_mode, align_corners)`` for a border name.

    Raises:
        ConfigError: for a border sampling does not support ("wrap").
    """
    if border not in _GRID_SAMPLE_BORDERS:
        raise ConfigError(f"unsupported border {border!r}; use one of {list(_GRID_SAMPLE_BORDERS)}")
    return _GRID_SAMPLE_BORDERS[border]


def sample_pixels(images: Tensor, ys: Tensor, xs: Tensor, border: str = "constant") -> Tensor:
    """Bilinearly sample ``images`` at pixel coordinates (``kornia.geometry.transform.remap``).

    Args:
        images: Tensor (N, C, H, W).
        ys: Row coordinates, shape (N, H', W') (or (1, H', W'), shared by all images).
        xs: Column coordinates, same shape as ``ys``.
        border: "nearest", "mirror", "reflect" or "constant".

    Returns:
        Tensor (N, C, H', W').

    Example:
        >>> image = torch.arange(4.0).view(1, 1, 2, 2)
        >>> sample_pixels(image, torch.tensor([[[0.5]]]), torch.tensor([[[0.5]]])).item()
        1.5
    """
    padding_mode, align_corners = grid_border(border)
    ys, xs = ys.to(images.dtype), xs.to(images.dtype)
    if align_corners:  # kornia normalises pixel coordinates for align_corners=True
        return KT.remap(images, xs, ys, padding_mode=padding_mode, align_corners=True)
    h, w = images.shape[-2:]
    gx, gy = (2.0 * xs + 1.0) / w - 1.0, (2.0 * ys + 1.0) / h - 1.0
    return KT.remap(
        images, gx, gy, padding_mode=padding_mode, align_corners=False, normalized_coordinates=True
    )


def sample_displaced(
    images: Tensor, displacement: Tensor, border: str = "constant", gain: float = 1.0
) -> Tensor:
    """Bilinearly sample every pixel of ``images`` displaced by a per-pixel field.

    The output at (row i, column j) reads the input at ``(i + g·dy, j + g·dx)``, g = ``gain``:
    the values of :func:`sample_pixels` at ``rows + g·dy, cols + g·dx`` (to float rounding), but
    the sampling
    grid is written in one pass per axis straight into ``grid_sample``'s layout (kornia's
    ``remap`` stacks and normalises the coordinates in separate passes over the batch).

    Args:
        images: Tensor (N, C, H, W).
        displacement: (N, 2, H, W) displacements ``(dx, dy)`` in pixels.
        border: "nearest", "mirror", "reflect" or "constant".
        gain: Factor of the displacements.

    Returns:
        Tensor (N, C, H, W).

    Example:
        >>> image = torch.arange(4.0).view(1, 1, 2, 2)
        >>> half_pixel = torch.full((1, 2, 2, 2), 0.5)  # right and down by half a pixel
        >>> sample_displaced(image, half_pixel, border="nearest")[0, 0].tolist()
        [[1.5, 2.0], [2.5, 3.0]]
    """
    padding_mode, align_corners = grid_border(border)
    n, _, h, w = images.shape
    grid = torch.empty(n, h, w, 2, device=images.device, dtype=images.dtype)
    for axis, size, shape in ((0, w, (1, 1, w)), (1, h, (1, h, 1))):
        # normalised coordinate of pixel p: scale · p + offset (grid_sample's convention)
        if align_corners:
            scale, offset = (2.0 / (size - 1) if size > 1 else 0.0), -1.0
        else:
            scale, offset = 2.0 / size, 1.0 / size - 1.0
        positions = torch.arange(size, device=images.device, dtype=images.dtype) * scale + offset
        field = displacement[:, axis].to(images.dtype)
        torch.add(positions.view(shape), field, alpha=scale * gain, out=grid[..., axis])
    return F.grid_sample(
        images, grid, mode="bilinear", padding_mode=padding_mode, align_corners=align_corners
    )


def clipped_zoom(images: Tensor, zoom: float) -> Tensor:
    """Zoom into the centre of ``images`` (N, C, H, W) by ``zoom`` ≥ 1, keeping the size.

    The reference's ``clipped_zoom``: the central ``ceil(H / zoom) × ceil(W / zoom)`` pixels
    are enlarged bilinearly to ``round(crop · zoom)`` pixels with the end points aligned (as
    ``scipy.ndimage.zoom(order=1)``; here ``align_corners=True``) and trimmed to H × W around
    the centre.
    """
    h, w = images.shape[-2:]
    crop_h, crop_w = math.ceil(h / zoom), math.ceil(w / zoom)
    top, left = (h - crop_h) // 2, (w - crop_w) // 2
    out_h, out_w = round(crop_h * zoom), round(crop_w * zoom)
    trim_top, trim_left = (out_h - h) // 2, (out_w - w) // 2
    crop = images[..., top : top + crop_h, left : left + crop_w]
    zoomed = F.interpolate(crop, size=(out_h, out_w), mode="bilinear", align_corners=True)
    return zoomed[..., trim_top : trim_top + h, trim_left : trim_left + w]


def warp_perspective(
    images: Tensor, matrices: Tensor, border: str = "constant", inverse: bool = False
) -> Tensor:
    """Warp ``images`` by projective maps, as ``cv2.warpPerspective`` / ``cv2.warpAffine``
    (``kornia.geometry.transform.warp_perspective``).

    Args:
        images: Tensor (N, C, H, W).
        matrices: (N, 3, 3) or (3, 3) maps in pixel coordinates ``(x, y, 1)``. By default they
            map input to output positions (OpenCV's convention: the output at ``p`` reads the
            input at ``M⁻¹ p``); with ``inverse=True`` they map output to input positions.
        border: How the input is read outside the image: "nearest", "mirror" or "constant"
            (pixel-centre coordinates, ``align_corners=True``).

    Returns:
        Warped images, same shape.
    """
    padding_mode, align_corners = grid_border(border)
    if not align_corners:
        raise ConfigError(f"warp_perspective: border {border!r} is not supported")
    h, w = images.shape[-2:]
    m = matrices.to(images.device, torch.float64)
    if m.ndim == 2:
        m = m.unsqueeze(0)
    m = m.expand(len(images), 3, 3)
    if _is_affine(m):
        # kornia builds the grid with F.affine_grid, a batched matrix product that costs more
        # than the sampling itself on CPUs; the grid of an affine map is two outer sums.
        to_input = m if inverse else torch.linalg.inv(m)
        grid = affine_sampling_grid(to_input[:, :2], h, w, images.dtype)
        return F.grid_sample(
            images, grid, mode="bilinear", padding_mode=padding_mode, align_corners=True
        )
    to_output = torch.linalg.inv(m) if inverse else m
    return KT.warp_perspective(
        images, to_output.to(images.dtype), (h, w), padding_mode=padding_mode, align_corners=True
    )


def _is_affine(matrices: Tensor, tolerance: float = 1e-12) -> bool:
    """Whether every (3, 3) matrix of ``matrices`` (N, 3, 3) has the last row (0, 0, 1)."""
    last = matrices[:, 2] - torch.tensor(
        [0.0, 0.0, 1.0], dtype=matrices.dtype, device=matrices.device
    )
    return bool(last.abs().max() <= tolerance)


def affine_sampling_grid(maps: Tensor, height: int, width: int, dtype: torch.dtype) -> Tensor:
    """``grid_sample``'s grid (``align_corners=True``) for output → input affine maps.

    The grid holds, for every output pixel ``(x, y)``, the input position ``maps @ (x, y, 1)``
    normalised to [−1, 1] (pixel 0 → −1, pixel ``size − 1`` → 1). The coefficients are folded
    with the normalisation in float64 and each axis is written in one pass as the sum of a
    per-row and a per-column term, so the grid costs two passes over (N, H, W).

    Args:
        maps: (N, 2, 3) output → input maps in pixel coordinates ``(x, y, 1)``.
        height: Output height H.
        width: Output width W.
        dtype: Floating dtype of the grid.

    Returns:
        Tensor (N, H, W, 2) of ``(x, y)`` normalised positions.

    Example:
        >>> identity = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
        >>> affine_sampling_grid(identity, 2, 3, torch.float32)[0, 1].tolist()
        [[-1.0, 1.0], [0.0, 1.0], [1.0, 1.0]]
    """
    n = len(maps)
    maps = maps.to(torch.float64)
    device = maps.device
    grid = torch.empty(n, height, width, 2, device=device, dtype=dtype)
    xs = torch.arange(width, device=device, dtype=torch.float64)
    ys = torch.arange(height, device=device, dtype=torch.float64)
    for axis, size in ((0, width), (1, height)):
        to_unit = 2.0 / (size - 1) if size > 1 else 0.0
        a, b, c = (maps[:, axis, k, None] * to_unit for k in range(3))
        per_row = (b * ys + c - 1.0).to(dtype).view(n, height, 1)
        per_column = (a * xs).to(dtype).view(n, 1, width)
        torch.add(per_row, per_column, out=grid[..., axis])
    return grid


def affine_from_points(source: Tensor, target: Tensor) -> Tensor:
    """The affine maps taking three points to three others, as ``cv2.getAffineTransform``.

    Args:
        source: Points (N, 3, 2) as ``(x, y)``.
        target: Their images (N, 3, 2).

    Returns:
        Homogeneous matrices (N, 3, 3) with ``M @ (x, y, 1) = (x', y', 1)``.
    """
    source = source.double()
    ones = torch.ones(*source.shape[:-1], 1, device=source.device, dtype=source.dtype)
    design = torch.cat((source, ones), dim=-1)  # (N, 3, 3): rows (x, y, 1)
    coefficients = torch.linalg.solve(design, target.double())  # (N, 3, 2)
    affine = coefficients.transpose(1, 2)  # (N, 2, 3)
    bottom = torch.tensor([0.0, 0.0, 1.0], device=source.device, dtype=source.dtype)
    return torch.cat((affine, bottom.expand(len(affine), 1, 3)), dim=1)


@functools.lru_cache(maxsize=64)
def box_resize_matrix(in_size: int, out_size: int) -> Tensor:
    """Resampling matrix (out_size × in_size) of PIL's ``Image.resize(..., Image.BOX)``.

    PIL's box filter averages the input pixels whose centres fall inside each output pixel's
    footprint (``(x + ½ − centre) / max(scale, 1) ∈ (−½, ½]``, centre = ``(j + ½)·scale``,
    scale = in/out). Enlarging with it picks one input pixel per output pixel, which is
    exactly PIL's ``NEAREST`` enlargement. Cached: do not modify the result in place.
    """
    scale = in_size / out_size
    filter_scale = max(scale, 1.0)
    support = 0.5 * filter_scale
    matrix = torch.zeros(out_size, in_size, dtype=torch.float64)
    for j in range(out_size):
        centre = (j + 0.5) * scale
        first = max(int(centre - support + 0.5), 0)
        last = min(int(centre + support + 0.5), in_size)
        for i in range(first, last):
            u = (i - centre + 0.5) / filter_scale
            if -0.5 < u <= 0.5:
                matrix[j, i] = 1.0
        total = matrix[j].sum()
        if total > 0:
            matrix[j] /= total
    return matrix


def shift_image(images: Tensor, dx: int, dy: int) -> Tensor:
    """Translate ``images`` (..., H, W) by whole pixels (right, down), filling with zeros."""
    h, w = images.shape[-2:]
    out = torch.zeros_like(images)
    if abs(dx) >= w or abs(dy) >= h:
        return out
    src_rows = slice(max(-dy, 0), h - max(dy, 0))
    dst_rows = slice(max(dy, 0), h - max(-dy, 0))
    src_cols = slice(max(-dx, 0), w - max(dx, 0))
    dst_cols = slice(max(dx, 0), w - max(-dx, 0))
    out[..., dst_rows, dst_cols] = images[..., src_rows, src_cols]
    return out


def torchvision_affine(
    height: int, width: int, angle: float = 0.0, scale: float = 1.0, shear: float = 0.0
) -> Tensor:
    """The output → input map of the reference's ``torchvision`` (0.2) ``affine`` transform.

    Rotation by ``angle`` degrees clockwise, scaling by ``scale`` and shear by ``shear``
    degrees (the y axis tilted by ``shear``, the convention of torchvision at the time), about
    the point ``(W/2, H/2)`` in pixel-index coordinates (torchvision's centre ``size/2 + 0.5``
    in PIL's pixel-edge coordinates).

    Returns:
        (3, 3) float64 matrix for :func:`warp_perspective` with ``inverse=True``.
    """
    a, s = math.radians(angle), math.radians(shear)
    inverse = torch.tensor(
        [[math.cos(a + s), math.sin(a + s), 0.0], [-math.sin(a), math.cos(a), 0.0], [0, 0, 1]],
        dtype=torch.float64,
    )
    inverse[:2, :2] /= scale * math.cos(s)
    cx, cy = width / 2, height / 2
    to_origin = torch.tensor([[1.0, 0, -cx], [0, 1.0, -cy], [0, 0, 1.0]], dtype=torch.float64)
    back = torch.tensor([[1.0, 0, cx], [0, 1.0, cy], [0, 0, 1.0]], dtype=torch.float64)
    return back @ inverse @ to_origin


def tilt_homography(height: int, width: int, degrees: float) -> Tensor:
    """The reference's tilt: a perspective view of the image rotated by ``degrees`` about both
    its horizontal and vertical axes, at focal length ``sqrt(W² + H²)``.

    Returns:
        (3, 3) float64 input → output matrix (as for ``cv2.warpPerspective``).
    """
    theta = phi = math.radians(degrees)
    focal = math.hypot(width, height)
    to_plane = torch.tensor(
        [[1, 0, -width / 2], [0, 1, -height / 2], [0, 0, 1], [0, 0, 1]], dtype=torch.float64
    )
    c, s = math.cos(theta), math.sin(theta)
    about_x = torch.tensor(
        [[1, 0, 0, 0], [0, c, -s, 0], [0, s, c, 0], [0, 0, 0, 1]], dtype=torch.float64
    )
    c, s = math.cos(phi), math.sin(phi)
    about_y = torch.tensor(
        [[c, 0, -s, 0], [0, 1, 0, 0], [s, 0, c, 0], [0, 0, 0, 1]], dtype=torch.float64
    )
    away = torch.tensor(
        [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, focal], [0, 0, 0, 1]], dtype=torch.float64
    )
    project = torch.tensor(
        [[focal, 0, width / 2, 0], [0, focal, height / 2, 0], [0, 0, 1, 0]], dtype=torch.float64
    )
    return project @ away @ about_x @ about_y @ to_plane


def center_crop(images: Tensor, height: int, width: int) -> Tensor:
    """Central ``height × width`` crop of (..., H, W), offsets rounded as torchvision's
    ``CenterCrop`` (Python ``round``)."""
    h, w = images.shape[-2:]
    top, left = round((h - height) / 2), round((w - width) / 2)
    return images[..., top : top + height, left : left + width]
