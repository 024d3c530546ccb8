"""Datamodules on the embedded digits and on small fakes written in the real on-disk formats."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from robustart.data import (
    CIFAR10DataModule,
    CIFAR100DataModule,
    DigitsDataModule,
    ImageFolderDataModule,
)
from robustart.errors import DatasetNotFoundError


def test_digits_split_is_fixed_and_images_are_unit_range():
    a, b = DigitsDataModule(), DigitsDataModule(augment=False)
    assert [len(a.dataset(s)) for s in ("train", "val", "test")] == [1297, 250, 250]
    xa, ya = a.dataset("test")[:]
    xb, yb = b.dataset("test")[:]
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert xa.shape == (250, 3, 32, 32) and xa.dtype == torch.float32 and ya.dtype == torch.int64
    assert xa.min() == 0 and xa.max() <= 1
    assert a.num_classes == 10 and a.image_size == 32 and len(a.mean) == 3
    assert sorted(ya.unique().tolist()) == list(range(10))


def test_digits_training_batches():
    dm = DigitsDataModule(batch_size=16)
    dm.setup("fit")
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (16, 3, 32, 32) and labels.shape == (16,)
    assert images.min() >= 0 and images.max() <= 1


def test_robustness_subset_is_fixed_and_seeded():
    dm = DigitsDataModule()
    a = dm.robustness_subset("val", 50, seed=0)
    b = DigitsDataModule().robustness_subset("val", 50, seed=0)
    c = dm.robustness_subset("val", 50, seed=1)
    assert list(a.indices) == list(b.indices) and len(a) == 50
    assert list(a.indices) != list(c.indices)
    assert len(dm.robustness_subset("val", 10_000)) == 250
    x1, _ = a[0]
    x2, _ = a[0]
    assert torch.equal(x1, x2)  # evaluation transform: no augmentation


# ------------------------------------------------------------------------- CIFAR
def _write_batch(path: Path, n: int, label_key: str, num_classes: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    batch = {
        b"batch_label": b"fake batch",
        b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
        label_key.encode(): rng.integers(0, num_classes, size=n).tolist(),
        b"filenames": [f"img{i}.png".encode() for i in range(n)],
    }
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)


def make_fake_cifar10(root: Path, n: int = 10) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        _write_batch(folder / f"data_batch_{i}", n, "labels", 10, i)
    _write_batch(folder / "test_batch", n, "labels", 10, 0)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [b"airplane"] * 10}, f, protocol=2)
    return folder


def test_cifar10_loads_the_official_layout(tmp_path):
    make_fake_cifar10(tmp_path)
    dm = CIFAR10DataModule(root=str(tmp_path), batch_size=4)
    dm.setup("fit")
    train, val = dm.dataset("train"), dm.dataset("val")
    assert len(train) == 50 and len(val) == 10
    image, label = dm.dataset("val")[3]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert image.min() >= 0 and image.max() <= 1
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    expected = torch.from_numpy(raw[b"data"][3].reshape(3, 32, 32)).float() / 255
    assert torch.equal(image, expected) and int(label) == raw[b"labels"][3]
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (4, 3, 32, 32) and labels.dtype == torch.int64


def test_cifar100_uses_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    _write_batch(folder / "train", 12, "fine_labels", 100, 1)
    _write_batch(folder / "test", 6, "fine_labels", 100, 2)
    dm = CIFAR100DataModule(root=str(tmp_path))
    assert dm.num_classes == 100
    assert len(dm.dataset("train")) == 12 and len(dm.dataset("test")) == 6


def test_missing_cifar_root_names_path_and_remedy(tmp_path):
    dm = CIFAR10DataModule(root=str(tmp_path / "nowhere"))
    with pytest.raises(DatasetNotFoundError) as info:
        dm.setup("fit")
    message = str(info.value)
    assert "nowhere/cifar-10-batches-py/data_batch_1" in message
    assert "cifar-10-python.tar.gz" in message and "download: true" in message


def test_incomplete_cifar_root_lists_missing_files(tmp_path):
    folder = make_fake_cifar10(tmp_path)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DatasetNotFoundError, match="data_batch_3"):
        CIFAR10DataModule(root=str(tmp_path)).setup("fit")


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_tampered_cifar_pickle_cannot_run_code(tmp_path):
    folder = make_fake_cifar10(tmp_path)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": Payload(), b"labels": [0]}, f)
    with pytest.raises(DatasetNotFoundError, match="disallowed object"):
        CIFAR10DataModule(root=str(tmp_path)).dataset("test")


# ------------------------------------------------------------------------- ImageFolder
def make_image_folder(root: Path, classes=("cat", "dog", "emu"), per_class=3) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in classes:
            folder = root / split / c
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")


def test_image_folder_train_and_eval_transforms(tmp_path):
    make_image_folder(tmp_path)
    dm = ImageFolderDataModule(
        root=str(tmp_path), image_size=32, resize_size=36, batch_size=4, num_workers=0
    )
    assert dm.num_classes == 3
    dm.setup("fit")
    images, _labels = next(iter(dm.train_dataloader()))
    assert images.shape == (4, 3, 32, 32) and images.dtype == torch.float32
    assert images.min() >= 0 and images.max() <= 1
    a, _ = dm.dataset("val")[0]
    b, _ = dm.dataset("val")[0]
    assert torch.equal(a, b)  # Resize + CenterCrop is deterministic
    assert len(dm.dataset("test")) == 9  # falls back to val/


def test_image_folder_missing_root(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="train/<class>"):
        ImageFolderDataModule(root=str(tmp_path / "imagenet"))
