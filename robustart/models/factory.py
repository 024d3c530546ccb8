"""One factory for every classifier: robustart's small-image models and any timm model.

Every model returned is a :class:`NormalizedClassifier`: it takes un-normalised images in
[0, 1] and normalises them itself, so attacks and corruptions always work in pixel space.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from robustart.errors import CheckpointError, ConfigError, InputRangeError, UnknownNameError
from robustart.models import zoo
from robustart.models.registry import MODELS
from robustart.models.weights import extract_state_dict, load_checkpoint_file, load_into


class NormalizedClassifier(nn.Module):
    """Wraps a classifier so that it accepts images in [0, 1].

    Args:
        backbone: Maps normalised images (N, C, H, W) to logits (N, K).
        mean: Per-channel mean subtracted from the input (C values).
        std: Per-channel standard deviation the input is divided by (C values).

    Shapes:
        input (N, C, H, W) in [0, 1] → logits (N, K).
    """

    def __init__(self, backbone: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ConfigError(f"mean and std must have the same length, got {mean} and {std}")
        if any(s <= 0 for s in std):
            raise ConfigError(f"std values must be > 0, got {std}")
        self.backbone = backbone
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, images: Tensor) -> Tensor:
        channels = self.mean.shape[1]
        if channels > 1 and (images.ndim != 4 or images.shape[1] != channels):
            # (N, 1, H, W) would broadcast against the (1, C, 1, 1) constants and be
            # classified as if it were a C-channel image: refuse instead.
            raise InputRangeError(
                f"the model takes (N, {channels}, H, W) images, got shape "
                f"{tuple(images.shape)}. Convert the images to {channels} channels (e.g. "
                f"`images.expand(-1, {channels}, -1, -1)` for grey images) or create the model "
                "for their channel count (in_chans, mean, std)."
            )
        return self.backbone((images - self.mean) / self.std)


def available_models() -> list[str]:
    """robustart's own architectures followed by every timm architecture."""
    import timm

    return [*MODELS.names(), *timm.list_models()]


def check_model_name(name: str) -> str:
    """Return ``name`` if robustart or timm has an architecture of that name.

    Raises:
        UnknownNameError: the name is in neither registry; close matches are suggested.
    """
    if name in MODELS:
        return name
    import timm

    if not timm.is_model(name):
        raise UnknownNameError(
            MODELS.unknown_message(name, extra=timm.list_models())
            + ", or any timm model (list them with `timm.list_models()`)"
        )
    return name


def create_backbone(
    name: str, num_classes: int, in_chans: int = 3, pretrained: bool = False, **kwargs: Any
) -> nn.Module:
    """Build the bare classifier ``name`` (no normalisation).

    robustart's registry is searched first, then timm. ``pretrained=True`` lets timm download
    weights (only on a machine with internet access; off by default).

    Raises:
        UnknownNameError: the name is in neither registry; close matches are suggested.
    """
    if name in MODELS:
        if pretrained:
            raise ConfigError(
                f"robustart's {name!r} has no downloadable weights: pass a local file "
                "with `weights` instead of `pretrained: true`"
            )
        factory = MODELS.get(name)
        parameters = inspect.signature(factory).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        unknown = [k for k in kwargs if k not in parameters and not takes_any]
        if unknown:
            settings = [k for k in parameters if k not in ("num_classes", "in_chans")]
            raise ConfigError(
                f"model_kwargs: robustart's {name!r} takes no setting {', '.join(unknown)} (its "
                f"settings: {', '.join(settings) or 'none'}); drop_rate and drop_path_rate "
                "apply to timm models"
            )
        return factory(num_classes=num_classes, in_chans=in_chans, **kwargs)
    import timm

    check_model_name(name)
    try:
        return timm.create_model(
            name, pretrained=pretrained, num_classes=num_classes, in_chans=in_chans, **kwargs
        )
    except TypeError as error:
        if "unexpected keyword argument" not in str(error):
            raise
        raise ConfigError(
            f"model_kwargs: timm's {name!r} does not take one of {', '.join(kwargs)} ({error})"
        ) from None


def create_model(
    name: str,
    num_classes: int,
    in_chans: int = 3,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    pretrained: bool = False,
    weights: str | None = None,
    weights_sha256: str | None = None,
    **kwargs: Any,
) -> NormalizedClassifier:
    """Create a classifier that takes images in [0, 1].

    Args:
        name: A robustart model (``resnet20``, ``preact_resnet18``, ``wrn34_10``, ...) or any
            timm model name (``resnet50``, ``vit_small_patch16_224``, ...).
        num_classes: Number of output logits.
        in_chans: Input channels.
        mean: Per-channel normalisation mean (default: 0, i.e. none).
        std: Per-channel normalisation std (default: 1).
        pretrained: Let timm download its pretrained weights (needs internet).
        weights: Local checkpoint to initialise from: ``.safetensors``, a state dict or a
            Lightning ``.ckpt`` (loaded with ``weights_only=True``), or ``zoo:<name>`` for a
            model-zoo entry (checksum always verified).
        weights_sha256: Expected SHA-256 of ``weights``, verified before loading.
        **kwargs: Passed to the architecture (e.g. ``drop_rate``, ``drop_path_rate``).

    Returns:
        A :class:`NormalizedClassifier` mapping (N, C, H, W) in [0, 1] to logits (N, K).

    Example:
        >>> model = create_model("resnet20", num_classes=10)
        >>> model(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """
    if num_classes < 1:
        raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
    mean = tuple(mean) if mean is not None else (0.0,) * in_chans
    std = tuple(std) if std is not None else (1.0,) * in_chans
    if len(mean) != in_chans:
        raise ConfigError(f"mean has {len(mean)} values but the model has {in_chans} channels")
    backbone = create_backbone(name, num_classes, in_chans, pretrained, **kwargs)
    model = NormalizedClassifier(backbone, mean, std)
    if weights:
        if weights.startswith(zoo.ZOO_PREFIX):
            weights, weights_sha256 = zoo.resolve(weights, name, num_classes)
        load_weights(model, weights, weights_sha256, arch=name)
    return model


def load_weights(
    model: NormalizedClassifier, path: str, sha256: str | None = None, arch: str = "model"
) -> NormalizedClassifier:
    """Load weights from ``path`` into ``model`` (whole wrapper or bare backbone weights).

    Raises:
        CheckpointError: unreadable, tampered or mismatched weights.
    """
    checkpoint = load_checkpoint_file(path, sha256)
    state = extract_state_dict(checkpoint)
    if not state:
        raise CheckpointError(f"{path} contains no tensors")
    if any(k.startswith("backbone.") for k in state):
        # Normalisation constants come from the current config, not from the file.
        state = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    load_into(model.backbone, state, str(path), arch)
    return model
