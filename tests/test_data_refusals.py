"""Data from the user's disk is refused, not scored, when it is not what its layout promises.

Found by a second audit of ordinary use: a CIFAR pickle with channels-last, 16-bit or float
data and float labels was reshaped, wrapped or truncated into a full evaluation; CIFAR-10-C and
CIFAR-10.1 took float labels and 64-px images; a 16-bit greyscale PNG came out almost white;
an empty ``sha256`` in a zoo index turned the checksum off; CIFAR-10-P sequences of one frame
or none crashed late; macOS ``._*`` sidecar files in class folders failed mid-evaluation and
files of other types were left out without a word. Every fixture here is a few tiny files.
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from robustart.data import CIFAR10C, CIFAR10P, CIFAR10DataModule
from robustart.data.cifar101 import CIFAR101
from robustart.data.folders import load_rgb_image, scan_class_folders
from robustart.errors import CheckpointError, DatasetNotFoundError, InputRangeError
from robustart.system_noise.decoders import decode_pil


# ----------------------------------------------------------------------------- CIFAR pickles
def write_cifar10(root: Path, data: np.ndarray, labels: list) -> None:
    """The official folder with every batch holding ``data`` and ``labels``."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels}, f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [b"c"] * 10}, f, protocol=2)


GOOD_ROWS = np.random.default_rng(0).integers(0, 256, size=(4, 3072), dtype=np.uint8)


@pytest.mark.parametrize(
    ("data", "labels", "match"),
    [
        (GOOD_ROWS.reshape(4, 32, 32, 3), [0, 1, 2, 3], "uint8 rows of 3072"),  # channels last
        (GOOD_ROWS.astype(np.int16) * 4, [0, 1, 2, 3], "uint8 rows of 3072"),  # 16-bit values
        (GOOD_ROWS.astype(np.float32), [0, 1, 2, 3], "uint8 rows of 3072"),
        (GOOD_ROWS, [0.5, 1.0, 3.9, 2.0], "integer class labels"),
        (GOOD_ROWS, [0, 1, 10, 3], r"labels in \[0, 10\]"),
        (GOOD_ROWS, [0, -1, 2, 3], r"labels in \[-1, 3\]"),
    ],
    ids=["channels_last", "int16", "float", "float_labels", "label_10", "label_minus_1"],
)
def test_cifar_batches_not_in_the_official_layout_are_refused(tmp_path, data, labels, match):
    write_cifar10(tmp_path, data, labels)
    with pytest.raises(DatasetNotFoundError, match=match):
        CIFAR10DataModule(root=str(tmp_path)).dataset("test")


def test_official_cifar_batches_still_load(tmp_path):
    write_cifar10(tmp_path, GOOD_ROWS, [0, 1, 9, 3])
    dataset = CIFAR10DataModule(root=str(tmp_path), augment=False).dataset("test")
    assert len(dataset) == 4 and int(dataset[2][1]) == 9


# ----------------------------------------------------------------------------- .npy layouts
def write_cifar_c(root: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "fog.npy", images)
    np.save(root / "labels.npy", labels)
    return root


@pytest.mark.parametrize(
    ("size", "labels", "match"),
    [
        (32, np.array([0.5, 1.7, 2.0, 3.0] * 5), "integer class labels"),
        (32, np.array([0, 1, 2, 10] * 5), r"labels in \[0, 10\]"),
        (64, np.arange(20) % 10, r"uint8 images of shape \(N, 32, 32, 3\)"),
    ],
    ids=["float_labels", "label_10", "64_px"],
)
def test_cifar10_c_refuses_float_labels_other_classes_and_sizes(tmp_path, size, labels, match):
    images = np.full((20, size, size, 3), 128, dtype=np.uint8)
    root = write_cifar_c(tmp_path / "c", images, labels)
    with pytest.raises(DatasetNotFoundError, match=match):
        CIFAR10C(root, "fog", severity=1)


def test_cifar10_1_refuses_float_labels(tmp_path):
    np.save(tmp_path / "cifar10.1_v6_data.npy", np.full((3, 32, 32, 3), 128, dtype=np.uint8))
    np.save(tmp_path / "cifar10.1_v6_labels.npy", np.array([0.0, 1.5, 2.0]))
    with pytest.raises(DatasetNotFoundError, match="integer class labels"):
        CIFAR101(tmp_path)


@pytest.mark.parametrize("frames", [0, 1])
def test_cifar10_p_needs_two_frames_per_sequence(tmp_path, frames):
    np.save(tmp_path / "gaussian_noise.npy", np.full((2, frames, 32, 32, 3), 128, np.uint8))
    with pytest.raises(DatasetNotFoundError, match="at least 2 frames"):
        CIFAR10P(tmp_path, "gaussian_noise")


# ----------------------------------------------------------------------------- image files
def test_sixteen_bit_greyscale_is_scaled_not_clipped(tmp_path):
    """PIL's convert("RGB") clipped 16-bit values at 255: a mid-grey PNG came out white."""
    values = np.full((6, 5), 32896, dtype=np.uint16)  # 128 · 257
    values[0, 0] = 65535
    Image.fromarray(values).save(tmp_path / "grey16.png")
    for pixels in (
        np.asarray(load_rgb_image(tmp_path / "grey16.png")),
        decode_pil((tmp_path / "grey16.png").read_bytes()),
    ):
        assert pixels.shape == (6, 5, 3) and pixels.dtype == np.uint8
        assert pixels[0, 0].tolist() == [255] * 3 and pixels[1, 1].tolist() == [128] * 3


def test_thirty_two_bit_images_are_refused(tmp_path):
    Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32)).save(tmp_path / "float.tiff")
    with pytest.raises(InputRangeError, match="32-bit float image"):
        load_rgb_image(tmp_path / "float.tiff")


def test_class_folders_skip_sidecars_and_name_other_files(tmp_path):
    for name in ("cat", "dog"):
        (tmp_path / name).mkdir()
        Image.new("RGB", (4, 4)).save(tmp_path / name / "a.png")
    (tmp_path / "cat" / "._a.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # macOS sidecar
    (tmp_path / "dog" / ".DS_Store").write_bytes(b"\x00")
    Image.new("RGB", (4, 4)).save(tmp_path / "dog" / "b.gif")
    with pytest.warns(UserWarning, match=r"1 file\(s\) .* left out, e\.g\. dog/b\.gif"):
        samples = scan_class_folders(tmp_path, {"cat": 0, "dog": 1}, "Test", "<root>/<c>/*")
    assert [(p.parent.name, p.name) for p, _ in samples] == [("cat", "a.png"), ("dog", "a.png")]


# ----------------------------------------------------------------------------- the zoo
@pytest.mark.parametrize("digest", ["", "abc123", "A" * 64, None])
def test_a_zoo_entry_without_a_real_checksum_is_refused(tmp_path, monkeypatch, digest):
    from robustart.models.zoo import load_index, zoo_dir

    shutil.copy(zoo_dir() / "zoo.yaml", tmp_path / "zoo.yaml")
    text = (tmp_path / "zoo.yaml").read_text()
    name = next(iter(load_index()))
    first = text.index("sha256:", text.index(name))
    end = text.index("\n", first)
    (tmp_path / "zoo.yaml").write_text(f"{text[:first]}sha256: {digest!r}{text[end:]}")
    with pytest.raises(CheckpointError, match="64-hex-digit SHA-256"):
        load_index(tmp_path)


# ----------------------------------------------------------------------------- -C sets
def test_imagenet_c_images_of_another_size_are_refused_naming_the_file(tmp_path):
    """Before: equal wrong sizes were scored as given; mixed sizes crashed in the collate."""
    from robustart.data import ImageNetC

    folder = tmp_path / "fog" / "1" / "n01440764"
    folder.mkdir(parents=True)
    Image.new("RGB", (224, 224)).save(folder / "a.png")
    Image.new("RGB", (24, 24)).save(folder / "b.png")
    data = ImageNetC(tmp_path, "fog", 1)
    assert data[0][0].shape == (3, 224, 224)
    with pytest.raises(InputRangeError, match=r"b\.png is 24 x 24 px"):
        data[1]


def test_corruption_sets_open_every_subset_and_severity_before_evaluating(tmp_path):
    """Before: only the first corruption at the first severity was opened up front; a broken
    later file failed after the earlier ones had been evaluated."""
    from robustart.evaluation.benchmarks import get_benchmark
    from robustart.evaluation.benchmarks.base import ShiftSettings

    images = np.full((20, 32, 32, 3), 128, dtype=np.uint8)
    root = write_cifar_c(tmp_path / "c", images, np.arange(20) % 10)
    np.save(root / "snow.npy", np.zeros((20, 32, 32), dtype=np.uint8))  # no channel axis
    settings = ShiftSettings(root=root, subsets=["fog", "snow"], severities=(1, 5))
    with pytest.raises(DatasetNotFoundError, match=r"snow\.npy must hold uint8 images"):
        get_benchmark("cifar10-c").prepare(settings)


@pytest.mark.parametrize(
    ("option", "value", "match"),
    [
        ("--severities", "1,6", "--severities must lie in [1, 5], got [6]"),
        ("--severities", "2,2", "--severities lists a value twice"),
    ],
)
def test_shift_option_lists_are_checked_before_loading(capsys, tmp_path, option, value, match):
    from conftest import expect_cli_error

    args = ["shift", "zoo:digits_resnet20_standard", "--benchmark", "cifar10-c"]
    args += ["--data-root", str(tmp_path), option, value, "--output", str(tmp_path / "o")]
    expect_cli_error(capsys, *args, match=match)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"eval_batch_size": -1}, "eval_batch_size must be >= 1"),
        ({"eval_batch_size": 0}, "eval_batch_size must be >= 1"),
        ({"num_workers": -1}, "num_workers must be >= 0"),
        ({"persistent_workers": True}, "persistent_workers needs worker processes"),
        # before: accepted, and most training images were blank (shift 40 of a 32-px digit)
        ({"shift": 40}, r"shift must be a whole number of pixels in \[0, 15\], got 40"),
        ({"shift": 16}, "moves many digits out of the frame"),
        ({"shift": 1.5}, "shift must be a whole number"),
        ({"augment": False, "shift": 4}, "shift 4 is read only with augment true"),
    ],
)
def test_loader_settings_are_checked_when_the_datamodule_is_built(settings, match):
    """Before: a torch DataLoader ValueError traceback when the first loader was made (and an
    eval_batch_size of 0 silently meant batch_size)."""
    from robustart.data import DigitsDataModule
    from robustart.errors import ConfigError

    with pytest.raises(ConfigError, match=match):
        DigitsDataModule(**settings)
    DigitsDataModule(eval_batch_size=None, num_workers=0)  # the defaults stay valid


def test_corruption_subsets_of_different_sizes_are_refused():
    """An incomplete -C copy (a class folder missing in one severity) held other images in
    one subset; its accuracy and the mCE compared them as equals (before: scored, and the
    caption gave the last subset's image count for all)."""
    from robustart.evaluation.benchmarks.corruption_files import check_equal_subsets

    check_equal_subsets("ImageNet-C", {("fog", 1): 6, ("fog", 3): 6, ("snow", 1): 6})
    check_equal_subsets("ImageNet-C", {})
    with pytest.raises(DatasetNotFoundError, match=r"fog severity 3: 3, fog severity 1: 6"):
        check_equal_subsets("ImageNet-C", {("fog", 1): 6, ("fog", 3): 3, ("snow", 1): 6})
