"""Write a stylized copy of a dataset to disk (the Stylized-ImageNet recipe, for any dataset).

The copy is a class-folder tree ``root/<label>/<index>_<copy>.png`` whose folder names are
zero-padded label indices, so that their sorted order is the label order. Any datamodule trains
on it mixed with the original images through ``stylized_root``::

    from robustart.augment.stylize import Stylize
    from robustart.augment.stylized_dataset import write_stylized_dataset
    from robustart.data import CIFAR10DataModule

    data = CIFAR10DataModule(root="data")
    stylizer = Stylize(encoder="weights/adain/vgg_normalised.pth",
                       decoder="weights/adain/decoder.pth", styles="data/styles")
    write_stylized_dataset(data.dataset("train", train_transform=False), stylizer,
                           "data/cifar10-stylized", num_classes=10, device="cuda")

and then ``data: {init_args: {stylized_root: data/cifar10-stylized}}``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from robustart.augment.stylize import Stylize


def label_folder_name(label: int, num_classes: int) -> str:
    """Zero-padded label, e.g. ``07`` of 10 classes, so sorted names follow label order."""
    return str(label).zfill(len(str(num_classes - 1)))


def write_stylized_dataset(
    dataset: Dataset,
    stylizer: Stylize,
    root: str | Path,
    num_classes: int,
    copies: int = 1,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> int:
    """Stylize every image of ``dataset`` ``copies`` times (random styles) and save PNGs.

    Args:
        dataset: Items ``(image (C, H, W) float in [0, 1], label)``, without augmentation.
        stylizer: The AdaIN stylizer (its ``prob`` is ignored: every image is stylized).
        root: Output folder (created).
        num_classes: Number of classes (fixes the width of the folder names).
        copies: Stylized versions per image, each with its own random style.
        batch_size: Images stylized per pass.
        device: Where to run the networks.

    Returns:
        The number of files written.
    """
    root = Path(root)
    for label in range(num_classes):
        (root / label_folder_name(label, num_classes)).mkdir(parents=True, exist_ok=True)
    written = 0
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for copy in range(copies):
        index = 0
        for images, labels in loader:
            stylized = stylizer.stylize(images.to(device)).mul(255).round().byte().cpu()
            for image, label in zip(stylized, labels.tolist()):
                folder = root / label_folder_name(int(label), num_classes)
                Image.fromarray(image.permute(1, 2, 0).numpy()).save(
                    folder / f"{index:06d}_{copy}.png"
                )
                index += 1
                written += 1
    return written
