"""The base LightningDataModule of robustart and the fixed robustness-evaluation subset.

Every datamodule yields ``(images, labels)`` batches with images as float tensors in [0, 1],
NCHW, un-normalised (the model normalises), and labels as int64. It also publishes the facts
the CLI links into the model: :attr:`num_classes`, :attr:`in_channels`, :attr:`image_size`,
:attr:`mean` and :attr:`std`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset

from robustart.augment.policy import build_augment_policy
from robustart.errors import ConfigError, DatasetNotFoundError

Split = Literal["train", "val", "test"]


class TransformedDataset(Dataset):
    """Applies ``transform`` to the image of each ``(image, label)`` pair of ``dataset``."""

    def __init__(self, dataset: Dataset, transform: Callable[[Tensor], Tensor] | None) -> None:
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image, label = self.dataset[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, label


class IntLabels(Dataset):
    """Returns the labels of ``dataset`` as Python ints, so that datasets whose labels are
    tensors and datasets whose labels are ints can be concatenated and batched together."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image, label = self.dataset[index]
        return image, int(label)


class RobustartDataModule(LightningDataModule):
    """Base class: loaders, dataset facts and the fixed evaluation subset.

    Subclasses set the class attributes below (or instance attributes in ``__init__``) and
    implement :meth:`build_dataset`.

    Args:
        batch_size: Training batch size (per device).
        eval_batch_size: Validation/test batch size (default: ``batch_size``).
        num_workers: DataLoader worker processes.
        pin_memory: Pin host memory for faster transfers to the GPU.
        augment_policy: A per-image augmentation policy applied to training images after the
            datamodule's own augmentation, e.g. ``{name: autoaugment, policy: cifar10}``,
            ``{name: randaugment, n: 2, m: 9}``, ``{name: trivialaugment}`` or
            ``{name: augmix}`` (see :mod:`robustart.augment.policy`).
        stylized_root: A stylized copy of the training set as class folders
            (``<root>/<class>/<images>``, one folder per class, sorted names in label order),
            added to the training images (Geirhos et al.'s Stylized + original training);
            see :mod:`robustart.augment.stylized_dataset`.
        persistent_workers: Keep the loader's worker processes alive between epochs. Saves
            their start-up time once per epoch, but their random-number streams then run on
            from the first epoch, so a run resumed with ``--ckpt_path last`` no longer
            augments exactly as the uninterrupted run; off by default for exact resumes.
    """

    #: Number of classes.
    num_classes: int = 10
    #: Image channels.
    in_channels: int = 3
    #: Side of the (square) evaluation images in pixels.
    image_size: int = 32
    #: Per-channel normalisation constants, linked into the model.
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)

    def __init__(
        self,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        augment_policy: dict[str, Any] | None = None,
        stylized_root: str | None = None,
        persistent_workers: bool = False,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if eval_batch_size is not None and eval_batch_size < 1:
            raise ConfigError(
                f"eval_batch_size must be >= 1 (or null: batch_size), got {eval_batch_size}"
            )
        if num_workers < 0:
            raise ConfigError(
                f"num_workers must be >= 0 (0: load in the main process), got {num_workers}"
            )
        if persistent_workers and num_workers == 0:
            raise ConfigError(
                "persistent_workers needs worker processes: set num_workers >= 1, or "
                "persistent_workers false"
            )
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.augment_policy = build_augment_policy(augment_policy)
        self.augment_policy_config = augment_policy
        self.stylized_root = stylized_root
        self.persistent_workers = persistent_workers
        self._datasets: dict[tuple[str, bool], Dataset] = {}

    def training_settings(self) -> dict[str, Any]:
        """The data settings that shape a training run, recorded in its checkpoints so that a
        fit resumed with other ones is refused: the data module, the training batch size,
        the augmentation policy (as configured) and whether stylized images are mixed in."""
        # plain JSON values: a checkpoint is read back with weights_only=True
        policy = json.loads(json.dumps(self.augment_policy_config, default=str))
        return {
            "data": type(self).__name__,
            "batch_size": self.batch_size,
            "augment_policy": policy,
            "stylized": self.stylized_root is not None,
        }

    @property
    def train_views(self) -> int:
        """Views per training image: 1, or V when training items are (V, C, H, W) stacks
        (AugMix with its consistency loss); batches are then (N, V, C, H, W)."""
        return self.augment_policy.views if self.augment_policy is not None else 1

    def train_augmentation(self) -> Callable[[Tensor], Tensor] | None:
        """The datamodule's own per-image training augmentation on float (C, H, W) images
        (crop, flip, ...), also applied to ``stylized_root`` images; ``None`` for none."""
        return None

    def folder_dataset(self, root: Path) -> Dataset:
        """Training dataset from a class-folder tree (``stylized_root``): images resized and
        centre-cropped to :attr:`image_size`, then :meth:`train_augmentation`."""
        from torchvision import datasets
        from torchvision.transforms import v2

        transform = v2.Compose(
            [
                v2.ToImage(),
                v2.ToDtype(torch.float32, scale=True),
                v2.Resize(self.image_size, antialias=True),
                v2.CenterCrop(self.image_size),
            ]
        )
        from robustart.data.folders import load_rgb_image  # names unreadable files

        folder = datasets.ImageFolder(
            str(root), transform=transform, loader=load_rgb_image, allow_empty=True
        )
        return TransformedDataset(folder, self.train_augmentation())

    def _stylized_dataset(self) -> Dataset:
        root = Path(str(self.stylized_root))
        classes = sorted(d.name for d in root.iterdir() if d.is_dir()) if root.is_dir() else []
        if len(classes) != self.num_classes:
            raise DatasetNotFoundError(
                f"stylized_root {root} must hold one folder per class ({self.num_classes}, "
                f"sorted names in label order, e.g. 0/ ... 9/), found {len(classes)}. Write it "
                "with robustart.augment.stylized_dataset.write_stylized_dataset."
            )
        dataset = self.folder_dataset(root)
        if len(dataset) == 0:  # type: ignore[arg-type]
            raise DatasetNotFoundError(f"stylized_root {root} holds no images")
        return dataset

    def _with_training_extras(self, dataset: Dataset) -> Dataset:
        """Add the stylized images and the augmentation policy to a training dataset."""
        if self.stylized_root:
            dataset = ConcatDataset([IntLabels(dataset), IntLabels(self._stylized_dataset())])
        if self.augment_policy is not None:
            dataset = TransformedDataset(dataset, self.augment_policy)
        return dataset

    def build_dataset(self, split: Split, train_transform: bool) -> Dataset:
        """Return the dataset for ``split`` with training augmentation or evaluation transform.

        Items are ``(image (C, H, W) float in [0, 1], label int)``.
        """
        raise NotImplementedError

    def dataset(self, split: Split, train_transform: bool | None = None) -> Dataset:
        """The (cached) dataset of ``split``; training augmentation only for ``train``."""
        augment = split == "train" if train_transform is None else train_transform
        key = (split, augment)
        if key not in self._datasets:
            dataset = self.build_dataset(split, augment)
            self._datasets[key] = self._with_training_extras(dataset) if augment else dataset
        return self._datasets[key]

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self.dataset("train")
            self.dataset("val")
        elif stage == "validate":
            self.dataset("val")
        elif stage in ("test", "predict"):
            self.dataset("test")

    def _loader(self, dataset: Dataset, shuffle: bool, batch_size: int) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers and self.num_workers > 0,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("train"), True, self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("val"), False, self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("test"), False, self.eval_batch_size)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()

    def robustness_subset(self, split: Split, size: int | None, seed: int = 0) -> Subset:
        """A fixed, seeded subset of ``split`` with the evaluation transform.

        The same ``(split, size, seed)`` always gives the same images in the same order, so
        robustness curves over epochs (and across runs) compare the same images.

        Args:
            split: ``"val"`` or ``"test"`` (or ``"train"``, without augmentation).
            size: Number of images; ``None`` or more than available means the whole split.
            seed: Seed of the random selection.
        """
        dataset = self.dataset(split, train_transform=False)
        n = len(dataset)  # type: ignore[arg-type]
        if size is not None and size < 1:
            raise ConfigError(f"the robustness subset size must be >= 1, got {size}")
        if size is None or size >= n:
            indices = list(range(n))
        else:
            generator = torch.Generator().manual_seed(seed)
            indices = sorted(torch.randperm(n, generator=generator)[:size].tolist())
        return Subset(dataset, indices)
