"""The embedded default dataset: scikit-learn's bundled handwritten digits.

1,797 grey 8×8 images of the digits 0–9 (shipped inside scikit-learn, no download), upsampled
bilinearly to 32×32 and repeated to three channels, so that CIFAR architectures and corruption
tables apply unchanged. A fixed split (seed 0) holds out 250 validation and 250 test images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset, TensorDataset

from robustart.data.base import RobustartDataModule, Split, TransformedDataset
from robustart.errors import ConfigError

#: Images per held-out split.
VAL_SIZE = 250
TEST_SIZE = 250
SPLIT_SEED = 0


def load_digits_tensors(image_size: int = 32) -> tuple[Tensor, Tensor]:
    """All 1,797 digits as images (N, 3, S, S) in [0, 1] and labels (N,) int64."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    images = F.interpolate(
        images, size=(image_size, image_size), mode="bilinear", align_corners=False
    ).clamp_(0, 1)
    labels = torch.as_tensor(digits.target, dtype=torch.int64)
    return images.expand(-1, 3, -1, -1).contiguous(), labels


class RandomShift:
    """Random translation by up to ``pad`` pixels with zero fill (a random crop of the padded
    image). Digits are not mirror-symmetric, so there is no flip."""

    def __init__(self, pad: int) -> None:
        self.pad = pad

    def __call__(self, image: Tensor) -> Tensor:
        if self.pad == 0:
            return image
        h, w = image.shape[-2:]
        padded = F.pad(image, (self.pad,) * 4)
        top, left = torch.randint(0, 2 * self.pad + 1, (2,)).tolist()
        return padded[..., top : top + h, left : left + w]


class DigitsDataModule(RobustartDataModule):
    """scikit-learn's digits as 32×32 RGB: 1,297 train / 250 val / 250 test images.

    Args:
        augment: Random shifts of up to ``shift`` pixels for training.
        shift: Maximum shift in pixels, at most 15 (half the image, minus one).
        **kwargs: ``batch_size``, ``eval_batch_size``, ``num_workers``, ``pin_memory``,
            ``augment_policy``, ``stylized_root``, ``persistent_workers`` (see
            :class:`RobustartDataModule`).
    """

    num_classes = 10
    in_channels = 3
    image_size = 32

    def __init__(
        self, augment: bool = True, shift: int = 2, batch_size: int = 64, **kwargs
    ) -> None:
        super().__init__(batch_size=batch_size, **kwargs)
        largest = self.image_size // 2 - 1
        if isinstance(shift, bool) or not isinstance(shift, int) or not 0 <= shift <= largest:
            raise ConfigError(
                f"shift must be a whole number of pixels in [0, {largest}], got {shift!r}: a "
                f"shift of half the {self.image_size}-px image or more moves many digits out "
                "of the frame, and training would see blank images (2 by default; 4 is "
                "CIFAR's standard)"
            )
        if not augment and shift != 2:
            raise ConfigError(
                f"shift {shift} is read only with augment true (the random shifts), but "
                "augment is false: drop shift, or set augment true"
            )
        self.augment = augment
        self.shift = shift
        images, labels = load_digits_tensors(self.image_size)
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(SPLIT_SEED))
        test, val = order[:TEST_SIZE], order[TEST_SIZE : TEST_SIZE + VAL_SIZE]
        train = order[TEST_SIZE + VAL_SIZE :]
        self._splits = {
            split: (images[idx], labels[idx])
            for split, idx in (("train", train), ("val", val), ("test", test))
        }
        train_images = self._splits["train"][0]
        self.mean = tuple(train_images.mean(dim=(0, 2, 3)).tolist())
        self.std = tuple(train_images.std(dim=(0, 2, 3)).tolist())

    def train_augmentation(self) -> RandomShift | None:
        return RandomShift(self.shift) if self.augment else None

    def build_dataset(self, split: Split, train_transform: bool) -> Dataset:
        images, labels = self._splits[split]
        dataset = TensorDataset(images, labels)
        if train_transform and self.augment:
            return TransformedDataset(dataset, self.train_augmentation())
        return dataset
