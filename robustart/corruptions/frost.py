"""Frost: a random crop of a frost photograph blended over the image.

The reference blends real photographs of frost. robustart ships the five the reference uses
(``robustart/corruptions/frost_textures/``, from Hendrycks & Dietterich's ImageNet-C code via
``imagecorruptions`` 1.1.2, Apache License 2.0; its ``README.md`` gives their provenance and
checksums). The photographs come from the first of:

1. the ``frost_dir`` argument of :class:`Frost`;
2. the folder named by the environment variable ``ROBUSTART_FROST_DIR`` (if set and not empty);
3. the shipped photographs.

From a folder that holds the reference's file names (``frost1.png`` ... ``frost5.jpg``, with or
without its unused ``frost6.jpg``) exactly those five are used, in that order, so a copy of the
reference's folder gives the reference's draws; from any other folder every image, sorted by
name. A folder that does not exist, holds no images or holds an image that cannot be decoded
raises :class:`~robustart.errors.DatasetNotFoundError` saying what to do;
:meth:`Frost.check_available` raises it up front.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from robustart.corruptions.base import (
    CORRUPTIONS,
    MAX_LEVEL,
    TABLE_SIZES,
    Bound,
    Corruption,
    Generators,
    random_uniform,
    table_for_size,
)
from robustart.corruptions.color import match_channels
from robustart.errors import ConfigError, DatasetNotFoundError

#: Environment variable naming a folder of frost images.
FROST_ENV = "ROBUSTART_FROST_DIR"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
#: The reference draws ``randint(5)`` from its six frost files, so the sixth is never used.
REFERENCE_TEXTURES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")
#: Texture enlargement per table: the CIFAR reference shrinks the photographs to 20 %.
TEXTURE_ZOOM = {"imagenet": 1.0, "cifar": 0.2}
#: Largest texture zoom for explicit parameters, for images up to 224 px (proportionally more
#: for larger ones): the tables use at most 1 × side / 224, and a zoom of 50 asked for 16 GB.
MAX_TEXTURE_ZOOM = 2.0
#: The five reference photographs shipped with robustart (package data, see its README.md).
SHIPPED_FROST_DIR = Path(__file__).resolve().parent / "frost_textures"


def frost_texture_files(frost_dir: str | os.PathLike | None = None) -> list[Path]:
    """The frost photographs to use: from ``frost_dir``, else from ``$ROBUSTART_FROST_DIR``,
    else the ones shipped with robustart.

    Args:
        frost_dir: A folder of frost images, or ``None``.

    Returns:
        The reference's five files in the reference's order if the folder holds them, else
        every image of the folder sorted by name. The files are not decoded here.

    Raises:
        DatasetNotFoundError: if the folder does not exist, cannot be listed or holds no
            images; the message says what to do.
    """
    if frost_dir is not None:
        folder = Path(frost_dir).expanduser()
        where = f"frost_dir {str(folder)!r}"
        fix = (
            "pass a folder of frost photographs, or leave frost_dir unset to use the "
            "photographs shipped with robustart"
        )
    elif os.environ.get(FROST_ENV):
        folder = Path(os.environ[FROST_ENV]).expanduser()
        where = f"{FROST_ENV}={str(folder)!r}"
        fix = (
            f"point {FROST_ENV} at a folder of frost photographs, or unset it to use the "
            "photographs shipped with robustart"
        )
    else:
        folder = SHIPPED_FROST_DIR
        where = f"robustart's frost photograph folder {str(folder)!r}"
        fix = (
            "the installation is incomplete: reinstall robustart, or set "
            f"{FROST_ENV} to a folder of frost photographs"
        )
    if not folder.exists():
        raise DatasetNotFoundError(f"frost: {where} does not exist; {fix}")
    if not folder.is_dir():
        raise DatasetNotFoundError(f"frost: {where} is a file, not a folder; {fix}")
    if all((folder / name).is_file() for name in REFERENCE_TEXTURES):
        return [folder / name for name in REFERENCE_TEXTURES]
    try:
        files = sorted(
            p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
    except OSError as error:
        raise DatasetNotFoundError(
            f"frost: cannot list {where} ({error.strerror or error}); {fix}"
        ) from error
    if not files:
        raise DatasetNotFoundError(
            f"frost: no frost images ({', '.join(IMAGE_SUFFIXES)}) in {where}; {fix}"
        )
    return files


def read_texture(path: Path) -> Tensor:
    """Decode one frost image as a float RGB tensor (3, h, w) in [0, 1] (alpha dropped).

    Raises:
        DatasetNotFoundError: if the file cannot be read or decoded.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        if Path(path).parent == SHIPPED_FROST_DIR:
            fix = f"reinstall robustart, or set {FROST_ENV} to a folder of frost photographs"
        else:
            fix = "replace or remove the file, or use another folder of frost photographs"
        raise DatasetNotFoundError(
            f"frost: cannot decode the image {str(path)!r} ({reason}); {fix}"
        ) from error
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def textures_digest(files: tuple[Path, ...]) -> str:
    """SHA-256 over the names and contents of the frost photographs ``files``."""
    import hashlib

    digest = hashlib.sha256()
    for path in files:
        try:
            digest.update(f"\0{Path(path).name}\0".encode() + Path(path).read_bytes())
        except OSError as error:
            raise DatasetNotFoundError(
                f"frost: cannot read {str(path)!r} ({error.strerror or error})"
            ) from error
    return digest.hexdigest()


@functools.lru_cache(maxsize=4)
def load_textures(files: tuple[Path, ...]) -> tuple[Tensor, ...]:
    """Decode frost images as float RGB tensors (3, h, w) in [0, 1] (alpha dropped), cached.

    Raises:
        DatasetNotFoundError: if a file cannot be read or decoded.
    """
    return tuple(read_texture(path) for path in files)


def crop_textures(
    stack: Tensor,
    pick: Tensor,
    top: Tensor,
    left: Tensor,
    height: int,
    width: int,
    method: str = "auto",
) -> Tensor:
    """One crop per image from a stack of textures.

    Crop i is ``stack[pick[i], :, top[i]:top[i] + height, left[i]:left[i] + width]``. Two
    routes give the same values: ``"slices"`` copies the crops one by one (contiguous rows
    each; fastest on the CPU), ``"gather"`` gathers them in one call from a strided view that
    has a crop at every flat offset of the stack (one kernel on a GPU); ``"auto"`` takes the
    first on the CPU. Both are 3–10× faster on the CPU than indexing with per-pixel row and
    column tensors.

    Args:
        stack: Textures (T, C, Hs, Ws).
        pick: (N,) texture of each crop, in ``[0, T)``.
        top: (N,) first row, with ``top + height ≤ Hs`` for the picked texture's content.
        left: (N,) first column, with ``left + width ≤ Ws``.
        height: Crop height.
        width: Crop width.
        method: "auto", "slices" or "gather".

    Returns:
        Tensor (N, C, height, width), contiguous.

    Example:
        >>> stack = torch.arange(2 * 1 * 3 * 4.0).view(2, 1, 3, 4)
        >>> one = torch.tensor([1])
        >>> crop_textures(stack, one, one, torch.tensor([2]), 2, 2)[0, 0].tolist()
        [[18.0, 19.0], [22.0, 23.0]]
    """
    if method not in ("auto", "slices", "gather"):
        raise ValueError(f"method must be 'auto', 'slices' or 'gather', got {method!r}")
    if method == "slices" or (method == "auto" and stack.device.type == "cpu"):
        corners = zip(pick.tolist(), top.tolist(), left.tolist(), strict=True)
        crops = [stack[t, :, y : y + height, x : x + width] for t, y, x in corners]
        if crops:
            return torch.stack(crops)
    _, channels, rows, columns = stack.shape
    flat = stack.contiguous().view(-1)
    # every start offset whose crop (channels × height × width) stays inside the storage
    starts = flat.numel() - ((channels - 1) * rows * columns + (height - 1) * columns + width) + 1
    every_crop = flat.as_strided((starts, channels, height, width), (1, rows * columns, columns, 1))
    return every_crop.index_select(0, (pick * channels * rows + top) * columns + left)


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
    ``scale``); textures smaller than the image are enlarged to fit. :meth:`parameter` gives
    ``(a, b, texture zoom)`` for an image size, the zoom including that scale.

    Args:
        frost_dir: Folder of frost images; default: ``$ROBUSTART_FROST_DIR`` if set, else the
            photographs shipped with robustart.
    """

    name = "frost"
    category = "weather"
    parameter_bounds = (
        # blend weights: at most 1 in the tables; beyond 1000 they overflow float16 images
        Bound("image_weight", 0.0, MAX_LEVEL),
        Bound("frost_weight", 0.0, MAX_LEVEL),
        Bound("texture_zoom", 0.0, open_low=True),
    )
    imagenet = ((1.0, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75))
    cifar = ((1.0, 0.2), (1.0, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45))

    batched_generators = True

    def __init__(self, frost_dir: str | os.PathLike | None = None) -> None:
        self.frost_dir = frost_dir
        self._stacks: dict[tuple, tuple[Tensor, Tensor]] = {}

    def check_available(self) -> None:
        """Find and decode the frost photographs now (see :func:`frost_texture_files`).

        The decoded photographs stay cached for applying frost later.

        Raises:
            DatasetNotFoundError: if the folder is missing or empty or an image is unreadable.
        """
        load_textures(tuple(frost_texture_files(self.frost_dir)))

    def data_identity(self) -> dict[str, str]:
        """The SHA-256 of the frost photographs in use (their names and contents): results
        made with other photographs (another ``$ROBUSTART_FROST_DIR``) are not reused."""
        return {"frost_textures": textures_digest(tuple(frost_texture_files(self.frost_dir)))}

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

    def check_parameter(
        self, param: Any, size: tuple[int, int] | None = None, scale: float = 1.0
    ) -> None:
        """The bounds, and a texture zoom of at most :data:`MAX_TEXTURE_ZOOM` × max(1, longer
        image side / 224) (the photographs are resized by it and held in memory)."""
        super().check_parameter(param, size, scale)
        if size is None:
            return
        zoom = float(param[2]) * scale
        limit = MAX_TEXTURE_ZOOM * max(1.0, max(size) / TABLE_SIZES["imagenet"])
        if zoom > limit:
            raise ConfigError(
                f"corruption 'frost': texture_zoom must be at most {MAX_TEXTURE_ZOOM:g} x "
                f"max(1, longer image side / 224), i.e. <= {limit:g} for {size[0]}x{size[1]} "
                f"images, got {zoom:g}; the frost photographs are enlarged by it in memory"
            )

    def parameter(self, severity: int, height: int, width: int) -> tuple[tuple, float]:
        """``(image weight, frost weight, texture zoom)`` at this image size, and scale 1.

        The texture zoom is the table's (1 for ImageNet, 0.2 for CIFAR) times the size scale.
        """
        (image_weight, frost_weight), scale = super().parameter(severity, height, width)
        table, _ = table_for_size(height, width)
        return (image_weight, frost_weight, TEXTURE_ZOOM[table] * scale), 1.0

    def apply(
        self, images: Tensor, param: tuple[float, float, float], scale: float, generator: Generators
    ) -> Tensor:
        image_weight, frost_weight, zoom = param
        n, c, h, w = images.shape
        stack, sizes = self.textures(zoom * scale, h, w, images.device)
        draws = random_uniform((n, 3), 0.0, 1.0, generator, images.device).T
        pick = (draws[0] * len(sizes)).long().clamp_max(len(sizes) - 1)
        # randint(0, size − crop): the reference's exclusive upper bound, at least one choice
        room = (sizes[pick] - torch.tensor([h, w], device=images.device)).clamp_min(1)
        top = (draws[1] * room[:, 0]).long()
        left = (draws[2] * room[:, 1]).long()
        crops = match_channels(crop_textures(stack, pick, top, left, h, w).to(images), c)
        return crops.mul_(frost_weight).add_(images, alpha=image_weight)
