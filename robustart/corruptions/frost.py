"""Frost: a random crop of a frost photograph blended over the image.

The reference blends real photographs of frost. robustart ships none; it reads them at run
time, in this order:

1. the ``frost_dir`` argument of :class:`Frost`;
2. the folder named by the environment variable ``ROBUSTART_FROST_DIR``;
3. the six photographs the PyPI package ``imagecorruptions`` installs as package data (found
   with ``importlib`` without importing the package, which fails on recent setuptools).

Without any of them, applying frost raises :class:`~robustart.errors.DatasetNotFoundError`
saying what to provide.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from robustart.corruptions.base import CORRUPTIONS, Corruption, table_for_size
from robustart.corruptions.color import match_channels
from robustart.errors import DatasetNotFoundError

#: Environment variable naming a folder of frost images.
FROST_ENV = "ROBUSTART_FROST_DIR"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
#: The reference draws ``randint(5)`` from its six frost files, so the sixth is never used.
REFERENCE_TEXTURES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")
#: Texture enlargement per table: the CIFAR reference shrinks the photographs to 20 %.
TEXTURE_ZOOM = {"imagenet": 1.0, "cifar": 0.2}


def imagecorruptions_frost_dir() -> Path | None:
    """The ``frost`` folder of an installed ``imagecorruptions`` package, or ``None``."""
    try:
        spec = importlib.util.find_spec("imagecorruptions")
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        folder = Path(location) / "frost"
        if folder.is_dir():
            return folder
    return None


def frost_texture_files(frost_dir: str | os.PathLike | None = None) -> list[Path]:
    """The frost photographs to use (see the module docstring for the search order).

    Raises:
        DatasetNotFoundError: if no source is configured or the folder holds no images.
    """
    if frost_dir is None and os.environ.get(FROST_ENV):
        frost_dir = os.environ[FROST_ENV]
    reference = frost_dir is None
    folder = Path(frost_dir).expanduser() if frost_dir is not None else None
    folder = folder or imagecorruptions_frost_dir()
    if folder is None:
        raise DatasetNotFoundError(
            "frost needs photographs of frost, which robustart does not ship. Either "
            "`pip install imagecorruptions` (its frost images are read from the installed "
            f"package), set {FROST_ENV}=/path/to/folder of frost images, or pass "
            "Frost(frost_dir=...)."
        )
    if not folder.is_dir():
        raise DatasetNotFoundError(f"frost image folder {str(folder)!r} does not exist")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if reference and all((folder / name).is_file() for name in REFERENCE_TEXTURES):
        files = [folder / name for name in REFERENCE_TEXTURES]
    if not files:
        raise DatasetNotFoundError(
            f"no frost images ({', '.join(IMAGE_SUFFIXES)}) in {str(folder)!r}; "
            f"point {FROST_ENV} or frost_dir at a folder of frost photographs"
        )
    return files


@functools.lru_cache(maxsize=4)
def load_textures(files: tuple[Path, ...]) -> tuple[Tensor, ...]:
    """Decode frost images as float RGB tensors (3, h, w) in [0, 1] (alpha dropped)."""
    from PIL import Image

    textures = []
    for path in files:
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        textures.append(torch.from_numpy(array.copy()).permute(2, 0, 1))
    return tuple(textures)


def fit_texture(texture: Tensor, zoom: float, height: int, width: int) -> Tensor:
    """Resize a texture (3, h, w) by ``zoom`` (bilinear, no antialiasing, as ``cv2.resize``),
    then, if it is smaller than ``height × width``, enlarge it just enough to cover that (as
    ``imagecorruptions`` does for small frost images; the reference never needs to)."""

    def resize(image: Tensor, size: tuple[int, int]) -> Tensor:
        if size == tuple(image.shape[-2:]):
            return image
        return F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]

    h, w = texture.shape[-2:]
    texture = resize(texture, (max(round(h * zoom), 1), max(round(w * zoom), 1)))
    h, w = texture.shape[-2:]
    if h < height or w < width:
        grow = max(height / h, width / w)
        texture = resize(texture, (max(round(h * grow), height), max(round(w * grow), width)))
    return texture


@CORRUPTIONS.register("frost")
class Frost(Corruption):
    """``a · x + b · frost`` (image weight a, frost weight b) with a frost crop per image.

    Each image gets one of the frost photographs at random and a random crop of it of the
    image's size. At 224 px the photographs are used at their own resolution; the CIFAR
    reference shrinks them to 20 % first. The texture scale is spatial (multiplied by
    ``scale``); textures smaller than the image are enlarged to fit.

    Args:
        frost_dir: Folder of frost images; default: ``ROBUSTART_FROST_DIR``, then the
            ``imagecorruptions`` package data.
    """

    name = "frost"
    category = "weather"
    imagenet = ((1.0, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75))
    cifar = ((1.0, 0.2), (1.0, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45))

    def __init__(self, frost_dir: str | os.PathLike | None = None) -> None:
        self.frost_dir = frost_dir
        self._stacks: dict[tuple, tuple[Tensor, Tensor]] = {}

    def textures(self, zoom: float, height: int, width: int, device: torch.device) -> tuple:
        """The fitted textures stacked (K, 3, H_max, W_max) on ``device``; their sizes (K, 2)."""
        files = tuple(frost_texture_files(self.frost_dir))
        key = (files, round(zoom, 6), height, width, str(device))
        if key not in self._stacks:
            fitted = [fit_texture(t, zoom, height, width) for t in load_textures(files)]
            sizes = torch.tensor([t.shape[-2:] for t in fitted])
            stack = torch.zeros(len(fitted), 3, int(sizes[:, 0].max()), int(sizes[:, 1].max()))
            for i, t in enumerate(fitted):
                stack[i, :, : t.shape[1], : t.shape[2]] = t
            self._stacks = {key: (stack.to(device), sizes.to(device))}  # keep one size
        return self._stacks[key]

    def apply(
        self,
        images: Tensor,
        param: tuple[float, float],
        scale: float,
        generator: torch.Generator | None,
    ) -> Tensor:
        image_weight, frost_weight = param
        n, c, h, w = images.shape
        table, _ = table_for_size(h, w)
        stack, sizes = self.textures(TEXTURE_ZOOM[table] * scale, h, w, images.device)
        draws = torch.rand((3, n), generator=generator, device=images.device)
        pick = (draws[0] * len(sizes)).long().clamp_max(len(sizes) - 1)
        # randint(0, size − crop): the reference's exclusive upper bound, at least one choice
        room = (sizes[pick] - torch.tensor([h, w], device=images.device)).clamp_min(1)
        top = (draws[1] * room[:, 0]).long()
        left = (draws[2] * room[:, 1]).long()
        rows = top[:, None, None] + torch.arange(h, device=images.device)[None, :, None]
        cols = left[:, None, None] + torch.arange(w, device=images.device)[None, None, :]
        crops = stack[pick[:, None, None], :, rows, cols].permute(0, 3, 1, 2)
        return image_weight * images + frost_weight * match_channels(crops.to(images), c)
