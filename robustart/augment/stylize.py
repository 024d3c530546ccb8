"""Stylization on the device (Geirhos et al., 2019): AdaIN style transfer of training images.

Geirhos et al. trained on Stylized-ImageNet, ImageNet re-rendered in the styles of paintings
with AdaIN, to shift networks from texture to shape. :class:`Stylize` does this on the fly:
each training image is, with probability ``prob``, re-rendered in the style of a randomly drawn
image of a local styles folder. The style images' relu4_1 channel statistics are computed once,
on the device, at the first batch; after that a batch costs one encoder and one decoder pass
over its stylized images. The encoder, decoder and statistics are not saved in checkpoints.

For a fixed pre-generated stylized copy instead, see
:func:`robustart.augment.stylized_dataset.write_stylized_dataset` and the datamodules'
``stylized_root`` option.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor, nn
from torchvision.transforms import v2

from robustart.augment.adain import (
    adain,
    adain_decoder,
    channel_stats,
    load_weights,
    require_file,
    vgg_encoder,
)
from robustart.augment.base import BATCH_AUGMENTATIONS, BatchAugmentation
from robustart.augment.checks import check_int_range, check_probability
from robustart.errors import ConfigError

#: File suffixes read from the styles folder.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
#: Style images encoded per forward pass while computing their statistics.
STYLE_CHUNK = 16


def style_files(folder: str | Path | None) -> list[Path]:
    """The image files under ``folder`` (recursively, sorted).

    Raises:
        ConfigError: the folder is not set, missing, or holds no images.
    """
    if not folder:
        raise ConfigError(
            "stylize needs `styles`: a local folder of style images (e.g. paintings from "
            "Kaggle's Painter by Numbers, as used for Stylized-ImageNet)."
        )
    path = Path(folder)
    if not path.is_dir():
        raise ConfigError(f"stylize: styles folder not found: {folder}")
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ConfigError(
            f"stylize: the styles folder {folder} holds no images "
            f"({', '.join(IMAGE_SUFFIXES)}); put style images (e.g. paintings) there."
        )
    return files


def load_style_images(files: list[Path], size: int) -> Tensor:
    """Style images resized (shorter side) and centre-cropped to ``size``: (S, 3, size, size)
    uint8."""
    transform = v2.Compose([v2.PILToTensor(), v2.Resize(size, antialias=True), v2.CenterCrop(size)])
    images = []
    for file in files:
        try:
            with Image.open(file) as image:
                images.append(transform(image.convert("RGB")))
        except (UnidentifiedImageError, OSError) as err:
            raise ConfigError(f"stylize: cannot read style image {file}: {err}") from None
    return torch.stack(images)


@BATCH_AUGMENTATIONS.register("stylize")
class Stylize(BatchAugmentation):
    """Re-render images in the style of random style images with AdaIN, on the device.

    YAML::

        batch_augment:
          - name: stylize
            encoder: weights/adain/vgg_normalised.pth
            decoder: weights/adain/decoder.pth
            styles: data/styles
            prob: 0.5
            alpha: 1.0

    Args:
        encoder: Local file of the AdaIN VGG-19 encoder (``vgg_normalised.pth``).
        decoder: Local file of the AdaIN decoder (``decoder.pth``).
        styles: Local folder of style images (searched recursively).
        prob: Probability of stylizing each image.
        alpha: Stylization strength in [0, 1]: 1 transfers the style fully (Geirhos et al.),
            0 reconstructs the content through the decoder.
        style_size: Side the style images are resized and centre-cropped to.
        max_styles: Use at most this many style images (the first in sorted order).
        arch: ``vgg19`` (the released weights) or ``tiny`` (widths / 16, for tests).
    """

    name = "stylize"

    def __init__(
        self,
        encoder: str | None = None,
        decoder: str | None = None,
        styles: str | None = None,
        prob: float = 0.5,
        alpha: float = 1.0,
        style_size: int = 256,
        max_styles: int | None = None,
        arch: str = "vgg19",
    ) -> None:
        super().__init__()
        self.prob = check_probability(self.name, "prob", prob)
        self.alpha = check_probability(self.name, "alpha", alpha)
        check_int_range(self.name, "style_size", style_size, 8)
        what = "the AdaIN VGG-19 encoder weights (vgg_normalised.pth from pytorch-AdaIN)"
        encoder_path = require_file(self.name, "encoder", encoder, what)
        decoder_path = require_file(
            self.name, "decoder", decoder, "the AdaIN decoder weights (decoder.pth)"
        )
        files = style_files(styles)
        if max_styles is not None:
            files = files[: check_int_range(self.name, "max_styles", max_styles, 1)]
        # Plain attributes, not submodules: kept out of checkpoints and of the optimiser.
        self._networks = [
            load_weights(vgg_encoder(arch), encoder_path, "the AdaIN encoder"),
            load_weights(adain_decoder(arch), decoder_path, "the AdaIN decoder"),
        ]
        self._style_images: Tensor | None = load_style_images(files, style_size)
        self.register_buffer("style_mean", None, persistent=False)
        self.register_buffer("style_std", None, persistent=False)

    @property
    def num_styles(self) -> int:
        """Number of style images."""
        return len(self.style_mean if self._style_images is None else self._style_images)

    def networks(self, device: torch.device) -> tuple[nn.Module, nn.Module]:
        """The encoder and decoder, moved to ``device``."""
        self._networks = [net.to(device) for net in self._networks]
        return self._networks[0], self._networks[1]

    def _chunks(self, device: torch.device) -> Iterator[Tensor]:
        assert self._style_images is not None
        for chunk in self._style_images.split(STYLE_CHUNK):
            yield chunk.to(device).float().div_(255)

    def style_statistics(self, device: torch.device) -> tuple[Tensor, Tensor]:
        """relu4_1 channel means and stds of every style image, (S, C, 1, 1) each (computed on
        the first call, then cached)."""
        if self.style_mean is None:
            encoder, _ = self.networks(device)
            stats = [channel_stats(encoder(chunk)) for chunk in self._chunks(device)]
            self.style_mean = torch.cat([mean for mean, _ in stats])
            self.style_std = torch.cat([std for _, std in stats])
            self._style_images = None
        return self.style_mean.to(device), self.style_std.to(device)

    @torch.no_grad()
    def stylize(self, images: Tensor, style_index: Tensor | None = None) -> Tensor:
        """Stylize every image of (N, C, H, W) in [0, 1] (random styles unless given).

        Runs in float32 (autocast off). Returns (N, C, H, W) in [0, 1].
        """
        device = images.device
        with torch.autocast(device.type, enabled=False):
            style_mean, style_std = self.style_statistics(device)
            if style_index is None:
                style_index = torch.randint(len(style_mean), (images.shape[0],), device=device)
            encoder, decoder = self.networks(device)
            content = encoder(images.float())
            target = adain(content, style_mean[style_index], style_std[style_index])
            if self.alpha < 1:
                target = self.alpha * target + (1 - self.alpha) * content
            out = decoder(target)
            if out.shape[-2:] != images.shape[-2:]:
                out = F.interpolate(out, size=images.shape[-2:], mode="bilinear", antialias=True)
        return out.clamp_(0, 1).to(images.dtype)

    @torch.no_grad()
    def forward(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Stylize each image of (N, C, H, W) in [0, 1] with probability ``prob``."""
        chosen = (torch.rand(images.shape[0], device=images.device) < self.prob).nonzero()
        if chosen.numel() == 0:
            return images, targets
        chosen = chosen.squeeze(1)
        images = images.clone()
        images[chosen] = self.stylize(images[chosen])
        return images, targets
