"""Convolution kernels and filtering shared by the blur corruptions.

Kernels are built on the images' device in float32; filtering is depthwise (each channel with
the same kernel) with "nearest" (replicate) borders, as ``scipy.ndimage`` / ``skimage`` use in
the reference definitions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def gaussian_kernel1d(
    sigma: float, truncate: float = 4.0, device: torch.device | str | None = None
) -> Tensor:
    """Normalised 1-D Gaussian of standard deviation ``sigma`` (pixels).

    The radius is ``int(truncate · sigma + 0.5)``, as in ``scipy.ndimage.gaussian_filter``.

    Returns:
        Tensor of shape (2·radius + 1,), summing to 1.
    """
    radius = int(truncate * float(sigma) + 0.5)
    if sigma <= 0 or radius == 0:
        return torch.ones(1, device=device)
    x = torch.arange(-radius, radius + 1, device=device, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def filter2d_depthwise(images: Tensor, kernel: Tensor, border: str = "replicate") -> Tensor:
    """Correlate every channel of ``images`` (N, C, H, W) with a 2-D ``kernel`` (kh, kw).

    Odd kernel sizes keep the image size. ``border`` is a ``torch.nn.functional.pad`` mode.
    """
    c = images.shape[1]
    kh, kw = kernel.shape
    padded = F.pad(images, (kw // 2, (kw - 1) // 2, kh // 2, (kh - 1) // 2), mode=border)
    weight = kernel.to(images).expand(c, 1, kh, kw)
    return F.conv2d(padded, weight, groups=c)


def separable_filter(images: Tensor, kernel1d: Tensor, border: str = "replicate") -> Tensor:
    """Filter rows then columns of ``images`` (N, C, H, W) with the same 1-D kernel."""
    if kernel1d.numel() == 1:
        return images * kernel1d.to(images)
    k = kernel1d.to(images)
    out = filter2d_depthwise(images, k[None, :], border)
    return filter2d_depthwise(out, k[:, None], border)


def gaussian_blur(images: Tensor, sigma: float, truncate: float = 4.0) -> Tensor:
    """Gaussian blur with "nearest" borders, matching ``scipy.ndimage.gaussian_filter``.

    Kernels wider than the image are fine: replicate padding is applied in steps.
    """
    kernel = gaussian_kernel1d(sigma, truncate, images.device)
    radius = kernel.numel() // 2
    h, w = images.shape[-2:]
    if radius >= min(h, w):  # F.pad("replicate") needs pad < size: pad once up front
        extra = radius
        padded = F.pad(images, (extra, extra, extra, extra), mode="replicate")
        return separable_filter(padded, kernel)[..., extra : extra + h, extra : extra + w]
    return separable_filter(images, kernel)
