"""System noise (RobustART's ImageNet-S): the same images through different decoders, resize
interpolations and JPEG qualities, and the CIFAR resize variant.

Example:
    >>> from robustart.system_noise import evaluate_system_noise
    >>> result = evaluate_system_noise(model, "imagenet/val_subset")  # doctest: +SKIP
    >>> result.mean, result.std, result.accuracy["opencv-cv2_area"]  # doctest: +SKIP
"""

from robustart.system_noise.cifar import (
    CIFAR_INTERPOLATIONS,
    CIFAR_SIZES,
    CifarResizeVariant,
    cifar_variants,
)
from robustart.system_noise.decoders import DECODERS, encode_jpeg
from robustart.system_noise.evaluate import (
    SystemNoiseDataset,
    SystemNoiseResult,
    aggregate_accuracies,
    evaluate_cifar_system_noise,
    evaluate_system_noise,
    folder_samples,
)
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
    "SystemNoiseDataset",
    "SystemNoiseResult",
    "SystemNoiseVariant",
    "aggregate_accuracies",
    "cifar_variants",
    "encode_jpeg",
    "evaluate_cifar_system_noise",
    "evaluate_system_noise",
    "folder_samples",
    "imagenet_s_variants",
    "jpeg_quality_variants",
    "resize_size_for",
    "shorter_side_size",
    "validation_transform",
]
