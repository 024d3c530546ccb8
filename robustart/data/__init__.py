"""LightningDataModules yielding float images in [0, 1], NCHW, un-normalised."""

from robustart.data.base import RobustartDataModule, TransformedDataset
from robustart.data.cifar import CIFAR10DataModule, CIFAR100DataModule
from robustart.data.digits import DigitsDataModule
from robustart.data.imagefolder import ImageFolderDataModule

__all__ = [
    "CIFAR10DataModule",
    "CIFAR100DataModule",
    "DigitsDataModule",
    "ImageFolderDataModule",
    "RobustartDataModule",
    "TransformedDataset",
]
