"""Pixelation: box-filtered downscaling, then enlarging back."""

from __future__ import annotations

import torch
from torch import Tensor

from robustart.corruptions.base import CORRUPTIONS, Corruption
from robustart.corruptions.geometry import box_resize_matrix


def box_down_nearest_up(size: int, fraction: float) -> tuple[Tensor, Tensor]:
    """One axis of pixelation: the PIL BOX matrix (small × size) to ``int(size · fraction)``
    pixels, and for every output pixel the small pixel that PIL's BOX (= NEAREST)
    enlargement copies (size,)."""
    small = max(int(size * fraction), 1)
    down = box_resize_matrix(size, small)
    up = box_resize_matrix(small, size).argmax(dim=1)  # one-hot rows: a pure selection
    return down, up


@CORRUPTIONS.register("pixelate")
class Pixelate(Corruption):
    """Resize to ``int(side · c)`` with PIL's BOX filter and back to the original size.

    The reference enlarges with BOX as well (``imagecorruptions`` uses NEAREST); for
    enlargement PIL's box filter picks exactly the nearest pixel, so both agree. The
    reduction is a matrix product per axis, the enlargement an index selection.
    Deterministic; ``c`` is a fraction of the size, not spatial.
    """

    name = "pixelate"
    category = "digital"
    imagenet = (0.6, 0.5, 0.4, 0.3, 0.25)
    cifar = (0.95, 0.9, 0.85, 0.75, 0.65)

    def apply(
        self, images: Tensor, param: float, scale: float, generator: torch.Generator | None
    ) -> Tensor:
        h, w = images.shape[-2:]
        down_rows, up_rows = box_down_nearest_up(h, param)
        down_cols, up_cols = box_down_nearest_up(w, param)
        device, dtype = images.device, images.dtype
        small = down_rows.to(device, dtype) @ images @ down_cols.to(device, dtype).T
        return small.index_select(-2, up_rows.to(device)).index_select(-1, up_cols.to(device))
