"""CIFAR-10-P perturbation sequences: ``<root>/<perturbation>.npy`` uint8 (N, F, 32, 32, 3).

Files of harder difficulties carry a suffix (``gaussian_noise_2.npy``). There are no labels:
stability metrics compare a model's predictions across the frames of each sequence.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor
from torch.utils.data import Dataset

from robustart.data.cifar_c import check_uint8_images, hwc_uint8_to_float, load_npy
from robustart.data.shift import SHIFT_DATASETS
from robustart.errors import DatasetNotFoundError
from robustart.metrics.perturbation import compares_with_first_frame


@SHIFT_DATASETS.register("cifar10-p")
class CIFAR10P(Dataset):
    """Sequences of one CIFAR-10-P perturbation; items are frames (F, 3, 32, 32) in [0, 1].

    Args:
        root: Folder with ``<perturbation>.npy`` files.
        perturbation: File stem, e.g. ``"rotate"`` or ``"gaussian_noise_2"``.

    Attributes:
        frames: Frames per sequence.
        noise: Whether frames are compared with frame 0 (noise) rather than consecutively.
    """

    def __init__(self, root: str | Path, perturbation: str) -> None:
        self.root = Path(root)
        path = self.root / f"{perturbation}.npy"
        found = self.perturbations(self.root)
        hint = f" Found: {', '.join(found)}." if found else ""
        self.sequences = load_npy(
            path, "CIFAR-10-P", f"{self.root}/<perturbation>.npy of shape (N, F, 32, 32, 3).{hint}"
        )
        check_uint8_images(self.sequences, path, "CIFAR-10-P", leading=2)
        self.perturbation = perturbation
        self.noise = compares_with_first_frame(perturbation)
        self.frames = int(self.sequences.shape[1])
        if self.frames < 2 or len(self.sequences) == 0:
            raise DatasetNotFoundError(
                f"CIFAR-10-P: {path} holds {len(self.sequences)} sequences of {self.frames} "
                "frames; flip rates compare frames, so it needs sequences of at least 2 frames"
            )

    @staticmethod
    def perturbations(root: str | Path) -> list[str]:
        """Sorted stems of the ``<perturbation>.npy`` files under ``root``."""
        root = Path(root)
        return sorted(p.stem for p in root.glob("*.npy")) if root.is_dir() else []

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> Tensor:
        return hwc_uint8_to_float(self.sequences[index])
