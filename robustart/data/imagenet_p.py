"""ImageNet-P perturbation sequences: ``<root>/<perturbation>/<wnid>/*.mp4``.

Each video is one sequence: the frames of one ImageNet validation image under a perturbation
of growing (or, for the noise perturbations, redrawn) strength, 224×224 px in the release.
Harder difficulties are separate perturbation folders with a suffix (``gaussian_noise_2``).
As in the reference evaluation, the frames are decoded and fed to the model as they are (no
resize or crop). The labels (the class folders) are not used: stability metrics compare the
model's predictions across the frames of each sequence.

Decoding uses PyAV (``pip install av``, or ``pip install robustart[video]``); it is imported
only when a video is read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import Tensor
from torch.utils.data import Dataset

from robustart.data.cifar_c import hwc_uint8_to_float
from robustart.data.shift import SHIFT_DATASETS
from robustart.errors import ConfigError, DatasetNotFoundError
from robustart.metrics.perturbation import compares_with_first_frame

#: The layout ``ImageNetP`` reads, for messages.
LAYOUT = "<root>/<perturbation>/<wnid>/*.mp4"


def read_video_frames(path: str | Path) -> np.ndarray:
    """Decode every frame of a video file.

    Args:
        path: A video file (mp4 or anything FFmpeg reads).

    Returns:
        uint8 array (F, H, W, 3), RGB.

    Raises:
        ConfigError: PyAV is not installed.
        DatasetNotFoundError: the file cannot be decoded or holds no video frame.
    """
    try:
        import av
    except ImportError as err:
        raise ConfigError(
            "reading ImageNet-P videos needs PyAV: `pip install av` "
            "(or `pip install robustart[video]`)"
        ) from err
    try:
        with av.open(str(path)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except (av.FFmpegError, IndexError, OSError) as err:
        raise DatasetNotFoundError(f"ImageNet-P: cannot decode {path}: {err}") from err
    if not frames:
        raise DatasetNotFoundError(f"ImageNet-P: {path} holds no video frame")
    return np.stack(frames)


@SHIFT_DATASETS.register("imagenet-p")
class ImageNetP(Dataset):
    """Sequences of one ImageNet-P perturbation; items are frames (F, 3, H, W) in [0, 1].

    Args:
        root: The ImageNet-P folder holding one folder per perturbation.
        perturbation: Folder name, e.g. ``"rotate"`` or ``"gaussian_noise_2"``.

    Attributes:
        files: The videos, sorted by class folder then file name.
        frames: Frames per sequence (read from the first video; every video of a perturbation
            must have as many, so that sequences batch together).
        noise: Whether frames are compared with frame 0 (noise) rather than consecutively.

    Example:
        >>> data = ImageNetP("data/ImageNet-P", "rotate")  # doctest: +SKIP
        >>> data[0].shape  # doctest: +SKIP
        torch.Size([31, 3, 224, 224])
    """

    def __init__(self, root: str | Path, perturbation: str) -> None:
        self.root = Path(root)
        folder = self.root / perturbation
        self.files = sorted(folder.glob("*/*.mp4"))
        if not self.files:
            found = self.perturbations(self.root)
            hint = f" Found: {', '.join(found)}." if found else ""
            raise DatasetNotFoundError(
                f"ImageNet-P: no videos in {folder}/<wnid>/*.mp4. Expected the layout "
                f"{LAYOUT}.{hint}"
            )
        self.perturbation = perturbation
        self.noise = compares_with_first_frame(perturbation)
        self.frames = len(read_video_frames(self.files[0]))

    @staticmethod
    def perturbations(root: str | Path) -> list[str]:
        """Sorted names of the perturbation folders under ``root`` (those with ``*/*.mp4``)."""
        root = Path(root)
        if not root.is_dir():
            return []
        return sorted(d.name for d in root.iterdir() if d.is_dir() and any(d.glob("*/*.mp4")))

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Tensor:
        frames = read_video_frames(self.files[index])
        if len(frames) != self.frames:
            raise DatasetNotFoundError(
                f"ImageNet-P: {self.files[index]} has {len(frames)} frames but "
                f"{self.files[0]} has {self.frames}; the videos of one perturbation must have "
                "equal lengths (is a file truncated?)"
            )
        return hwc_uint8_to_float(frames)
