"""AdaIN style transfer (Huang & Belongie, 2017): a VGG-19 encoder up to relu4_1, adaptive
instance normalisation, and a mirrored decoder.

The layer layouts match the released PyTorch AdaIN weights (``vgg_normalised.pth`` and
``decoder.pth`` of naoto0804/pytorch-AdaIN, converted from the authors' Torch release), so
those files load directly; their first 1×1 convolution takes RGB images in [0, 1]. Weights are
never downloaded: pass local files. ``arch: tiny`` divides every width by 16 (for tests).
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from robustart.errors import CheckpointError, ConfigError
from robustart.models.weights import load_checkpoint_file
from robustart.registry import Registry

#: Width divisor per architecture name.
ADAIN_ARCHS: Registry[int] = Registry("AdaIN architecture")
ADAIN_ARCHS.register("vgg19")(1)
ADAIN_ARCHS.register("tiny")(16)

#: VGG-19 up to relu4_1: output channels of each 3×3 convolution, "M" for 2×2 max-pooling.
ENCODER_LAYERS: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512)
#: The decoder from relu4_1 features back to RGB: convolution widths, "U" for 2× upsampling.
DECODER_LAYERS: tuple[int | str, ...] = (256, "U", 256, 256, 256, 128, "U", 128, 64, "U", 64, 3)


def _conv(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.ReflectionPad2d(1), nn.Conv2d(in_channels, out_channels, 3)]


def vgg_encoder(arch: str = "vgg19") -> nn.Sequential:
    """The normalised VGG-19 encoder: (N, 3, H, W) in [0, 1] → relu4_1 (N, 512/d, H/8, W/8)."""
    divisor = ADAIN_ARCHS.get(arch)
    layers: list[nn.Module] = [nn.Conv2d(3, 3, 1)]
    channels = 3
    for spec in ENCODER_LAYERS:
        if spec == "M":
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
        else:
            layers += [*_conv(channels, spec // divisor), nn.ReLU()]
            channels = spec // divisor
    return nn.Sequential(*layers)


def adain_decoder(arch: str = "vgg19") -> nn.Sequential:
    """The decoder: relu4_1 features (N, 512/d, h, w) → images (N, 3, 8h, 8w), about [0, 1]."""
    divisor = ADAIN_ARCHS.get(arch)
    layers: list[nn.Module] = []
    channels = ENCODER_LAYERS[-1] // divisor
    for i, spec in enumerate(DECODER_LAYERS):
        if spec == "U":
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            continue
        last = i == len(DECODER_LAYERS) - 1
        out = spec if last else spec // divisor
        layers += _conv(channels, out) if last else [*_conv(channels, out), nn.ReLU()]
        channels = out
    return nn.Sequential(*layers)


def channel_stats(features: Tensor, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    """Per-image, per-channel mean and standard deviation of (N, C, H, W): two (N, C, 1, 1)."""
    mean = features.mean(dim=(2, 3), keepdim=True)
    std = (features.var(dim=(2, 3), keepdim=True, correction=0) + eps).sqrt()
    return mean, std


def adain(content: Tensor, style_mean: Tensor, style_std: Tensor, eps: float = 1e-5) -> Tensor:
    """Adaptive instance normalisation: give each content channel the style's mean and std.

    Args:
        content: Content features (N, C, H, W).
        style_mean: Style channel means (N, C, 1, 1).
        style_std: Style channel standard deviations (N, C, 1, 1).

    Returns:
        (N, C, H, W) features whose channel means and stds equal the style's.
    """
    mean, std = channel_stats(content, eps)
    return (content - mean) / std * style_std + style_mean


def require_file(owner: str, key: str, path: str | None, what: str) -> Path:
    """``path`` as a :class:`Path`, or a :class:`ConfigError` saying which file to provide."""
    if not path:
        raise ConfigError(f"{owner} needs `{key}`: {what}. Set it to a local file.")
    if not Path(path).is_file():
        raise ConfigError(f"{owner}: `{key}` file not found: {path}. Provide {what} there.")
    return Path(path)


def load_weights(module: nn.Module, path: Path, what: str) -> nn.Module:
    """Load a state dict (``torch.load(weights_only=True)`` or safetensors) into ``module``.

    Keys beyond the module's layers are ignored (``vgg_normalised.pth`` holds all of VGG-19;
    the encoder keeps the layers up to relu4_1).

    Raises:
        CheckpointError: unreadable file or weights of another architecture.
    """
    state = load_checkpoint_file(path)
    wanted = module.state_dict().keys()
    try:
        module.load_state_dict({k: v for k, v in state.items() if k in wanted})
    except RuntimeError as err:
        raise CheckpointError(
            f"{path} does not hold {what} for this architecture ({str(err).splitlines()[0]} "
            f"...). Use the matching file, or set `arch` to the architecture it was saved for."
        ) from None
    return module.eval().requires_grad_(False)
