"""``robustart shift`` end to end on tiny fake datasets in the real on-disk layouts.

The models are the digits zoo networks saved as Lightning checkpoints (10 classes; for the
ImageNet benchmarks their classifier is spread over 10 of the 1000 ImageNet classes), so
accuracies are real and differ between subsets. Every number the command prints or writes is
compared with the Python function it wraps, run on the same files.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from single_thread import one_thread  # noqa: F401
from test_shift_datasets import write_images, write_video

from robustart.cli import SUBCOMMANDS
from robustart.cli.shift import build_parser
from robustart.corruptions.base import BENCHMARK_CORRUPTIONS
from robustart.data import (
    CIFAR10P,
    CIFAR101,
    IMAGENET_O_WNIDS,
    DigitsDataModule,
    ImageNetO,
    ImageNetOInDistribution,
    ImageNetP,
    ImageNetR,
    imagenet_subset,
)
from robustart.data.cifar import CIFAR10, UInt8ImageDataset, load_cifar_split
from robustart.data.folders import WnidFolderDataset, evaluation_transform
from robustart.data.imagenet_classes import imagenet_wnids
from robustart.evaluation.benchmarks import (
    BENCHMARKS,
    IMAGENET_MODELS,
    evaluate_cifar_system_noise,
    evaluate_classification,
    evaluate_corruption_files,
    evaluate_ood,
    evaluate_perturbation_sequences,
    evaluate_system_noise,
)
from robustart.evaluation.loop import limit_dataset
from robustart.main import cli_main
from robustart.metrics import (
    accuracies_to_errors,
    mean_flip_rate,
    mean_top5_distance_rate,
    summarize_report,
)
from robustart.models import create_model
from robustart.models.loading import load_model
from robustart.system_noise import imagenet_s_variants, jpeg_quality_variants

pytestmark = pytest.mark.usefixtures("one_thread")

STANDARD, PGD_AT = "zoo:digits_resnet20_standard", "zoo:digits_resnet20_pgd_at"
CIFAR10_DATA = (10, 3, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))


# ----------------------------------------------------------------------------- fakes
def _checkpoint(model: torch.nn.Module, path: Path, num_classes: int = 10) -> str:
    """Save ``model`` the way ``robustart fit`` does (what load_model reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    info = {"model": "resnet20", "num_classes": num_classes, "in_channels": 3}
    torch.save(
        {
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
            "hyper_parameters": dict(info),
            "robustart": info,
        },
        path,
    )
    return str(path)


def _as_imagenet(model: torch.nn.Module) -> torch.nn.Module:
    """A 1000-class copy of a digits model: digit d is ImageNet-R's d-th class (also one of
    ImageNet-O's classes for d < 3: see ``_imagenet_digit_wnids``); other classes never win."""
    wide = create_model("resnet20", 1000)
    state = {k: v for k, v in model.state_dict().items() if "fc" not in k}
    weight = torch.zeros(1000, 64)
    bias = torch.full((1000,), -100.0)
    indices = imagenet_subset("imagenet_r").indices[:10]
    weight[indices] = model.state_dict()["backbone.fc.weight"]
    bias[indices] = model.state_dict()["backbone.fc.bias"]
    wide.load_state_dict({**state, "backbone.fc.weight": weight, "backbone.fc.bias": bias})
    return wide.eval()


@pytest.fixture(scope="module")
def digits_data():
    """Mean/std of the digits and 60 held-out test digits as uint8 HWC and labels."""
    data = DigitsDataModule()
    images, labels = data.dataset("test")[:60]
    pixels = (images * 255).round().byte().permute(0, 2, 3, 1).numpy()
    return data, pixels, labels.numpy()


@pytest.fixture(scope="module")
def checkpoints(digits_data, tmp_path_factory):
    """``{"standard", "pgd_at", "imagenet"}`` → checkpoint path."""
    data, _, _ = digits_data
    root = tmp_path_factory.mktemp("ckpt")
    models = {
        ref[len("zoo:digits_resnet20_") :]: create_model(
            "resnet20", 10, mean=data.mean, std=data.std, weights=ref
        ).eval()
        for ref in (STANDARD, PGD_AT)
    }
    paths = {
        name: _checkpoint(m, root / f"digits_{name}" / "version_0" / "checkpoints" / "last.ckpt")
        for name, m in models.items()
    }
    paths["imagenet"] = _checkpoint(_as_imagenet(models["standard"]), root / "imagenet.ckpt", 1000)
    return paths


def _load(path: str, data=CIFAR10_DATA) -> torch.nn.Module:
    return load_model(path, *data)


def imagenet_sized(pixels: np.ndarray) -> Image.Image:
    """A 32-px digit tiled to 256 px so that the 224-px centre crop of the ImageNet transform
    starts on a tile: the digits model then sees its own scale (a single digit blown up to 224
    px is almost never recognised)."""
    return Image.fromarray(np.roll(np.tile(pixels, (8, 8, 1)), 16, axis=(0, 1)))


def _folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_cifar_c(root: Path, pixels: np.ndarray, labels: np.ndarray, names) -> Path:
    """CIFAR-10-C layout; corruption k at severity s adds Gaussian noise of σ = 14·s·(1 + k % 3)
    (uint8), so accuracy falls with severity and differs between corruptions."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for k, name in enumerate(names):
        stack = [
            np.clip(pixels + rng.normal(0, 14 * s * (1 + k % 3), pixels.shape), 0, 255)
            for s in range(1, 6)
        ]
        np.save(root / f"{name}.npy", np.concatenate(stack).astype(np.uint8))
    np.save(root / "labels.npy", np.tile(labels, 5))
    return root


def write_cifar10_test_batch(root: Path, pixels: np.ndarray, labels: np.ndarray) -> Path:
    """``root/cifar-10-batches-py/test_batch`` in the official pickle format."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batch = {
        b"data": pixels.transpose(0, 3, 1, 2).reshape(len(pixels), -1),
        b"labels": list(labels),
    }
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(batch, f, protocol=2)
    return root


def run(capsys, *args) -> tuple[str, str]:
    assert cli_main(["shift", *map(str, args)]) == 0
    captured = capsys.readouterr()
    return captured.out, captured.err


def results_of(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


# ----------------------------------------------------------------------------- -C
def test_cifar10_c_numbers_files_and_mce_match_the_python_functions(
    digits_data, checkpoints, tmp_path, capsys
):
    _, pixels, labels = digits_data
    root = write_cifar_c(tmp_path / "CIFAR-10-C", pixels[:4], labels[:4], BENCHMARK_CORRUPTIONS)
    clean_root = write_cifar10_test_batch(tmp_path / "cifar", pixels[:4], labels[:4])
    out = tmp_path / "out"
    std, at = checkpoints["standard"], checkpoints["pgd_at"]
    printed, err = run(
        capsys, std, at, "--benchmark", "CIFAR10_C", "--data-root", root,
        "--clean-root", clean_root, "--baseline", std, "--batch-size", 16, "--output", out,
    )  # fmt: skip
    assert "batch" in err  # the progress bar
    summary = results_of(out)
    names = ["digits_standard/version_0:last", "digits_pgd_at/version_0:last"]
    assert list(summary["results"]) == names and summary["baseline"] == names[0]
    clean = UInt8ImageDataset(*load_cifar_split(clean_root, CIFAR10, train=False))
    reports = {}
    for name, path in zip(names, (std, at)):
        model = _load(path)
        accuracy = evaluate_classification(model, clean)["accuracy"]
        report, ece = evaluate_corruption_files(model, "cifar10-c", str(root), accuracy)
        reports[name] = report
        got = summary["results"][name]
        assert got["clean"] == accuracy and got["num_images"] == 4
        assert got["corruptions"] == {
            c: {str(s): a for s, a in curve.items()} for c, curve in report.corruptions.items()
        }
        assert got["ece"] == {c: {str(s): e for s, e in v.items()} for c, v in ece.items()}
    accuracies = [a for c in reports[names[1]].corruptions.values() for a in c.values()]
    assert len(set(accuracies)) >= 3  # real, varying numbers
    baseline = accuracies_to_errors(reports[names[0]].corruptions)
    for name in names:
        expected = summarize_report(reports[name], baseline, None)
        got = summary["results"][name]["summary"]
        assert got["mce"] == pytest.approx(expected["mce"])
        assert got["unnormalized_mce"] == pytest.approx(expected["unnormalized_mce"])
        assert got["relative_mce"] is None  # only with AlexNet's reference table
    assert summary["results"][names[0]]["summary"]["mce"] == pytest.approx(100.0)
    # the printed and written tables hold the same numbers
    row = summary["table"]["rows"][1]
    assert summary["table"]["headers"] == [
        "model", "images", "clean", "mean acc", "unnorm. mCE", f"mCE vs {names[0]}",
    ]  # fmt: skip
    assert row[-1] == pytest.approx(summary["results"][names[1]]["summary"]["mce"])
    markdown = (out / "results.md").read_text()
    assert f"| {names[1]} | 4 |" in markdown and f"{row[-1]:.1f}" in markdown
    assert f"{row[-1]:.1f}" in printed.splitlines()[-3] and "mCE vs" in printed
    assert "| s1 | s2 | s3 | s4 | s5 | mean | CE |" in markdown
    csv = (out / "results.csv").read_text().splitlines()
    assert csv[0].startswith("model,images,clean") and csv[2].startswith(names[1])
    assert (out / "corruption_heatmap.png").stat().st_size > 1000


def test_cifar10_c_limit_subsets_and_severities(digits_data, checkpoints, tmp_path, capsys):
    _, pixels, labels = digits_data
    root = write_cifar_c(tmp_path / "c", pixels[:10], labels[:10], ["fog", "contrast", "snow"])
    out = tmp_path / "out"
    printed, _ = run(
        capsys, checkpoints["pgd_at"], "--benchmark", "cifar10-c", "--data-root", root,
        "--num-images", 4,
        "--subsets", "fog,snow", "--severities", "2,5", "--no-progress", "--output", out,
    )  # fmt: skip
    report, _ = evaluate_corruption_files(
        _load(checkpoints["pgd_at"]), "cifar10-c", str(root), float("nan"),
        corruptions=["fog", "snow"], severities=[2, 5], num_images=4,
    )  # fmt: skip
    result = results_of(out)["results"]["digits_pgd_at/version_0:last"]
    assert result["num_images"] == 4 and result["clean"] is None
    assert result["corruptions"] == {
        c: {str(s): a for s, a in v.items()} for c, v in report.corruptions.items()
    }
    mean = 100 * result["summary"]["mean_corruption_accuracy"]
    assert result["summary"]["mce"] is None  # no baseline for CIFAR unless one is named
    assert f"{mean:.1f}" in printed and "clean accuracy needs --clean-root" in printed


def test_imagenet_c_with_alexnet_reference_and_clean_val(
    digits_data, checkpoints, tmp_path, capsys
):
    _, pixels, labels = digits_data
    wnids = imagenet_subset("imagenet_r").wnids  # where the 1000-class model keeps the digits
    rng = np.random.default_rng(0)
    for i in range(3):
        wnid = wnids[int(labels[i])]
        imagenet_sized(pixels[i]).save(_folder(tmp_path / "val" / wnid) / f"{i}.png")
        for severity in (1, 2):  # ImageNet-C files are 224 px already: no resize, no crop
            tiles = np.tile(pixels[i], (7, 7, 1)) + rng.normal(0, 40 * severity, (224, 224, 3))
            image = Image.fromarray(np.clip(tiles, 0, 255).astype(np.uint8))
            image.save(_folder(tmp_path / "ImageNet-C" / "fog" / str(severity) / wnid) / f"{i}.png")
    out = tmp_path / "out"
    printed, _ = run(
        capsys, checkpoints["imagenet"], "--benchmark", "imagenet-c",
        "--data-root", tmp_path / "ImageNet-C",
        "--clean-root", tmp_path / "val", "--subsets", "fog", "--severities", "1,2",
        "--no-progress", "--output", out,
    )  # fmt: skip
    model = load_model(checkpoints["imagenet"], 1000, 3, IMAGENET_MODELS.mean, IMAGENET_MODELS.std)
    clean = evaluate_classification(
        model, WnidFolderDataset(tmp_path / "val", evaluation_transform())
    )
    report, _ = evaluate_corruption_files(
        model, "imagenet_c", str(tmp_path / "ImageNet-C"), clean["accuracy"], ["fog"], [1, 2]
    )
    expected = summarize_report(report)  # AlexNet's errors by default
    got = results_of(out)
    assert got["baseline"] == "alexnet"
    result = got["results"]["imagenet"]
    assert result["clean"] == clean["accuracy"] and result["num_images"] == 3
    assert result["corruptions"] == {
        "fog": {str(s): a for s, a in report.corruptions["fog"].items()}
    }
    assert result["summary"]["ce"] == pytest.approx(expected["ce"])
    assert result["summary"]["mce"] is None  # 14 benchmark corruptions missing
    assert "normalised by AlexNet" in printed and "rel. mCE" in printed
    # clean images of another class than the -C set's: the clean accuracy and the relative
    # mCE would compare other images (before: scored)
    other = next(w for w in imagenet_wnids() if w not in {wnids[int(k)] for k in labels[:3]})
    imagenet_sized(pixels[5]).save(_folder(tmp_path / "val" / other) / "5.png")
    _expect_error(
        capsys, checkpoints["imagenet"], "--benchmark", "imagenet-c",
        "--data-root", tmp_path / "ImageNet-C", "--subsets", "fog", "--severities", "1,2",
        "--clean-root", tmp_path / "val", "--output", tmp_path / "out2",
        match="are not the images the set corrupts (4 clean vs 3 per subset",
    )  # fmt: skip


# ----------------------------------------------------------------------------- natural shift
def test_cifar10_1_and_imagenet_r_accuracy(digits_data, checkpoints, tmp_path, capsys):
    _, pixels, labels = digits_data
    root = tmp_path / "cifar10.1"
    root.mkdir()
    np.save(root / "cifar10.1_v6_data.npy", pixels[:30])
    np.save(root / "cifar10.1_v6_labels.npy", labels[:30])
    out = tmp_path / "out"
    printed, _ = run(
        capsys, checkpoints["standard"], "--benchmark", "cifar10.1", "--data-root", root,
        "--num-images", 9,
        "--names", "std", "--no-progress", "--output", out,
    )  # fmt: skip
    expected = evaluate_classification(
        _load(checkpoints["standard"]), limit_dataset(CIFAR101(root), 9)
    )
    assert results_of(out)["results"]["std"] == expected
    assert f"{100 * expected['accuracy']:.1f}" in printed and expected["num_images"] == 9

    # ImageNet-R: digit d in the folder of ImageNet-R's d-th class, logits restricted to 200
    subset = imagenet_subset("imagenet_r")
    for i in range(10):
        folder = tmp_path / "imagenet-r" / subset.wnids[int(labels[i])]
        folder.mkdir(parents=True, exist_ok=True)
        imagenet_sized(pixels[i]).save(folder / f"{i}.png")
    r_options = ["--benchmark", "imagenet-r", "--data-root", tmp_path / "imagenet-r"]
    _expect_error(capsys, checkpoints["imagenet"], *r_options, "--output", out,
                  match="--allow-missing-classes")  # a partial copy  # fmt: skip
    printed, _ = run(
        capsys, checkpoints["imagenet"], *r_options, "--allow-missing-classes",
        "--no-progress", "--output", out,
    )  # fmt: skip
    present = len(set(labels[:10].tolist()))
    assert f"Partial copy (--allow-missing-classes): {present} of its 200 classes" in printed
    data = ImageNetR(tmp_path / "imagenet-r", allow_missing_classes=True)
    model = load_model(checkpoints["imagenet"], 1000, 3, IMAGENET_MODELS.mean, IMAGENET_MODELS.std)
    expected = evaluate_classification(model, data, output_transform=data.subset.restrict)
    expected |= {"classes_present": present, "classes": 200}
    assert results_of(out)["results"]["imagenet"] == expected
    assert 0.3 < expected["accuracy"] < 1


def test_imagenet_o_detection_scores(checkpoints, tmp_path, capsys):
    val, ood = tmp_path / "val", tmp_path / "imagenet-o"
    for k, wnid in enumerate(IMAGENET_O_WNIDS[:2]):
        write_images(val / wnid, 2, seed=k)
        write_images(ood / wnid, 2, seed=10 + k)
    write_images(val / "n01440764", 1, seed=5)  # not an ImageNet-O class: skipped
    out = tmp_path / "out"
    printed, _ = run(
        capsys, checkpoints["imagenet"], "--benchmark", "imagenet-o", "--data-root", ood,
        "--clean-root", val, "--allow-missing-classes",
        "--no-progress", "--output", out,
    )  # fmt: skip
    model = load_model(checkpoints["imagenet"], 1000, 3, IMAGENET_MODELS.mean, IMAGENET_MODELS.std)
    out_data = ImageNetO(ood, allow_missing_classes=True)
    in_data = ImageNetOInDistribution(val, allow_missing_classes=True)
    expected = evaluate_ood(model, in_data, out_data, output_transform=out_data.subset.restrict)
    got = results_of(out)["results"]["imagenet"]
    assert got == {**expected, "num_in": 4, "num_out": 4, "classes_present": 2, "classes": 200}
    assert f"{100 * expected['auroc']:.1f}" in printed


# ----------------------------------------------------------------------------- -P
def test_cifar10_p_flip_rates_relative_to_a_baseline(digits_data, checkpoints, tmp_path, capsys):
    _, pixels, _ = digits_data
    root = tmp_path / "CIFAR-10-P"
    root.mkdir()
    frames = np.arange(6)
    shifted = np.stack([np.roll(pixels[:8], 3 * f, axis=2) for f in frames], axis=1)
    np.save(root / "translate.npy", shifted)
    rng = np.random.default_rng(0)
    noisy = pixels[:8, None] + rng.normal(0, 30, (8, 6, 32, 32, 3)) * frames[:, None, None, None]
    np.save(root / "gaussian_noise.npy", np.clip(noisy, 0, 255).astype(np.uint8))
    out = tmp_path / "out"
    std, at = checkpoints["standard"], checkpoints["pgd_at"]
    printed, _ = run(
        capsys, std, at, "--benchmark", "cifar10-p", "--data-root", root, "--names", "std,at",
        "--baseline", "std", "--batch-size", 24, "--no-progress", "--output", out,
    )  # fmt: skip
    results = results_of(out)["results"]
    measured = {}
    for name, path in (("std", std), ("at", at)):
        model = _load(path)
        measured[name] = {
            p: evaluate_perturbation_sequences(model, CIFAR10P(root, p), CIFAR10P(root, p).noise)
            for p in ("gaussian_noise", "translate")
        }
        assert results[name]["perturbations"] == measured[name]
    fp = {n: {p: v["flip_probability"] for p, v in m.items()} for n, m in measured.items()}
    t5 = {n: {p: v["top5_distance"] for p, v in m.items()} for n, m in measured.items()}
    assert results["at"]["mean_flip_rate"] == pytest.approx(mean_flip_rate(fp["at"], fp["std"]))
    assert results["at"]["mean_top5_distance_rate"] == pytest.approx(
        mean_top5_distance_rate(t5["at"], t5["std"])
    )
    assert results["std"]["mean_flip_rate"] == pytest.approx(100.0)
    assert 0 < fp["std"]["gaussian_noise"] < 1
    assert f"{results['at']['mean_flip_rate']:.1f}" in printed
    assert (out / "flip_probability.png").is_file()
    # a baseline that is not among the models is evaluated as well
    run(capsys, at, "--benchmark", "cifar10-p", "--data-root", root, "--names", "at",
        "--baseline", std, "--no-progress", "--output", out)  # fmt: skip
    again = results_of(out)
    assert list(again["results"]) == ["at", "digits_standard/version_0:last"]
    assert again["results"]["at"]["mean_flip_rate"] == results["at"]["mean_flip_rate"]


def test_imagenet_p_flip_rates_from_videos(digits_data, checkpoints, tmp_path, capsys):
    """ImageNet-P's layout (one mp4 per sequence in class folders): the command's numbers are
    those of the Python function on the same decoded videos, for two 1000-class models."""
    data, pixels, _ = digits_data
    root = tmp_path / "ImageNet-P"
    rng = np.random.default_rng(0)
    for i in range(6):  # 6 sequences of 6 frames per perturbation, in two class folders
        wnid = ("n01440764", "n01443537")[i % 2]
        shifted = np.stack([np.roll(pixels[i], 3 * f, axis=1) for f in range(6)])
        write_video(root / "translate" / wnid / f"{i}.mp4", shifted)
        noise = rng.normal(0, 30, (6, 32, 32, 3)) * np.arange(6)[:, None, None, None]
        noisy = np.clip(pixels[i] + noise, 0, 255).astype(np.uint8)
        write_video(root / "gaussian_noise" / wnid / f"{i}.mp4", noisy)
    pgd = create_model("resnet20", 10, mean=data.mean, std=data.std, weights=PGD_AT).eval()
    std = checkpoints["imagenet"]
    at = _checkpoint(_as_imagenet(pgd), tmp_path / "imagenet_at.ckpt", 1000)
    out = tmp_path / "out"
    printed, _ = run(
        capsys, std, at, "--benchmark", "imagenet-p", "--data-root", root, "--names", "std,at",
        "--baseline", "std", "--batch-size", 12, "--no-progress", "--output", out,
    )  # fmt: skip
    results = results_of(out)["results"]
    fp = {}
    for name, path in (("std", std), ("at", at)):
        model = load_model(path, 1000, 3, IMAGENET_MODELS.mean, IMAGENET_MODELS.std)
        measured = {}
        for p in ("gaussian_noise", "translate"):
            sequences = ImageNetP(root, p)
            measured[p] = evaluate_perturbation_sequences(model, sequences, sequences.noise)
        assert results[name]["perturbations"] == measured
        assert results[name]["num_sequences"] == 6
        fp[name] = {p: v["flip_probability"] for p, v in measured.items()}
    assert 0 < fp["std"]["gaussian_noise"] < 1
    assert results["at"]["mean_flip_rate"] == pytest.approx(mean_flip_rate(fp["at"], fp["std"]))
    assert f"{results['at']['mean_flip_rate']:.1f}" in printed
    assert (out / "flip_probability.png").is_file()


# ----------------------------------------------------------------------------- system noise
def test_system_noise_folder_and_jpeg_sweep(digits_data, checkpoints, tmp_path, capsys):
    _, pixels, labels = digits_data
    for i in range(20):  # folders "0".."9": sorted labels are the digits
        folder = tmp_path / "images" / str(int(labels[i]))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels[i]).save(folder / f"{i}.png")
    for d in range(10):
        (tmp_path / "images" / str(d)).mkdir(exist_ok=True)
    model = _load(checkpoints["standard"])
    out = tmp_path / "out"
    common = ["--data-root", tmp_path / "images", "--crop-size", 32, "--folder-labels", "sorted"]
    printed, _ = run(
        capsys, checkpoints["standard"], "--benchmark", "imagenet-s", *common, "--num-images", 12,
        "--no-progress", "--output", out,
    )  # fmt: skip
    from robustart.system_noise import folder_samples

    samples = folder_samples(tmp_path / "images")
    samples = [samples[i * 20 // 12] for i in range(12)]
    expected = evaluate_system_noise(model, samples, imagenet_s_variants(), crop_size=32)
    got = results_of(out)["results"]["digits_standard/version_0:last"]
    assert got == expected.to_dict() and len(got["accuracy"]) == 33
    assert f"{100 * expected.mean:.1f}" in printed and f"{100 * expected.std:.2f}" in printed
    assert (out / "system_noise.png").stat().st_size > 1000

    run(
        capsys, checkpoints["standard"], "--benchmark", "imagenet-s-jpeg", *common,
        "--jpeg-qualities", "90,5", "--no-progress", "--output", out,
    )  # fmt: skip
    expected = evaluate_system_noise(
        model, tmp_path / "images", jpeg_quality_variants([90, 5]), crop_size=32
    )
    got = results_of(out)["results"]["digits_standard/version_0:last"]
    assert got == expected.to_dict()
    assert list(got["accuracy"]) == ["pil-pil_bilinear-q90", "pil-pil_bilinear-q5"]


def test_cifar10_s_resize_variants(digits_data, checkpoints, tmp_path, capsys):
    _, pixels, labels = digits_data
    root = write_cifar10_test_batch(tmp_path, pixels[:24], labels[:24])
    out = tmp_path / "out"
    run(capsys, checkpoints["pgd_at"], "--benchmark", "cifar10-s", "--data-root", root,
        "--no-progress", "--output", out)  # fmt: skip
    images, targets = load_cifar_split(root, CIFAR10, train=False)
    expected = evaluate_cifar_system_noise(
        _load(checkpoints["pgd_at"]), images.float() / 255, targets
    )
    got = results_of(out)["results"]["digits_pgd_at/version_0:last"]
    assert got == expected.to_dict() and got["clean"] == expected.clean


# ----------------------------------------------------------------------------- errors, help
def _expect_error(capsys, *args, match: str) -> str:
    with pytest.raises(SystemExit) as info:
        cli_main(["shift", *map(str, args)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert match in err, err
    assert "Traceback" not in err and err.count("robustart: error:") == 1
    return err


def test_bad_input_gives_one_clear_error(digits_data, checkpoints, tmp_path, capsys):
    _, pixels, labels = digits_data
    root = write_cifar_c(tmp_path / "c", pixels[:2], labels[:2], ["fog"])
    std = checkpoints["standard"]
    out = ["--output", tmp_path / "o", "--no-progress"]
    err = _expect_error(capsys, std, "--benchmark", "cifar10-c", "--data-root", tmp_path / "nope",
                        *out, match="does not exist")  # fmt: skip
    assert "labels.npy" in err and "github.com/hendrycks/robustness" in err
    _expect_error(capsys, std, "--benchmark", "cifar10cc", "--data-root", root, *out,
                  match="Did you mean: cifar10-c")  # fmt: skip
    _expect_error(capsys, std, "--benchmark", "cifar10-c", "--data-root", root, *out,
                  match="--subsets all")  # 14 of the 15 benchmark corruptions missing  # fmt: skip
    fog = ["--benchmark", "cifar10-c", "--data-root", root, "--subsets", "fog", *out]
    clean = write_cifar10_test_batch(tmp_path / "clean", pixels[:3], labels[:3])
    _expect_error(capsys, std, *fog, "--clean-root", clean,
                  match="are not the images the set corrupts (3 clean vs 2")  # fmt: skip
    other = torch.load(std, weights_only=True)
    other["robustart"]["model"] = "resnet32"
    torch.save(other, tmp_path / "other.ckpt")
    _expect_error(capsys, tmp_path / "other.ckpt", *fog, match="trained with model='resnet32'")
    err = _expect_error(capsys, STANDARD, *fog, match="trained on 'digits', not on 'cifar10'")
    assert "the cifar10-c benchmark evaluates cifar10 models" in err
    _expect_error(capsys, "zoo:digits_resnet20_standrd", *fog, match="no model zoo entry")
    _expect_error(capsys, tmp_path / "missing.ckpt", *fog, match="checkpoint not found")
    _expect_error(capsys, std, *fog, "--baseline", "alexnet", match="only for ImageNet-C")
    _expect_error(capsys, std, *fog, "--baseline", "nobody", match="--baseline 'nobody'")
    _expect_error(capsys, std, *fog, "--jpeg-qualities", "50", match="does not apply")
    _expect_error(capsys, std, *fog, "--num-images", "0", match="--num-images must be >= 1")
    _expect_error(capsys, std, "--benchmark", "imagenet-r", "--data-root", root, *out,
                  match="ImageNet-R: no class folders")  # fmt: skip
    write_images(tmp_path / "r" / imagenet_subset("imagenet_r").wnids[0], 1, seed=0)
    _expect_error(capsys, std, "--benchmark", "imagenet-r", "--data-root", tmp_path / "r", *out,
                  "--allow-missing-classes",
                  match="holds a model with 10 classes but the data has 1000")  # fmt: skip
    _expect_error(capsys, std, *fog, "--allow-missing-classes", match="does not apply")
    _expect_error(capsys, std, "--benchmark", "imagenet-o", "--data-root", tmp_path / "r", *out,
                  match="needs --clean-root")  # fmt: skip
    assert not (tmp_path / "o").exists()  # nothing half-written


def test_help_explains_every_option_and_benchmark(capsys):
    parser = build_parser()
    for action in parser._actions:
        assert action.help and len(action.help) > 15, action.dest
    with pytest.raises(SystemExit) as info:
        cli_main(["shift", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for name in BENCHMARKS:
        assert f"  {name} " in text
    for option in (
        "--benchmark",
        "--data-root",
        "--clean-root",
        "--baseline",
        "--num-images",
        "--device",
    ):
        assert option in text
    assert "zoo:NAME" in text and "--batch-size" in text
    # every argparse subcommand resolves to its entry function
    assert all(callable(SUBCOMMANDS[name].load()) for name in ("compare", "transfer", "shift"))
