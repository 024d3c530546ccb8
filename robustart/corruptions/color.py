"""Colour operations shared by the corruptions: HSV edits without a round trip, greyscale.

In HSV, an RGB pixel is ``c = V · (1 − S · k_c)`` with ``V`` its largest channel, ``S`` its
saturation and ``k_c ∈ [0, 1]`` a function of the hue alone. Editing V or S with the hue fixed
therefore has a closed form on the RGB triple, which is what these functions compute (the
reference goes through ``skimage.color.rgb2hsv`` / ``hsv2rgb``).

kornia: the round trip ``color.rgb_to_hsv`` → edit → ``color.hsv_to_rgb`` gives the same
results (max. abs. difference 1e-6, ``tests/test_corruptions_kornia.py``) but is 11× slower
on the CPU than these closed forms (3.1 vs 0.28 ms per 224-px image). ``enhance.adjust_brightness``
is an additive RGB shift, not an HSV value change (off by up to δ), and
``enhance.adjust_saturation`` has no offset ``b`` (off by up to b, e.g. 0.1 at saturate
severity 4).
"""

from __future__ import annotations

import torch
from torch import Tensor

#: ``cv2.cvtColor(..., COLOR_RGB2GRAY)`` weights (ITU-R BT.601), used by snow.
CV2_GRAY_WEIGHTS = (0.299, 0.587, 0.114)
#: The reference's own ``rgb2gray`` weights, used for single-channel images.
REFERENCE_GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)


def add_hsv_value(images: Tensor, delta: float) -> Tensor:
    """Add ``delta`` to the HSV value of RGB ``images`` (N, 3, H, W), clipping V to [0, 1].

    Converting to HSV, changing V and converting back scales the RGB triple by ``V'/V``
    (hue and saturation fixed), where ``V`` is the largest channel; black pixels (V = 0, so
    S = 0) become grey ``V'``. This computes that directly, without the HSV round trip.
    Images with one channel are their own value channel.
    """
    value = images.amax(dim=1, keepdim=True)
    new_value = (value + delta).clamp(0.0, 1.0)
    ratio = new_value / value.clamp_min(1e-12)
    return torch.where(value > 0, images * ratio, new_value.expand_as(images))


def affine_hsv_saturation(images: Tensor, factor: float, offset: float) -> Tensor:
    """Set the HSV saturation of RGB ``images`` (N, 3, H, W) to ``clip(S · factor + offset)``.

    Hue and value are kept. Grey pixels have hue 0 (red) in the reference's conversion, so a
    positive ``offset`` tints them red, as there. Single-channel images are treated as grey RGB
    and their first (red) channel is returned, as the reference does.

    Returns:
        Tensor of the input's shape, in [0, 1] for inputs in [0, 1].
    """
    if images.shape[1] == 1:
        return affine_hsv_saturation(images.expand(-1, 3, -1, -1), factor, offset)[:, :1]
    value = images.amax(dim=1, keepdim=True)
    minimum = images.amin(dim=1, keepdim=True)
    chroma = value - minimum
    saturation = torch.where(value > 0, chroma / value.clamp_min(1e-12), torch.zeros_like(value))
    new_saturation = (saturation * factor + offset).clamp(0.0, 1.0)
    grey_hue = torch.tensor([0.0, 1.0, 1.0], device=images.device, dtype=images.dtype)
    hue_weights = torch.where(
        chroma > 0, (value - images) / chroma.clamp_min(1e-12), grey_hue.view(1, 3, 1, 1)
    )
    return value * (1.0 - new_saturation * hue_weights)


def to_gray(images: Tensor, weights: tuple[float, float, float] = CV2_GRAY_WEIGHTS) -> Tensor:
    """Luma of RGB ``images`` (N, 3, H, W) as (N, 1, H, W); one-channel images pass through."""
    if images.shape[1] == 1:
        return images
    w = torch.tensor(weights, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return (images * w).sum(dim=1, keepdim=True)


def match_channels(rgb: Tensor, channels: int) -> Tensor:
    """An RGB overlay (N, 3, H, W) for images with ``channels`` channels (1: the reference's
    ``rgb2gray`` of it; 3: unchanged)."""
    return rgb if channels == 3 else to_gray(rgb, REFERENCE_GRAY_WEIGHTS)
