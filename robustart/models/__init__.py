"""Models: one factory (:func:`create_model`) for robustart's architectures and timm's."""

from robustart.models import (  # noqa: F401  (registers the architectures)
    cifar_resnet,
    mobile_models,
    patch_models,
    preact_resnet,
    wide_resnet,
)
from robustart.models.factory import (
    NormalizedClassifier,
    available_models,
    create_backbone,
    create_model,
    load_weights,
)
from robustart.models.registry import MODELS
from robustart.models.weights import load_checkpoint_file, sha256_of, verify_sha256

__all__ = [
    "MODELS",
    "NormalizedClassifier",
    "available_models",
    "create_backbone",
    "create_model",
    "load_checkpoint_file",
    "load_weights",
    "sha256_of",
    "verify_sha256",
]
