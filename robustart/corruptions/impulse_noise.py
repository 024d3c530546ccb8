"""Salt-and-pepper (impulse) noise, drawn independently per pixel and channel."""

from __future__ import annotations

import torch
from torch import Tensor

from robustart.corruptions.base import CORRUPTIONS, Bound, Corruption
from robustart.corruptions.sampling import bernoulli_indices


@CORRUPTIONS.register("impulse_noise")
class ImpulseNoise(Corruption):
    """Each element becomes 0 or 1 (equally likely) with probability ``amount``.

    As in the reference (``skimage.util.random_noise(mode="s&p")`` on an H×W×3 array), the mask
    is drawn per element, so channels are corrupted independently (coloured specks), unlike
    kornia's salt-and-pepper, which shares one mask across channels. The flipped elements are
    drawn by geometric skipping (:func:`~robustart.corruptions.sampling.bernoulli_indices`),
    so only they cost random draws.
    """

    name = "impulse_noise"
    category = "noise"
    parameter_bounds = (Bound("amount", 0.0, 1.0),)
    imagenet = (0.03, 0.06, 0.09, 0.17, 0.27)
    cifar = (0.01, 0.02, 0.03, 0.05, 0.07)

    def apply(
        self, images: Tensor, param: float, scale: float, generator: torch.Generator | None
    ) -> Tensor:
        out = images.clone(memory_format=torch.contiguous_format)
        flat = out.view(-1)
        flipped = bernoulli_indices(flat.numel(), param, generator, images.device)
        salt = torch.rand(flipped.shape, generator=generator, device=images.device) < 0.5
        flat[flipped] = salt.to(images.dtype)
        return out
