"""The :class:`Perturbation` base class and the perturbation registry (ImageNet-P, CIFAR-10-P).

A perturbation turns each clean image into a sequence of frames (a short "video") whose
content changes a little from frame to frame; a model's stability is measured on consecutive
frames, or, for *noise* sequences, on every frame against frame 0 (the clean image).

Every perturbation has two parameter sets from the reference generation code
(``make_imagenet_p.py`` for 224-px images, ``make_cifar_p.py`` for 32-px images), chosen and
scaled by the same size rule as the corruptions (:func:`robustart.corruptions.table_for_size`).
Noise sequences have three difficulties (1–3); the others have one.

The reference generated ImageNet-P on images resized to 256 px: geometric sequences (translate,
rotate, tilt, scale, shear, zoom blur) transform the whole image and centre-crop each frame to
224 px, so that real content comes into view; the others crop first. Pass the larger images
and ``crop=224`` to do the same; without ``crop``, frames keep the input size and regions from
outside the image are black (as in CIFAR-10-P).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import Tensor

from robustart.corruptions.base import check_channel_count, table_for_size
from robustart.corruptions.geometry import center_crop
from robustart.errors import ConfigError, EmptyInputError
from robustart.registry import Registry
from robustart.utils import check_images

#: Registry of perturbation classes, keyed by name ("gaussian_noise", "translate", ...).
PERTURBATIONS: Registry[type[Perturbation]] = Registry("perturbation")

#: The 10 test perturbations of ImageNet-P, in their customary order.
BENCHMARK_PERTURBATIONS: tuple[str, ...] = (
    "gaussian_noise",
    "shot_noise",
    "motion_blur",
    "zoom_blur",
    "snow",
    "brightness",
    "translate",
    "rotate",
    "tilt",
    "scale",
)
#: The 4 validation perturbations of ImageNet-P.
EXTRA_PERTURBATIONS: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "spatter", "shear")


class Perturbation(ABC):
    """Base class of all perturbation sequences.

    Subclasses set :attr:`name`, :attr:`noise`, the parameter sets ``imagenet`` and ``cifar``
    (one entry per difficulty) and implement :meth:`frames`.

    Example:
        >>> video = create_perturbation("rotate")(torch.rand(2, 3, 32, 32))
        >>> video.shape
        torch.Size([2, 31, 3, 32, 32])
    """

    name: ClassVar[str] = ""
    #: True for noise sequences: every frame is compared with frame 0 (the clean image), not
    #: with the previous frame, when computing flip probabilities and top-5 distances.
    noise: ClassVar[bool] = False
    #: Whether the frames are made on the whole image and then cropped (geometric sequences,
    #: which bring content from outside the crop into view), rather than made on the crop.
    crop_after: ClassVar[bool] = False
    #: One parameter per difficulty for 224-px images (ImageNet-P).
    imagenet: ClassVar[tuple[Any, ...]] = ()
    #: One parameter per difficulty for 32-px images (CIFAR-10-P).
    cifar: ClassVar[tuple[Any, ...]] = ()
    #: Channel counts the sequences are defined for (grey and RGB, as the corruptions they
    #: build on; an alpha channel would be perturbed as if it were colour).
    channel_counts: ClassVar[tuple[int, ...]] = (1, 3)

    @property
    def difficulties(self) -> tuple[int, ...]:
        """The valid difficulties (1..3 for noise sequences, 1 otherwise)."""
        return tuple(range(1, len(self.imagenet) + 1))

    def __call__(
        self,
        images: Tensor,
        difficulty: int = 1,
        generator: torch.Generator | None = None,
        crop: int | tuple[int, int] | None = None,
    ) -> Tensor:
        """The frame sequence of every image.

        Args:
            images: Float tensor (N, C, H, W) in [0, 1], on any device.
            difficulty: 1..3 for noise sequences, 1 otherwise.
            generator: Random generator on the images' device (``None``: global RNG).
            crop: Side (or ``(height, width)``) of the central crop taken from every frame;
                the parameter set is chosen for the crop size.

        Returns:
            Frames (N, T, C, h, w) in [0, 1], same dtype and device; ``T`` is
            :meth:`num_frames`.
        """
        check_images(images)
        if len(images) == 0:
            raise EmptyInputError(
                f"perturbation {self.name!r} got no images (a batch of 0): there is no "
                "sequence to measure a flip probability on; check the data and its subset"
            )
        check_channel_count(images.shape[1], self.channel_counts, f"perturbation {self.name!r}")
        height, width = images.shape[-2:]
        out_h, out_w = (crop, crop) if isinstance(crop, int) else (crop or (height, width))
        if out_h > height or out_w > width:
            raise ConfigError(f"crop {crop} is larger than the images ({height}×{width})")
        if out_h < 1 or out_w < 1:
            raise ConfigError(f"crop must be at least 1 pixel on each side, got {crop}")
        param, scale = self.parameter(difficulty, out_h, out_w)
        with torch.no_grad():
            if self.crop_after:
                video = center_crop(self.frames(images, param, scale, generator), out_h, out_w)
            else:
                video = self.frames(center_crop(images, out_h, out_w), param, scale, generator)
        return video.clamp(0.0, 1.0).to(images.dtype)

    def parameter(self, difficulty: int, height: int, width: int) -> tuple[Any, float]:
        """The parameter for ``difficulty`` at this (output) size, and the spatial scale."""
        if (
            isinstance(difficulty, bool)
            or not isinstance(difficulty, int)
            or difficulty not in self.difficulties
        ):
            raise ConfigError(
                f"difficulty of {self.name!r} must be an integer, one of "
                f"{list(self.difficulties)}, got {difficulty!r}"
            )
        table, scale = table_for_size(height, width)
        return getattr(self, table)[difficulty - 1], scale

    def num_frames(self, height: int, width: int) -> int:
        """Frames per sequence for images of this (output) size."""
        table, _ = table_for_size(height, width)
        return self.frame_count(getattr(self, table)[0])

    def frame_count(self, param: Any) -> int:
        """Frames per sequence for a parameter (31 unless a subclass says otherwise)."""
        return 31

    @abstractmethod
    def frames(
        self, images: Tensor, param: Any, scale: float, generator: torch.Generator | None
    ) -> Tensor:
        """Frames (N, T, C, H, W) of ``images`` (N, C, H, W); may leave [0, 1]."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def repeat_frames(images: Tensor, count: int) -> Tensor:
    """``images`` (N, C, H, W) repeated as (N·count, C, H, W), frames of an image adjacent."""
    return images.repeat_interleave(count, dim=0)


def as_video(frames: Tensor, count: int) -> Tensor:
    """(N·count, C, H, W) → (N, count, C, H, W)."""
    return frames.reshape(-1, count, *frames.shape[1:])


def create_perturbation(name: str) -> Perturbation:
    """Instantiate the perturbation registered as ``name`` (close matches suggested)."""
    return PERTURBATIONS.get(name)()


def perturb(
    images: Tensor,
    name: str,
    difficulty: int = 1,
    generator: torch.Generator | None = None,
    crop: int | tuple[int, int] | None = None,
) -> Tensor:
    """Functional shortcut: ``perturb(images, "translate")`` → frames (N, T, C, H, W)."""
    return create_perturbation(name)(images, difficulty, generator, crop)


def is_noise_sequence(name: str) -> bool:
    """Whether frames of perturbation ``name`` are compared with frame 0 (noise) rather than
    with the previous frame."""
    return PERTURBATIONS.get(name).noise
