"""Bad input gets a clear error, never a number.

Every case here feeds robustart something wrong (a misaligned or damaged dataset, images in the
wrong layout, labels out of range, a numerically broken model, an unreadable checkpoint, an
output path under a file) and checks that it is refused with a
:class:`~robustart.errors.RobustartError` naming the problem. Command-line cases also check
exit status 2, one ``robustart: error:`` line and no traceback. Everything is tiny (8-px
images, a linear model, 4-image datasets) and nothing is downloaded.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FAST, RECIPES
from PIL import Image
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from robustart.attacks import create_attack
from robustart.corruptions import corrupt
from robustart.data import ImageFolderDataModule, ImageNetV2, imagenet_subset
from robustart.data.folders import ImageFileDataset, WnidFolderDataset, to_float_transform
from robustart.errors import (
    CheckpointError,
    ConfigError,
    CorruptImageError,
    DatasetNotFoundError,
    EmptyInputError,
    InputRangeError,
    NonFiniteError,
    RobustartError,
    UnknownNameError,
)
from robustart.evaluation.benchmarks import (
    evaluate_cifar_system_noise,
    evaluate_classification,
    evaluate_perturbation_sequences,
    evaluate_system_noise,
)
from robustart.evaluation.minimal import MinimalEpsilonSearch, accuracy_curve
from robustart.evaluation.suite import RobustnessSuite
from robustart.evaluation.transfer import evaluate_transfer
from robustart.main import cli_main
from robustart.metrics import (
    CalibrationError,
    FlipProbability,
    expected_calibration_error_from_scores,
    max_softmax_anomaly_score,
    ood_detection_scores,
)
from robustart.models import create_model
from robustart.models.weights import load_checkpoint_file
from robustart.perturbations import perturb
from robustart.plots import corruption_gallery_figure
from robustart.system_noise.pipeline import jpeg_quality_variants

STANDARD = "zoo:digits_resnet20_standard"
NUM_CLASSES = 10


# ----------------------------------------------------------------------------- helpers
class Linear(nn.Module):
    """A tiny classifier of (N, 3, 8, 8) images into 10 classes (fixed random weights)."""

    def __init__(self, num_classes: int = NUM_CLASSES, channels: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(channels * 8 * 8, num_classes)

    def forward(self, images: Tensor) -> Tensor:
        return self.fc(images.flatten(1))


class NaNModel(nn.Module):
    """A numerically broken model: NaN logits for every image (diverged weights)."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, images: Tensor) -> Tensor:
        return images.flatten(1)[:, :1].expand(-1, self.num_classes) * (self.scale * math.nan)


def tiny_batch(n: int = 4, channels: int = 3) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, channels, 8, 8, generator=g), torch.arange(n) % NUM_CLASSES


def write_image(path: Path, seed: int = 0, size: tuple[int, int] = (12, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def truncate(path: Path) -> Path:
    """Cut a valid image file in half, as an interrupted copy or download would."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def class_tree(root: Path, classes: list[str], images: int = 2, ext: str = "png") -> Path:
    for c, name in enumerate(classes):
        for i in range(images):
            write_image(root / name / f"{i}.{ext}", seed=10 * c + i)
    return root


def cli_error(capsys, *args, match: str) -> str:
    """Run ``robustart ARGS`` in-process; it must exit with status 2 and print one
    ``robustart: error:`` line containing ``match`` and no traceback."""
    with pytest.raises(SystemExit) as info:
        cli_main([os.fspath(a) if isinstance(a, Path) else str(a) for a in args])
    assert info.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("robustart: error:")]
    assert len(lines) == 1 and err.count("robustart: error:") == 1, err
    assert match in lines[0], err
    assert "Traceback" not in err
    return lines[0]


def fake_lightning_checkpoint(model: nn.Module, path: Path) -> Path:
    """Save a ResNet-20 the way ``robustart fit`` does (what ``load_model`` reads)."""
    info = {"model": "resnet20", "num_classes": 10, "in_channels": 3}
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "hyper_parameters": dict(info), "robustart": info}, path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Bad files shared by the checkpoint cases."""
    folder = tmp_path_factory.mktemp("bad_files")
    rng = np.random.default_rng(0)
    random_bytes = folder / "random.ckpt"
    random_bytes.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (folder / "random.safetensors").write_bytes(random_bytes.read_bytes())
    import timm

    resnet18 = folder / "resnet18.pt"  # a plain state dict of another architecture
    torch.save(timm.create_model("resnet18", num_classes=10).state_dict(), resnet18)
    a_file = folder / "a_file"
    a_file.write_text("not a folder\n")
    return {
        "random": random_bytes,
        "random_safetensors": folder / "random.safetensors",
        "resnet18": resnet18,
        "file": a_file,
    }


@pytest.fixture(scope="module")
def cifar101_root(tmp_path_factory) -> Path:
    """A 4-image CIFAR-10.1 (the real file layout) for ``robustart shift -b cifar10.1``."""
    root = tmp_path_factory.mktemp("cifar10.1")
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    np.save(root / "cifar10.1_v6_data.npy", images)
    np.save(root / "cifar10.1_v6_labels.npy", np.array([0, 1, 2, 3]))
    return root


# ============================================================================= datasets
def test_train_and_val_class_folders_that_differ_are_refused(tmp_path):
    """Labels are positions in the sorted folder list: val's 'dog' would silently get the
    label of train's 'cow'. (Before: val labels remapped by position, no error.)"""
    class_tree(tmp_path / "train", ["cat", "cow"])
    class_tree(tmp_path / "val", ["cat", "dog"])
    data = ImageFolderDataModule(str(tmp_path), image_size=8, resize_size=8, num_workers=0)
    data.dataset("train")  # the reference split itself is fine
    with pytest.raises(DatasetNotFoundError, match="differ") as info:
        data.dataset("val")
    message = str(info.value)
    assert "only in" in message and "dog" in message and "cow" in message


def test_a_test_split_must_match_the_training_classes(tmp_path):
    class_tree(tmp_path / "train", ["a", "b"])
    class_tree(tmp_path / "val", ["a", "b"])
    class_tree(tmp_path / "test", ["a", "c"])
    data = ImageFolderDataModule(str(tmp_path), image_size=8, resize_size=8, num_workers=0)
    assert len(data.dataset("val")) == 4  # the same classes in both: fine
    with pytest.raises(DatasetNotFoundError, match=r"only in .*test: c"):
        data.dataset("test")


def test_empty_class_folder_in_an_image_folder_tree_is_named(tmp_path):
    """Before: torchvision's FileNotFoundError (a traceback on the command line)."""
    class_tree(tmp_path / "train", ["a", "b"])
    (tmp_path / "train" / "c_empty").mkdir()
    (tmp_path / "train" / "c_empty" / "notes.txt").write_text("no images here")
    data = ImageFolderDataModule(str(tmp_path), image_size=8, resize_size=8, num_workers=0)
    with pytest.raises(DatasetNotFoundError, match="hold no image files") as info:
        data.dataset("train")
    assert "c_empty" in str(info.value)


def test_empty_class_folder_tree_is_refused(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "val").mkdir()
    with pytest.raises(DatasetNotFoundError, match="no class folders"):
        ImageFolderDataModule(str(tmp_path), image_size=8, num_workers=0)
    data = ImageFolderDataModule(str(tmp_path), image_size=8, num_classes=2, num_workers=0)
    with pytest.raises(DatasetNotFoundError, match="no class folders"):
        data.dataset("val")


@pytest.mark.parametrize("layout", ["wnid", "imagenet_v2"])
def test_empty_class_folder_in_a_shift_dataset_is_named(tmp_path, layout):
    """Before: the class silently had no images (folders.py only refused all-empty trees)."""
    if layout == "wnid":
        class_tree(tmp_path, ["n01440764", "n01443537"])
        (tmp_path / "n01484850").mkdir()
        with pytest.raises(DatasetNotFoundError, match="n01484850"):
            WnidFolderDataset(tmp_path, to_float_transform())
    else:
        class_tree(tmp_path, ["0", "1"])
        (tmp_path / "7").mkdir()
        with pytest.raises(DatasetNotFoundError, match=r"hold no image files .*: 7"):
            ImageNetV2(tmp_path)


@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_truncated_image_names_the_file_when_read(tmp_path, ext):
    """Before: PIL's bare ``OSError: image file is truncated``, no file name."""
    good = write_image(tmp_path / f"good.{ext}")
    bad = truncate(write_image(tmp_path / f"bad.{ext}", seed=1))
    dataset = ImageFileDataset([(good, 0), (bad, 1)], to_float_transform())
    assert dataset[0][0].shape == (3, 12, 10)
    with pytest.raises(CorruptImageError, match="truncated") as info:
        dataset[1]
    assert str(bad) in str(info.value)
    with pytest.raises(CorruptImageError, match=str(bad)):  # through a DataLoader
        list(DataLoader(dataset, batch_size=2, num_workers=0))


def test_corrupt_image_error_survives_a_dataloader_worker(tmp_path):
    """torch re-raises a worker's exception as ``type(exc)(text_with_traceback)``: the class
    must take one string, and the text must still name the file."""
    bad = truncate(write_image(tmp_path / "bad.png"))
    dataset = ImageFileDataset([(bad, 0)], to_float_transform())
    batches = iter(DataLoader(dataset, num_workers=1))
    try:
        with pytest.raises(CorruptImageError) as info:
            next(batches)
    finally:  # stop the worker now: the traceback keeps the iterator alive, and its
        batches._shutdown_workers()  # garbage collection would later wait 5 s for the worker
    assert isinstance(info.value, RobustartError)
    message = str(info.value)
    assert message.startswith("Caught CorruptImageError in DataLoader worker process 0.")
    last = message.strip().splitlines()[-1]
    assert last.startswith("robustart.errors.CorruptImageError: cannot read image ")
    assert str(bad) in last


def test_non_image_file_with_an_image_extension_is_named(tmp_path):
    """In a training split it is found when read; in an evaluation split when the split is
    opened (before: after the first training epoch, at the first validation)."""
    class_tree(tmp_path / "train", ["a", "b"])
    class_tree(tmp_path / "val", ["a", "b"])
    fake = tmp_path / "train" / "b" / "zz_fake.jpg"
    fake.write_text("<html>404 not found</html>")
    data = ImageFolderDataModule(str(tmp_path), image_size=8, resize_size=8, num_workers=0)
    dataset = data.dataset("train")
    index = [str(p) for p, _ in dataset.samples].index(str(fake))
    with pytest.raises(CorruptImageError, match="not an image") as info:
        dataset[index]
    assert str(fake) in str(info.value)
    assert len(data.dataset("val")) == 4
    for name in ("zz_fake.jpg", "zz_empty.png"):
        (tmp_path / "val" / "a" / name).write_bytes(b"" if "empty" in name else b"<html>")
    data = ImageFolderDataModule(str(tmp_path), image_size=8, resize_size=8, num_workers=0)
    with pytest.raises(CorruptImageError, match=r"2 of the 6 val images .* cannot be read") as info:
        data.setup("fit")
    assert "zz_fake.jpg (UnidentifiedImageError)" in str(info.value)


def test_truncated_file_in_the_system_noise_benchmark_is_named(tmp_path):
    good = write_image(tmp_path / "a" / "good.jpg", size=(40, 40))
    bad = truncate(write_image(tmp_path / "a" / "bad.jpg", seed=3, size=(40, 40)))
    model = create_model("resnet20", num_classes=1).eval()
    with pytest.raises(CorruptImageError, match=str(bad)):
        evaluate_system_noise(
            model, [(good, 0), (bad, 0)], jpeg_quality_variants((50,)), crop_size=8
        )


# ============================================================================= image tensors
def _entry_points():
    """Every public function taking an image batch: ``name → call(images)``."""
    model = Linear()
    labels = torch.zeros(8, dtype=torch.long)
    return {
        "corrupt": lambda x: corrupt(x, "contrast", 1),
        "attack": lambda x: create_attack("fgsm", eps="8/255")(model, x, labels),
        "perturbation": lambda x: perturb(x, "translate"),
        "cifar_system_noise": lambda x: evaluate_cifar_system_noise(model, x, labels),
        "gallery": lambda x: corruption_gallery_figure(x, ["contrast"], severities=[1]),
        "minimal_eps": lambda x: MinimalEpsilonSearch("fgsm", eps_max=0.1)(model, x, labels),
        "transfer": lambda x: evaluate_transfer(
            {"m": model}, x, labels, create_attack("fgsm", eps="8/255")
        ),
    }


@pytest.mark.parametrize("entry", list(_entry_points()))
def test_channels_last_images_are_refused_by_every_entry_point(entry):
    """(8, 8, 8, 3) is NHWC: treated as 8 channels of 8×3 pixels it gives a number that means
    nothing."""
    images = torch.rand(8, 8, 8, 3)
    with pytest.raises(InputRangeError, match="channels-last"):
        _entry_points()[entry](images)


@pytest.mark.parametrize(
    ("images", "match"),
    [
        ((torch.rand(4, 3, 8, 8) * 255).to(torch.uint8), "float tensor"),
        (torch.rand(4, 3, 8, 8) * 255, r"must lie in \[0, 1\]"),
        (torch.rand(3 * 8 * 8), "shape"),
        (torch.full((4, 3, 8, 8), math.nan), "NaN"),
    ],
    ids=["uint8", "0-255 floats", "1-d", "nan pixels"],
)
@pytest.mark.parametrize("entry", ["corrupt", "attack"])
def test_images_that_are_not_float_nchw_in_0_1_are_refused(entry, images, match):
    with pytest.raises(InputRangeError, match=match):
        _entry_points()[entry](images)


@pytest.mark.parametrize(
    "name", ["saturate", "brightness", "contrast", "snow", "jpeg_compression", "fog"]
)
def test_rgba_images_are_refused_by_colour_corruptions(name):
    """Before: saturate/snow raised a shape RuntimeError, jpeg an OSError, and brightness,
    contrast and fog silently treated the alpha channel as a colour."""
    rgba = torch.rand(2, 4, 16, 16)
    with pytest.raises(InputRangeError, match=r"1 \(grey\) or 3 \(RGB\) channels") as info:
        corrupt(rgba, name, 3)
    assert "images[:, :3]" in str(info.value)
    grey = corrupt(torch.rand(2, 1, 16, 16), name, 3)  # grey keeps working
    assert grey.shape == (2, 1, 16, 16)


def test_rgba_images_are_refused_by_perturbations():
    with pytest.raises(InputRangeError, match="alpha"):
        perturb(torch.rand(1, 4, 16, 16), "snow")


@pytest.mark.parametrize("severity", [0, 6, 2.5, True])
def test_severity_outside_1_to_5_is_refused(severity):
    with pytest.raises(ConfigError, match="severity must be an integer from 1 to 5"):
        corrupt(torch.rand(1, 3, 8, 8), "gaussian_noise", severity)


@pytest.mark.parametrize("eps", [-0.1, "-8/255", math.nan, "nan", math.inf])
def test_negative_or_nan_eps_is_refused(eps):
    with pytest.raises(ConfigError, match="eps"):
        create_attack("pgd", eps=eps)
    images, labels = tiny_batch()
    attack = create_attack("fgsm")
    with pytest.raises(ConfigError, match="eps"):  # as the budget of one call
        attack(Linear(), images, labels, eps=eps)
    if not isinstance(eps, str):
        with pytest.raises(ConfigError, match="eps"):  # as one image's budget
            attack(Linear(), images, labels, eps=torch.tensor([0.1, 0.1, eps, 0.1]))


@pytest.mark.parametrize(
    ("make", "suggestion"),
    [
        (lambda: create_attack("pgdd"), "pgd"),
        (lambda: corrupt(torch.rand(1, 3, 8, 8), "gausian_noise", 1), "gaussian_noise"),
        (lambda: perturb(torch.rand(1, 3, 8, 8), "rotat"), "rotate"),
    ],
    ids=["attack", "corruption", "perturbation"],
)
def test_unknown_names_suggest_close_matches(make, suggestion):
    with pytest.raises(UnknownNameError, match=f"Did you mean: {suggestion}"):
        make()


# ============================================================================= labels
ATTACKS = {
    "fgsm": {},
    "pgd": {"steps": 2},
    "apgd_t": {"steps": 2, "num_targets": 2},
    "square": {"queries": 3},
    "deepfool": {"steps": 2},
    "cw": {"steps": 2, "binary_steps": 1},
    "fab_t": {"steps": 2, "num_targets": 2},
    "autoattack": {"attacks": [{"name": "apgd", "steps": 2}]},
}


@pytest.mark.parametrize("label", [10, -1, -100])
@pytest.mark.parametrize("name", list(ATTACKS))
def test_labels_out_of_range_are_refused_by_attacks(name, label):
    """Before: deepfool and autoattack returned an accuracy of 0.0 for labels 10 / -1, fgsm,
    pgd and apgd_t too for -100 (cross-entropy's ignore index); the others raised IndexError
    or shape errors from inside the attack."""
    images, labels = tiny_batch()
    labels[2] = label
    attack = create_attack(name, eps="8/255", **ATTACKS[name])
    with pytest.raises(InputRangeError, match=r"must lie in \[0, 9\]|>= 0"):
        attack(Linear(), images, labels)


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (torch.tensor([0.0, 1.0, 2.0, 3.0]), "integer class indices"),
        (torch.tensor([0, 1, 2]), "shape"),
        (torch.softmax(torch.randn(4, 7), dim=1), "soft labels have 7 classes"),
        (torch.zeros(4, 10, dtype=torch.long), "soft labels"),
    ],
    ids=["float", "wrong length", "soft wrong width", "integer soft"],
)
def test_labels_of_the_wrong_type_or_shape_are_refused_by_attacks(labels, match):
    images, _ = tiny_batch()
    with pytest.raises(RobustartError, match=match):
        create_attack("pgd", steps=1)(Linear(), images, labels)


def test_grey_batch_to_an_rgb_model_is_refused_in_an_attack(standard):
    """Before: (N, 1, H, W) broadcast against the 3-channel normalisation and was attacked as
    a grey RGB image, with a plausible robust accuracy."""
    model, images, labels = standard
    grey = images[:4].mean(dim=1, keepdim=True)
    with pytest.raises(InputRangeError, match=r"takes \(N, 3, H, W\) images"):
        create_attack("pgd", steps=1)(model, grey, labels[:4])


# ============================================================================= metrics
def test_nan_logits_are_refused_by_calibration_metrics():
    """Before: ECE = nan (NaN confidences fell into the first bin)."""
    logits, labels = torch.randn(6, NUM_CLASSES), torch.arange(6)
    logits[3, 2] = math.nan
    with pytest.raises(NonFiniteError, match="NaN or infinite for 1 of 6"):
        expected_calibration_error_from_scores(logits, labels)
    with pytest.raises(NonFiniteError):
        CalibrationError().update(logits, labels)


@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric")
def test_empty_or_mislabelled_input_to_calibration_is_refused():
    with pytest.raises(EmptyInputError, match="empty"):
        expected_calibration_error_from_scores(torch.empty(0, 10), torch.empty(0, dtype=torch.long))
    with pytest.raises(EmptyInputError):
        CalibrationError().compute()
    with pytest.raises(InputRangeError, match=r"\[0, 9\]"):  # before: scored as wrong
        expected_calibration_error_from_scores(torch.randn(3, 10), torch.tensor([0, 10, 2]))


def test_nan_logits_and_empty_scores_are_refused_by_ood_metrics():
    logits = torch.randn(4, NUM_CLASSES)
    logits[0] = math.inf
    with pytest.raises(NonFiniteError):
        max_softmax_anomaly_score(logits)
    with pytest.raises(NonFiniteError, match="anomaly scores"):
        ood_detection_scores(torch.tensor([-0.9, math.nan]), torch.tensor([-0.2, -0.3]))
    with pytest.raises(EmptyInputError, match="both"):
        ood_detection_scores(torch.tensor([-0.9]), torch.tensor([]))


@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric")
def test_nan_logits_are_refused_by_perturbation_metrics():
    sequences = torch.randn(2, 4, NUM_CLASSES)
    sequences[1, 2, 0] = math.nan
    with pytest.raises(NonFiniteError):
        FlipProbability(noise=False).update(sequences)
    with pytest.raises(EmptyInputError):
        FlipProbability(noise=False).compute()


# ============================================================================= evaluation loops
def test_transfer_refuses_nan_models_bad_labels_and_no_images():
    images, labels = tiny_batch()
    attack = create_attack("fgsm", eps="8/255")
    with pytest.raises(NonFiniteError, match="model 'broken'"):
        evaluate_transfer({"ok": Linear()}, images, labels, attack, targets={"broken": NaNModel()})
    with pytest.raises(InputRangeError, match=r"\[0, 9\]"):
        evaluate_transfer({"ok": Linear()}, images, torch.tensor([0, 1, 2, 10]), attack)
    with pytest.raises(EmptyInputError, match="0 images"):  # before: an accuracy of 0.0
        evaluate_transfer({"ok": Linear()}, images[:0], labels[:0], attack)


class SoftmaxModel(Linear):
    """A classifier that returns probabilities instead of logits."""

    def forward(self, images: Tensor) -> Tensor:
        return super().forward(images).softmax(dim=1)


def test_attacks_refuse_a_model_that_outputs_probabilities():
    """CE on probabilities masks the gradients: the robust accuracy would be overstated.
    (Before: reported.) Accuracy-only suites, and log-probabilities, are fine."""
    images, labels = tiny_batch()
    attack = create_attack("fgsm", eps="8/255")
    with pytest.raises(InputRangeError, match="model 'probs' on the clean images are prob"):
        evaluate_transfer({"probs": SoftmaxModel()}, images, labels, attack)
    evaluate_transfer({"ok": Linear()}, images, labels, attack, targets={"probs": SoftmaxModel()})
    attacks = RobustnessSuite(attacks=[{"name": "fgsm", "eps": ["8/255"]}])
    with pytest.raises(InputRangeError, match="are probabilities"):
        attacks.run_batch(SoftmaxModel(), images, labels, chunk_id=0)
    corruptions = RobustnessSuite(corruptions=["contrast"], severities=[1])
    corruptions.run_batch(SoftmaxModel(), images, labels, chunk_id=0)

    class LogSoftmaxModel(Linear):
        def forward(self, images: Tensor) -> Tensor:
            return super().forward(images).log_softmax(dim=1)

    attacks.run_batch(LogSoftmaxModel(), images, labels, chunk_id=0)


class NaNGradientModel(Linear):
    """Finite logits whose input gradient is NaN everywhere (an L2 norm of a zero vector)."""

    def forward(self, images: Tensor) -> Tensor:
        zero = images - images.detach()
        return super().forward(images) + zero.pow(2).sum().sqrt()


class NoGradientModel(Linear):
    """Logits computed without an autograd graph (a forward under ``torch.no_grad()``)."""

    def forward(self, images: Tensor) -> Tensor:
        with torch.no_grad():
            return super().forward(images)


def test_attacks_refuse_models_without_finite_input_gradients():
    """Gradient attacks on NaN input gradients, or on outputs without a graph, do not move the
    images: the robust accuracy reported was the clean one (100 % for correct predictions;
    before, only a warning, or a RuntimeError traceback). The gradient-free square attack and
    corruptions still run on them."""
    images, labels = tiny_batch()
    fgsm = create_attack("fgsm", eps="8/255")
    attacks = RobustnessSuite(attacks=[{"name": "pgd", "eps": ["8/255"], "steps": 2}])
    with pytest.raises(NonFiniteError, match="NaN or infinite for 4 of 4 images"):
        attacks.run_batch(NaNGradientModel(), images, labels, chunk_id=0)
    with pytest.raises(ConfigError, match="carry no gradient"):
        attacks.run_batch(NoGradientModel(), images, labels, chunk_id=0)
    for source in (NaNGradientModel(), NoGradientModel()):
        with pytest.raises((NonFiniteError, ConfigError), match="model 'src' on the clean"):
            evaluate_transfer({"src": source}, images, labels, fgsm)
        evaluate_transfer({"ok": Linear()}, images, labels, fgsm, targets={"src": source})
    square = RobustnessSuite(attacks=[{"name": "square", "eps": ["8/255"], "queries": 5}])
    corruptions = RobustnessSuite(corruptions=["contrast"], severities=[1])
    for model in (NaNGradientModel(), NoGradientModel()):
        square.run_batch(model, images, labels, chunk_id=0)
        corruptions.run_batch(model, images, labels, chunk_id=0)


class BatchStatisticsModel(Linear):
    """Logits centred and scaled by the batch's statistics (BatchNorm in training mode)."""

    def forward(self, images: Tensor) -> Tensor:
        logits = super().forward(images)
        return (logits - logits.mean(0)) / (logits.std(0) + 1e-5)


def test_models_whose_outputs_depend_on_the_batch_are_refused():
    """Their accuracy changed with --batch-size (90 % at 16, 97.5 % at 40) and a last batch of
    one image was a ValueError traceback; an ordinary model passes."""
    g = torch.Generator().manual_seed(0)
    images, labels = torch.rand(8, 3, 8, 8, generator=g), torch.arange(8) % NUM_CLASSES
    accuracy = RobustnessSuite(corruptions=["contrast"], severities=[1])
    with pytest.raises(InputRangeError, match="depend on the other images of the batch"):
        accuracy.run_batch(BatchStatisticsModel(), images, labels, chunk_id=0)
    with pytest.raises(InputRangeError, match="depend on the other images of the batch"):
        evaluate_classification(BatchStatisticsModel(), TensorDataset(images, labels))
    accuracy.run_batch(Linear(), images, labels, chunk_id=0)
    evaluate_classification(Linear(), TensorDataset(images, labels))
    # small batches too (before: --batch-size 2 or 3 skipped the check and scored 12.5 %, 6.2 %)
    for size in (2, 3):
        with pytest.raises(InputRangeError, match="depend on the other images of the batch"):
            accuracy.run_batch(BatchStatisticsModel(), images[:size], labels[:size], chunk_id=0)
        with pytest.raises(InputRangeError, match="depend on the other images of the batch"):
            evaluate_classification(
                BatchStatisticsModel(), TensorDataset(images, labels), batch_size=size
            )
    for size in (1, 2):
        with pytest.raises(InputRangeError, match="change from one run to the next"):
            accuracy.run_batch(DropoutOnModel(), images[:size], labels[:size], chunk_id=0)
        accuracy.run_batch(Linear(), images[:size], labels[:size], chunk_id=0)


class DropoutOnModel(Linear):
    """Dropout forced on in eval mode: every run of the same images is another draw."""

    def forward(self, images: Tensor) -> Tensor:
        return self.fc(F.dropout(images.flatten(1), 0.5, training=True))


class InPlaceNormalisingModel(Linear):
    """Normalises its input in place: the caller's images leave [0, 1]."""

    def forward(self, images: Tensor) -> Tensor:
        return super().forward(images.sub_(0.5).div_(0.25))


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (DropoutOnModel, "change from one run to the next"),
        (InPlaceNormalisingModel, "changes its input images in place"),
    ],
)
@pytest.mark.parametrize("attacks", [[], [{"name": "pgd", "eps": [2 / 255], "steps": 2}]])
def test_random_models_and_models_changing_their_input_are_refused(model, message, attacks):
    """Before: a dropout-on model was scored (one draw per number) or reported as batch
    dependent; an in-place normalising model ended in an autograd traceback under attacks and
    a batch-dependence message under corruptions alone."""
    g = torch.Generator().manual_seed(0)
    images, labels = torch.rand(8, 3, 8, 8, generator=g), torch.arange(8) % NUM_CLASSES
    suite = RobustnessSuite(attacks=attacks, corruptions=["contrast"], severities=[1])
    with pytest.raises(InputRangeError, match=message):
        suite.run_batch(model(), images.clone(), labels, chunk_id=0)
    with pytest.raises(InputRangeError, match=message):
        evaluate_classification(model(), TensorDataset(images.clone(), labels))
    suite.run_batch(Linear(), images, labels, chunk_id=0)  # a deterministic model passes


def test_classification_loop_refuses_nan_logits_bad_labels_and_no_images():
    images, labels = tiny_batch()
    with pytest.raises(NonFiniteError):  # before: accuracy 0.1, ECE nan
        evaluate_classification(NaNModel(), TensorDataset(images, labels))
    with pytest.raises(InputRangeError, match=r"\[0, 9\]"):
        evaluate_classification(Linear(), TensorDataset(images, labels + 7))
    with pytest.raises(EmptyInputError, match="no images"):
        evaluate_classification(Linear(), TensorDataset(images[:0], labels[:0]))


def test_200_class_restriction_checks_labels_against_the_restricted_logits():
    """ImageNet-A/R score a 1000-class model on 200 classes: subset labels 0..199 are right,
    ImageNet-1k indices (e.g. 500) are not and must not be scored as wrong predictions."""
    images, _ = tiny_batch()
    model = Linear(num_classes=1000)
    subset = imagenet_subset("imagenet_r")
    good = evaluate_classification(
        model,
        TensorDataset(images, torch.tensor([0, 50, 150, 199])),
        output_transform=subset.restrict,
    )
    assert 0.0 <= good["accuracy"] <= 1.0
    with pytest.raises(InputRangeError, match="200 classes"):
        evaluate_classification(
            model,
            TensorDataset(images, torch.tensor([0, 500, 1, 2])),
            output_transform=subset.restrict,
        )


def test_system_noise_loops_refuse_nan_models_bad_labels_and_no_images():
    images, labels = tiny_batch()
    with pytest.raises(NonFiniteError):
        evaluate_cifar_system_noise(NaNModel(), images, labels)
    with pytest.raises(InputRangeError, match=r"\[0, 9\]"):
        evaluate_cifar_system_noise(Linear(), images, torch.tensor([0, 1, 2, 12]))
    with pytest.raises(EmptyInputError):  # before: ZeroDivisionError
        evaluate_cifar_system_noise(Linear(), images[:0], labels[:0])


def test_minimal_eps_search_refuses_nan_models_bad_labels_and_no_images():
    images, labels = tiny_batch()
    search = MinimalEpsilonSearch("fgsm", eps_max=0.1, bisection_steps=1)
    with pytest.raises(NonFiniteError):
        search(NaNModel(), images, labels)
    with pytest.raises(InputRangeError, match=r"\[0, 9\]"):  # before: min eps 0 for it
        search(Linear(), images, torch.tensor([0, 1, 2, 10]))
    with pytest.raises(InputRangeError, match=">= 0"):
        search(Linear(), images, torch.tensor([0, 1, -1, 3]))
    with pytest.raises(EmptyInputError):  # before: an accuracy curve of NaN
        search(Linear(), images[:0], labels[:0])
    with pytest.raises(EmptyInputError):
        accuracy_curve(torch.empty(0), [0.0, 0.1])


def test_perturbation_loop_refuses_nan_models_and_no_sequences():
    videos = torch.rand(2, 3, 3, 8, 8)
    with pytest.raises(NonFiniteError):
        evaluate_perturbation_sequences(NaNModel(), videos, noise=False)
    with pytest.raises(EmptyInputError):
        evaluate_perturbation_sequences(Linear(), videos[:0], noise=False)


# ============================================================================= checkpoints
def test_random_bytes_are_not_a_checkpoint_and_weights_only_false_is_never_suggested(files):
    """Before: PyTorch's UnpicklingError text, which suggests ``weights_only=False``."""
    for path in (files["random"], files["random_safetensors"]):
        with pytest.raises(CheckpointError, match="not a checkpoint robustart can read") as info:
            load_checkpoint_file(path)
        assert "weights_only=False" not in str(info.value)
        assert "weights_only` set to `False" not in str(info.value)
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        create_model("resnet20", 10, weights=str(files["random"]))


def test_another_architectures_state_dict_is_refused_with_the_keys_summarised(files):
    with pytest.raises(CheckpointError, match="do not fit model 'resnet20'") as info:
        create_model("resnet20", 10, weights=str(files["resnet18"]))
    assert "missing keys" in str(info.value) and "unexpected keys" in str(info.value)


def test_cli_random_bytes_ckpt_path(capsys, files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = cli_error(
        capsys,
        "test",
        "--config",
        RECIPES / "digits" / "standard.yaml",
        "--config",
        FAST,
        "--ckpt_path",
        files["random"],
        match="not a checkpoint robustart can read",
    )
    assert "weights_only=False" not in line


@pytest.mark.parametrize(
    ("key", "match"),
    [("random", "not a checkpoint robustart can read"), ("resnet18", "missing keys")],
)
def test_cli_bad_initial_weights(capsys, files, tmp_path, monkeypatch, key, match):
    monkeypatch.chdir(tmp_path)
    cli_error(
        capsys,
        "fit",
        "--config",
        RECIPES / "digits" / "standard.yaml",
        "--config",
        FAST,
        "--model.init_args.weights",
        files[key],
        match=match,
    )


@pytest.mark.parametrize(
    ("key", "match"),
    [("random", "not a checkpoint robustart can read"), ("resnet18", "plain state dict")],
)
def test_cli_transfer_refuses_unreadable_and_plain_checkpoints(capsys, files, tmp_path, key, match):
    line = cli_error(
        capsys,
        "transfer",
        STANDARD,
        files[key],
        "--num-images",
        "4",
        "--output",
        tmp_path / "out",
        match=match,
    )
    assert "weights_only=False" not in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("key", "match"),
    [("random", "not a checkpoint robustart can read"), ("resnet18", "plain state dict")],
)
def test_cli_shift_refuses_unreadable_and_plain_checkpoints(
    capsys, files, tmp_path, cifar101_root, key, match
):
    cli_error(
        capsys,
        "shift",
        files[key],
        "--benchmark",
        "cifar10.1",
        "--data-root",
        cifar101_root,
        "--output",
        tmp_path / "out",
        "--no-progress",
        match=match,
    )


# ============================================================================= command lines
def test_cli_transfer_output_under_a_file_is_refused_before_loading(capsys, files, tmp_path):
    """A missing checkpoint shows that nothing was loaded before the output check.
    Before: NotADirectoryError traceback after the whole evaluation."""
    cli_error(
        capsys,
        "transfer",
        tmp_path / "missing.ckpt",
        "--output",
        files["file"] / "transfer",
        match="which is a file",
    )


def test_cli_shift_output_under_a_file_is_refused_before_loading(capsys, files, tmp_path):
    cli_error(
        capsys,
        "shift",
        tmp_path / "missing.ckpt",
        "--benchmark",
        "cifar10.1",
        "--data-root",
        tmp_path / "no_data",
        "--output",
        files["file"] / "shift",
        match="which is a file",
    )


def test_cli_shift_nan_model_gets_no_accuracy(capsys, tmp_path, cifar101_root):
    model = create_model("resnet20", 10)
    with torch.no_grad():
        model.backbone.fc.weight.fill_(math.nan)  # a diverged checkpoint
    broken = fake_lightning_checkpoint(model, tmp_path / "broken.ckpt")
    cli_error(
        capsys,
        "shift",
        broken,
        "--benchmark",
        "cifar10.1",
        "--data-root",
        cifar101_root,
        "--output",
        tmp_path / "out",
        "--no-progress",
        match="NaN or infinite",
    )
    assert not (tmp_path / "out").exists()


def test_cli_shift_labels_outside_the_models_classes(capsys, tmp_path):
    root = tmp_path / "cifar10.1"
    root.mkdir()
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    np.save(root / "cifar10.1_v6_data.npy", images)
    np.save(root / "cifar10.1_v6_labels.npy", np.array([0, 10, 2]))  # 10 is not a CIFAR class
    model = fake_lightning_checkpoint(create_model("resnet20", 10), tmp_path / "m.ckpt")
    args = [
        "--benchmark",
        "cifar10.1",
        "--data-root",
        root,
        "--output",
        tmp_path / "out",
        "--no-progress",
    ]
    cli_error(capsys, "shift", model, *args, match="outside the 10 classes [0, 9]")


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["transfer", "zoo:digits_resnet20_standrd", "--num-images", "4"], "no model zoo entry"),
        (
            ["shift", STANDARD, "--benchmark", "cifar10.1", "--data-root", "{tmp}/missing"],
            "not found",
        ),
        (
            [
                "shift",
                STANDARD,
                "--benchmark",
                "cifar10.1",
                "--data-root",
                "{tmp}",
                "--num-images",
                "0",
            ],
            ">= 1",
        ),
        (["shift", STANDARD, "--benchmark", "cifar10-cc", "--data-root", "{tmp}"], "Did you mean"),
    ],
    ids=["transfer unknown zoo", "shift missing root", "shift limit 0", "shift unknown name"],
)
def test_cli_bad_arguments(capsys, tmp_path, args, match):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    cli_error(capsys, *args, "--output", tmp_path / "out", match=match)


class TupleOutputModel(Linear):
    def forward(self, images: Tensor) -> tuple[Tensor, None]:
        return super().forward(images), None


class FlatOutputModel(Linear):
    def forward(self, images: Tensor) -> Tensor:
        return super().forward(images)[:, 0]


class PredictedClassModel(Linear):
    def forward(self, images: Tensor) -> Tensor:
        return super().forward(images).argmax(1, keepdim=True).expand(-1, NUM_CLASSES)


OUTPUT_ENTRY_POINTS = {
    "suite": lambda m, x, y: RobustnessSuite(
        attacks=[{"name": "pgd", "eps": ["8/255"], "steps": 2}], corruptions=["contrast"]
    ).run_batch(m, x, y, chunk_id=0),
    "classification": lambda m, x, y: evaluate_classification(m, TensorDataset(x, y)),
    "system_noise": lambda m, x, y: evaluate_cifar_system_noise(m, x, y),
    "transfer": lambda m, x, y: evaluate_transfer({"m": m}, x, y, create_attack("fgsm")),
    "minimal_eps": lambda m, x, y: MinimalEpsilonSearch("fgsm", eps_max=0.1, bisection_steps=1)(
        m, x, y
    ),
    "attack": lambda m, x, y: create_attack("pgd", steps=1)(m, x, y),
}


@pytest.mark.parametrize("entry", OUTPUT_ENTRY_POINTS)
@pytest.mark.parametrize(
    ("make", "match"),
    [
        (TupleOutputModel, "got a tuple"),
        (FlatOutputModel, r"shape \(N, classes\) = \((\d+), K\) .* got \(\1,\)"),
        (PredictedClassModel, "floating-point logits"),
        (lambda: Linear(num_classes=1), "one column per image"),
        (lambda: Linear().half(), "parameters are torch.float16"),
    ],
    ids=["tuple", "flat", "classes", "one_column", "half"],
)
def test_outputs_that_are_not_logits_and_half_models_are_refused(entry, make, match):
    """Before: AttributeError / IndexError / dtype RuntimeError tracebacks from every Python
    entry point, and for a one-column model 100 % everywhere (argmax of one column is 0, the
    labels were 0)."""
    images = torch.rand(8, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    labels = torch.zeros(8, dtype=torch.long)
    with pytest.raises(InputRangeError, match=match):
        OUTPUT_ENTRY_POINTS[entry](make(), images, labels)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_attacks_refuse_half_precision_images(dtype):
    """Before: the returned images left the ε-ball (bfloat16: 8.47/255 at ε = 8/255, 0.996/255
    at 0.5/255) through the final rounding to the images' dtype."""
    images, labels = tiny_batch()
    with pytest.raises(InputRangeError, match="float32"):
        create_attack("pgd", eps="8/255", steps=2)(Linear(), images.to(dtype), labels)


def test_a_corruption_that_leaves_the_images_unchanged_is_refused():
    """Defocus blur's severity-4 radius (1 px on 32-px images) scales to 0.875 px on 28-px
    images: only the centre tap is left and the images come back unchanged. Before: scored,
    the "corrupted" accuracy being the clean one (flattering the corruption mean)."""
    images = torch.rand(4, 3, 28, 28, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(4)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 28 * 28, NUM_CLASSES)).eval()
    suite = RobustnessSuite(corruptions=["defocus_blur"], severities=[3, 4])
    with pytest.raises(ConfigError, match="defocus_blur at severity 4 leaves these 28x28"):
        suite.run_batch(model, images, labels, chunk_id=0)
    RobustnessSuite(corruptions=["defocus_blur"], severities=[3]).run_batch(
        model, images, labels, chunk_id=0
    )


def test_column_labels_are_named_as_such():
    """Before: (N, 1) integer labels were refused as "soft labels must be float"."""
    images, labels = tiny_batch()
    with pytest.raises(InputRangeError, match=r"one class index per image, got \(4, 1\)"):
        create_attack("fgsm")(Linear(), images, labels[:, None])


class ExpectsPixels(nn.Module):
    """A trained model that expects 0-255 pixels: given [0, 1] images it sees near-black."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> Tensor:
        return self.model(images / 255)


def test_a_model_predicting_one_class_is_named_in_a_warning(trained_model, heldout):
    """Before: a model expecting 0-255 pixels scored the share of one class everywhere (clean,
    attacked, corrupted), silently; the suite and the on-disk loop now warn once, naming the
    class and the likely causes. The trained model itself, and a batch of one label, pass."""
    from robustart.errors import RobustartWarning

    images, labels = heldout
    suite = RobustnessSuite(corruptions=["contrast"], severities=[1])
    broken = ExpectsPixels(trained_model).eval()
    with pytest.warns(RobustartWarning, match=r"predicts class \d+ for 100% of the clean images"):
        suite.run_batch(broken, images, labels, chunk_id=0)
    with pytest.warns(RobustartWarning, match="0-255 pixels or normalised inputs"):
        evaluate_classification(broken, TensorDataset(images, labels))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RobustartWarning)
        suite.run_batch(trained_model, images, labels, chunk_id=0)
        suite.run_batch(broken, images, labels, chunk_id=1)  # checked on the first chunk
        same = labels == labels[0]
        suite.run_batch(broken, images[same], labels[same], chunk_id=0)  # one label
