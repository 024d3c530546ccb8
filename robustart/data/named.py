"""The datamodules the evaluation commands know by name (``--data digits``, ``--data cifar10``).

Example:
    >>> data = create_datamodule("digits")
    >>> data.num_classes, data.image_size
    (10, 32)
"""

from __future__ import annotations

from collections.abc import Callable

from robustart.data.base import RobustartDataModule
from robustart.registry import Registry

#: Name → ``(root or None) -> datamodule`` with evaluation settings (no training augmentation).
DATAMODULES: Registry[Callable[[str | None], RobustartDataModule]] = Registry("dataset")


@DATAMODULES.register("digits")
def _digits(root: str | None) -> RobustartDataModule:
    from robustart.data.digits import DigitsDataModule

    return DigitsDataModule(augment=False)


@DATAMODULES.register("cifar10")
def _cifar10(root: str | None) -> RobustartDataModule:
    from robustart.data.cifar import CIFAR10DataModule

    return CIFAR10DataModule(root=root or "data", augment=False)


@DATAMODULES.register("cifar100")
def _cifar100(root: str | None) -> RobustartDataModule:
    from robustart.data.cifar import CIFAR100DataModule

    return CIFAR100DataModule(root=root or "data", augment=False)


@DATAMODULES.register("imagenet")
def _imagenet(root: str | None) -> RobustartDataModule:
    from robustart.data.imagefolder import ImageFolderDataModule
    from robustart.errors import ConfigError

    if root is None:
        raise ConfigError(
            "--data imagenet needs --data-root: the folder holding train/ and val/ class "
            "folders (<wnid>/*.JPEG)"
        )
    return ImageFolderDataModule(root=root)


def create_datamodule(name: str, root: str | None = None) -> RobustartDataModule:
    """The datamodule registered as ``name``, reading its files from ``root``.

    Raises:
        UnknownNameError: ``name`` is not registered (close names suggested).
    """
    return DATAMODULES.get(name)(root)
