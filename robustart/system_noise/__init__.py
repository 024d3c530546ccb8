"""System noise (RobustART's ImageNet-S): the same images through different decoders, resize
interpolations and JPEG qualities, and the CIFAR resize variant.

This package builds the variants and serves the images; the evaluation (accuracy per variant,
mean, std) is :mod:`robustart.evaluation.benchmarks.system_noise`.

Example:
    >>> from robustart.system_noise import imagenet_s_variants
    >>> len(imagenet_s_variants())
    33
"""

from robustart.system_noise.cifar import (
    CIFAR_INTERPOLATIONS,
    CIFAR_SIZES,
    CifarResizeVariant,
    cifar_variants,
)
from robustart.system_noise.dataset import ImageSample, SystemNoiseDataset, folder_samples
from robustart.system_noise.decoders import DECODERS, encode_jpeg
from robustart.system_noise.pipeline import (
    JPEG_QUALITIES,
    REFERENCE_VARIANT,
    SystemNoiseVariant,
    imagenet_s_variants,
    jpeg_quality_variants,
    resize_size_for,
    shorter_side_size,
    validation_transform,
)
from robustart.system_noise.resizers import RESIZERS

__all__ = [
    "CIFAR_INTERPOLATIONS",
    "CIFAR_SIZES",
    "DECODERS",
    "JPEG_QUALITIES",
    "REFERENCE_VARIANT",
    "RESIZERS",
    "CifarResizeVariant",
    "ImageSample",
    "SystemNoiseDataset",
    "SystemNoiseVariant",
    "cifar_variants",
    "encode_jpeg",
    "folder_samples",
    "imagenet_s_variants",
    "jpeg_quality_variants",
    "resize_size_for",
    "shorter_side_size",
    "validation_transform",
]
