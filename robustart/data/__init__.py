"""LightningDataModules yielding float images in [0, 1], NCHW, un-normalised, and the
distribution-shift datasets kept on disk (registered in :data:`SHIFT_DATASETS`)."""

from robustart.data.base import RobustartDataModule, TransformedDataset
from robustart.data.cifar import CIFAR10DataModule, CIFAR100DataModule
from robustart.data.cifar101 import CIFAR101
from robustart.data.cifar_c import CIFAR10C, CIFAR100C
from robustart.data.cifar_p import CIFAR10P
from robustart.data.digits import DigitsDataModule
from robustart.data.folders import (
    ImageFileDataset,
    WnidFolderDataset,
    evaluation_transform,
    to_float_transform,
)
from robustart.data.imagefolder import ImageFolderDataModule
from robustart.data.imagenet_c import ImageNetC
from robustart.data.imagenet_classes import (
    CLASS_SUBSETS,
    IMAGENET_A_WNIDS,
    IMAGENET_O_WNIDS,
    IMAGENET_R_WNIDS,
    ClassSubset,
    SubsetLogits,
    imagenet_subset,
    imagenet_wnids,
)
from robustart.data.imagenet_p import ImageNetP
from robustart.data.imagenet_sketch import ImageNetSketch
from robustart.data.imagenet_subsets import ImageNetA, ImageNetO, ImageNetOInDistribution, ImageNetR
from robustart.data.imagenet_v2 import ImageNetV2
from robustart.data.shift import SHIFT_DATASETS, create_shift_dataset

__all__ = [
    "CIFAR10C",
    "CIFAR10P",
    "CIFAR100C",
    "CIFAR101",
    "CLASS_SUBSETS",
    "IMAGENET_A_WNIDS",
    "IMAGENET_O_WNIDS",
    "IMAGENET_R_WNIDS",
    "SHIFT_DATASETS",
    "CIFAR10DataModule",
    "CIFAR100DataModule",
    "ClassSubset",
    "DigitsDataModule",
    "ImageFileDataset",
    "ImageFolderDataModule",
    "ImageNetA",
    "ImageNetC",
    "ImageNetO",
    "ImageNetOInDistribution",
    "ImageNetP",
    "ImageNetR",
    "ImageNetSketch",
    "ImageNetV2",
    "RobustartDataModule",
    "SubsetLogits",
    "TransformedDataset",
    "WnidFolderDataset",
    "create_shift_dataset",
    "evaluation_transform",
    "imagenet_subset",
    "imagenet_wnids",
    "to_float_transform",
]
