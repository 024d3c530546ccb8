"""``robustart benchmark`` refuses what would give a wrong or an empty result, and reports what
the attacks' sanity checks found: warnings across a model's items, shift sets of other classes,
repeated entries and budgets, suites with nothing to run, leftovers of an earlier run, models
whose output width changes with the batch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from robustart.data import DigitsDataModule
from robustart.errors import ConfigError, DatasetNotFoundError, NonFiniteError
from robustart.evaluation import load_suite
from robustart.evaluation.benchmark import benchmark
from robustart.evaluation.items import load_benchmark_suite

ZOO = "zoo:digits_resnet20_standard"  # only loaded (refused before it runs)
FGSM = {"name": "fgsm", "norm": "linf", "eps": ["8/255"]}


@pytest.fixture(scope="module")
def digits():
    return DigitsDataModule(augment=False)


class Linear(nn.Module):
    """A linear classifier of 32 px RGB images (fast)."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(3 * 32 * 32, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


class NanGradient(Linear):
    """Finite logits, NaN input gradients (0 · d sqrt(0))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        masked = (x - x.detach()).flatten(1).abs().sum(1, keepdim=True).sqrt()
        return super().forward(x) + 0 * masked


class BatchDependent(Linear):
    """10 outputs for the two images of the class probe, 11 for any other batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        return out if len(x) == 2 else torch.cat([out, out[:, :1]], 1)


def cifar101_folder(root, count: int = 20):
    """A CIFAR-10.1 folder of ``count`` random images (10 classes)."""
    root.mkdir()
    rng = np.random.default_rng(0)
    np.save(root / "cifar10.1_v6_data.npy", rng.integers(0, 256, (count, 32, 32, 3), np.uint8))
    np.save(root / "cifar10.1_v6_labels.npy", rng.integers(0, 10, count).astype(np.int64))
    return root


# ----------------------------------------------------------------------------- 1. sanity
def test_cross_attack_sanity_warnings_are_printed_and_written(tmp_path, capsys, monkeypatch):
    """An iterative attack weaker than FGSM at the same budget is two items: the check runs on
    the model's merged report and its warning reaches stderr, the JSON, Markdown and HTML."""
    from robustart.cli.benchmark import main

    (tmp_path / "refusal_models.py").write_text(
        "from test_benchmark_refusals import Linear\ndef linear():\n    return Linear()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    weak = {"name": "pgd", "eps": ["8/255"], "steps": 1, "step_size": 1e-5, "random_start": False}
    suite = tmp_path / "suite.yaml"
    suite.write_text(json.dumps({"attacks": [FGSM, weak]}))
    out = tmp_path / "out"
    args = ["refusal_models:linear", "--suite", str(suite), "--num-images", "16"]
    with pytest.warns(UserWarning, match="cannot reach"):
        data = main([*args, "--output", str(out), "--no-progress", "--device", "cpu"])
    err = capsys.readouterr().err
    assert "robustart: warning: linear: pgd1_linf at linf eps=0.0313725" in err
    assert "weaker than FGSM" in err
    assert any("weaker than FGSM" in w for w in data["warnings"])
    assert any("weaker than FGSM" in w for w in data["models"]["linear"]["warnings"])
    for name in ("leaderboard.md", "report.html"):
        text = (out / name).read_text()
        assert "Warnings" in text and "weaker than FGSM" in text, name


def test_nan_input_gradients_are_refused_before_any_result(tmp_path, digits):
    """Gradient attacks cannot run on NaN input gradients: the robust accuracy would be the
    clean one (before: reported, with a warning, and a study put the model alone on its
    robust Pareto frontier)."""
    with pytest.raises(NonFiniteError, match=r"input gradients of the model .* NaN or infinite"):
        benchmark(
            {"nan_grad": NanGradient()},
            digits,
            {"attacks": [FGSM]},
            num_images=8,
            output=tmp_path,
            progress=False,
        )
    assert not (tmp_path / "leaderboard.md").exists()


def test_a_study_reports_the_sanity_warnings_of_its_models(tmp_path, monkeypatch):
    from robustart.evaluation.study import run_study

    (tmp_path / "study_models.py").write_text(
        "from test_benchmark_refusals import Linear\ndef linear():\n    return Linear()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    weak = {"name": "pgd", "eps": ["8/255"], "steps": 1, "step_size": 1e-5, "random_start": False}
    study = {
        "models": [{"spec": "study_models:linear"}],
        "num_images": 8,
        "suite": {"attacks": [FGSM, weak]},
    }
    with pytest.warns(UserWarning, match="cannot reach"):
        run_study(study, tmp_path / "out", device="cpu", progress=False)
    for name in ("study.md", "report.html"):
        text = (tmp_path / "out" / name).read_text()
        assert "Warning: linear: pgd1_linf" in text and "weaker than FGSM" in text, name


# ----------------------------------------------------------------------------- 2. shift classes
def test_a_shift_set_of_other_classes_is_refused_before_any_work(tmp_path, digits):
    """An 11-class model and a 10-class shift set: refused when the models are loaded (as
    `robustart shift` refuses it), not scored on labels it does not predict after the attacks."""
    images, labels = digits.dataset("test")[:16]
    suite = {
        "attacks": [FGSM],
        "shift": [{"benchmark": "cifar10.1", "data_root": str(cifar101_folder(tmp_path / "c"))}],
    }
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"predicts 11 classes .* 'cifar10\.1' evaluates 10-"):
        benchmark(Linear(11), TensorDataset(images, labels), suite, output=out, progress=False)
    assert not (out / "items").exists()  # nothing was evaluated


# ----------------------------------------------------------------------------- 3. shift twice
def test_two_shift_entries_of_one_benchmark_are_refused(tmp_path):
    first, second = (str(cifar101_folder(tmp_path / name)) for name in ("a", "b"))
    shift = [{"benchmark": "cifar10.1", "data_root": root} for root in (first, second)]
    with pytest.raises(ConfigError, match=r"#1 and #2 both run 'cifar10\.1'"):
        load_benchmark_suite({"attacks": [FGSM], "shift": shift})


@pytest.mark.parametrize(
    "settings, match",
    [
        ({"severities": [1, 1]}, r"'cifar10-c': severities are listed twice"),
        ({"severities": [0, 3]}, "severity"),
        ({"severities": 3}, r"e\.g\. \[3\]"),
        ({"subsets": ["fog", "fog"]}, "subsets are listed twice"),
        ({"subsets": [1]}, "subsets must be a list of names"),
    ],
)
def test_shift_entry_lists_are_checked_when_the_suite_is_loaded(settings, match):
    """As `robustart shift` checks --severities and --subsets (before: [1, 1] ran severity 1
    twice into one result)."""
    entry = {"benchmark": "cifar10-c", "data_root": "data/CIFAR-10-C", **settings}
    with pytest.raises(ConfigError, match=match):
        load_benchmark_suite({"attacks": [FGSM], "shift": [entry]})


def test_allow_missing_classes_is_refused_where_it_does_not_apply(tmp_path, digits):
    images, labels = digits.dataset("test")[:16]
    entry = {"benchmark": "cifar10.1", "data_root": str(cifar101_folder(tmp_path / "c"))}
    suite = {"attacks": [FGSM], "shift": [{**entry, "allow_missing_classes": True}]}
    with pytest.raises(ConfigError, match="allow_missing_classes applies only"):
        benchmark(Linear(), TensorDataset(images, labels), suite, output=tmp_path / "o")


# ----------------------------------------------------------------------------- 4. empty suites
@pytest.mark.parametrize(
    "suite, match",
    [
        ({}, "nothing to evaluate"),
        ({"attacks": []}, "nothing to evaluate"),
        ({"corruptions": []}, "nothing to evaluate"),
        ({"system_noise": False, "shift": []}, "nothing to evaluate"),
        ({"severities": [1, 3]}, "severities but no corruptions"),
        ({"attacks": [FGSM], "severities": [1, 3]}, "severities but no corruptions"),
    ],
)
def test_suites_without_items_are_refused_when_loaded(suite, match):
    with pytest.raises(ConfigError, match=match):
        load_benchmark_suite(suite)


def test_the_command_line_refuses_an_empty_suite(tmp_path, capsys):
    from conftest import expect_cli_error

    suite = tmp_path / "empty.yaml"
    suite.write_text("{}\n")
    out = tmp_path / "out"
    args = [ZOO, "--suite", suite, "--output", out, "--no-progress", "--device", "cpu"]
    expect_cli_error(capsys, "benchmark", *args, match="nothing to evaluate beside clean")
    assert not out.exists()


def test_a_suite_whose_every_item_is_skipped_is_refused(tmp_path, digits):
    missing = {"benchmark": "cifar10.1", "data_root": str(tmp_path / "nowhere"), "optional": True}
    out = tmp_path / "out"
    with pytest.raises(DatasetNotFoundError, match=r"every item .* was skipped .*cifar10\.1"):
        benchmark(Linear(), digits, {"shift": [missing]}, num_images=8, output=out)
    assert not out.exists()


# ----------------------------------------------------------------------------- 5. eps twice
@pytest.mark.parametrize("load", [load_benchmark_suite, load_suite])
def test_a_budget_listed_twice_is_refused(load):
    with pytest.raises(ConfigError, match="lists a budget twice"):
        load({"attacks": [{"name": "fgsm", "eps": ["8/255", 8 / 255]}]})


# ----------------------------------------------------------------------------- 6. leftovers
def test_save_removes_stale_temporaries_and_figures_of_an_earlier_run(tmp_path, digits):
    models = {"linear": Linear()}
    with_corruption = {"attacks": [FGSM], "corruptions": ["brightness"], "severities": [1]}
    benchmark(models, digits, with_corruption, num_images=8, output=tmp_path, progress=False)
    assert (tmp_path / "corruption_heatmap.png").is_file()
    stale = [".robustness_curves.k2j_9xq1.png", ".leaderboard.md.ab12cd34.tmp"]
    kept = [".robustness_curves.png.bak", "corruption_heatmap_copy.png", ".notes.ab12cd34.tmp"]
    for name in stale + kept:
        (tmp_path / name).write_bytes(b"")
    benchmark(models, digits, {"attacks": [FGSM]}, num_images=8, output=tmp_path, progress=False)
    assert not (tmp_path / "corruption_heatmap.png").exists()  # not this run's results
    assert (tmp_path / "robustness_curves.png").is_file()
    assert not [name for name in stale if (tmp_path / name).exists()]
    assert all((tmp_path / name).exists() for name in kept)


# ----------------------------------------------------------------------------- 7. logits
def test_a_model_whose_output_width_changes_with_the_batch_is_refused(digits):
    with pytest.raises(ConfigError, match=r"returned \(8, 11\) for 8 images, not logits"):
        benchmark(BatchDependent(), digits, {"attacks": [FGSM]}, num_images=8, progress=False)


def test_a_suite_path_naming_a_folder_says_so(tmp_path):
    with pytest.raises(ConfigError, match="is a folder, not a YAML file"):
        load_benchmark_suite(str(tmp_path))
