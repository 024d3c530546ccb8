"""Random erasing (Zhong et al., 2020): blank a random rectangle of each image, on the device."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from robustart.augment.base import BATCH_AUGMENTATIONS, BatchAugmentation
from robustart.augment.checks import check_int_range, check_probability
from robustart.errors import ConfigError


@BATCH_AUGMENTATIONS.register("random_erasing")
class RandomErasing(BatchAugmentation):
    """Erase one rectangle per selected image, with its own size, shape and place per image.

    Each image is erased with probability ``prob``; its rectangle covers a fraction of the
    image drawn uniformly from ``scale`` with an aspect ratio drawn log-uniformly from
    ``ratio``. Up to ``attempts`` draws are made per image to find a rectangle that fits
    (torchvision's rule); an image with no fitting draw is left unchanged. Fully vectorised:
    no per-image Python loop. Targets pass through unchanged.

    YAML: ``batch_augment: [{name: random_erasing, prob: 0.5}]``.

    Args:
        prob: Probability of erasing each image.
        scale: Range of the erased fraction of the image area.
        ratio: Range of the rectangle's aspect ratio (height / width).
        value: Fill: ``"random"`` (uniform noise in [0, 1] per pixel, as in the paper) or a
            constant in [0, 1] (0 = black, torchvision's default).
        attempts: Draws per image to find a rectangle inside the image.
    """

    name = "random_erasing"

    def __init__(
        self,
        prob: float = 0.5,
        scale: tuple[float, float] = (0.02, 0.33),
        ratio: tuple[float, float] = (0.3, 3.3),
        value: float | str = "random",
        attempts: int = 10,
    ) -> None:
        super().__init__()
        self.prob = check_probability(self.name, "prob", prob)
        if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
            raise ConfigError(f"{self.name}: scale must be [low, high] in (0, 1], got {scale}")
        if len(ratio) != 2 or not 0 < ratio[0] <= ratio[1]:
            raise ConfigError(f"{self.name}: ratio must be [low, high] with 0 < low, got {ratio}")
        if isinstance(value, str):
            if value != "random":
                raise ConfigError(
                    f"{self.name}: value must be 'random' or a number in [0, 1], got {value!r}"
                )
        else:
            check_probability(self.name, "value", value)
        self.scale = (float(scale[0]), float(scale[1]))
        self.log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
        self.value = value
        self.attempts = check_int_range(self.name, "attempts", attempts, 1)

    def erase_masks(self, n: int, height: int, width: int, device: torch.device) -> Tensor:
        """Boolean masks (N, 1, H, W), true inside each image's erased rectangle."""
        shape = (n, self.attempts)
        area = height * width * torch.empty(shape, device=device).uniform_(*self.scale)
        aspect = torch.empty(shape, device=device).uniform_(*self.log_ratio).exp_()
        h = (area * aspect).sqrt().round().long()
        w = (area / aspect).sqrt().round().long()
        fits = (h >= 1) & (w >= 1) & (h < height) & (w < width)
        first = fits.int().argmax(dim=1, keepdim=True)  # the first fitting draw per image
        h, w = h.gather(1, first).squeeze(1), w.gather(1, first).squeeze(1)
        chosen = fits.gather(1, first).squeeze(1)
        chosen &= torch.rand(n, device=device) < self.prob
        top = (torch.rand(n, device=device) * (height - h + 1)).long()
        left = (torch.rand(n, device=device) * (width - w + 1)).long()
        rows = torch.arange(height, device=device).view(1, height, 1)
        cols = torch.arange(width, device=device).view(1, 1, width)
        inside_rows = (rows >= top.view(n, 1, 1)) & (rows < (top + h).view(n, 1, 1))
        inside_cols = (cols >= left.view(n, 1, 1)) & (cols < (left + w).view(n, 1, 1))
        return (inside_rows & inside_cols & chosen.view(n, 1, 1)).unsqueeze(1)

    def forward(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Erase rectangles in images (N, C, H, W) in [0, 1]; targets are returned as given."""
        n, _, height, width = images.shape
        mask = self.erase_masks(n, height, width, images.device)
        fill = (
            torch.rand_like(images)
            if self.value == "random"
            else torch.full_like(images, float(self.value))
        )
        return torch.where(mask, fill, images), targets
