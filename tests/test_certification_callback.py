"""Randomized-smoothing certification at epoch ends: the ``certification`` option of the
robustness evaluation callback (metrics, settings checked at construction, the digits layer)."""

from __future__ import annotations

import csv
import json
import re
from statistics import NormalDist

import pytest
import torch
import yaml
from conftest import FAST, RECIPES
from conftest import expect_cli_error as expect_error
from torch import nn

from robustart.callbacks import RobustnessEvaluation
from robustart.errors import ConfigError
from robustart.evaluation.certification import (
    ABSTAIN,
    certification_metric_names,
    certify_chunks,
    certify_images,
    check_certification_settings,
)
from robustart.evaluation.loop import iterate_chunks
from robustart.main import cli_main

STANDARD = RECIPES / "digits" / "standard.yaml"
GAUSSIAN = RECIPES / "digits" / "gaussian_noise.yaml"
LAYER = RECIPES / "evaluation" / "digits_certification.yaml"
RADII = [0.0, 0.1, 0.25]  # n = 64 certifies up to 0.317
#: Small enough for a CPU test: 16 images x (8 + 64 + 64) forward passes.
SETTINGS = {"sigma": 0.25, "n0": 8, "n": 64, "n_predict": 64, "batch_size": 68, "radii": RADII}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def certification_layer(folder, settings) -> str:
    """A config layer adding ``certification`` to the first callback (the FAST layer's
    RobustnessEvaluation: its init_args are merged, not replaced)."""
    path = folder / "certify.yaml"
    callback = {
        "class_path": "robustart.callbacks.RobustnessEvaluation",
        "init_args": {"certification": settings},
    }
    path.write_text(yaml.safe_dump({"trainer": {"callbacks": [callback]}}))
    return str(path)


# ----------------------------------------------------------------------------- a real fit
def test_fit_logs_certified_accuracy_at_each_radius(workdir):
    """One short epoch of Gaussian-noise training from the zoo's standard digits model, then the
    epoch-end evaluation certifies the smoothed model on its 16-image subset."""
    code = cli_main(
        [
            "fit",
            "--config",
            str(STANDARD),
            "--config",
            str(GAUSSIAN),
            "--config",
            str(FAST),
            "--config",
            certification_layer(workdir, SETTINGS),
            "--model.init_args.weights",
            "zoo:digits_resnet20_standard",
            "--model.init_args.lr",
            "0.01",
        ]
    )
    assert code == 0
    run_dir = workdir / "runs" / "digits_gaussian_noise" / "version_0"
    names = certification_metric_names(RADII, smoothed=True)
    assert names[:3] == ["certified/r=0", "certified/r=0.1", "certified/r=0.25"]
    with open(run_dir / "metrics.csv", newline="") as file:
        rows = [row for row in csv.DictReader(file) if row.get("certified/r=0")]
    assert len(rows) == 1  # one evaluated epoch
    logged = {name: float(rows[0][name]) for name in names}

    (entry,) = json.loads((run_dir / "robustness.json").read_text())
    metrics = entry["metrics"]
    assert {name: metrics[name] for name in names} == pytest.approx(logged)
    assert metrics["robust/clean"] > 0.5  # the suite still runs beside the certification

    certified = [metrics[f"certified/r={r:g}"] for r in RADII]
    assert certified == sorted(certified, reverse=True)  # non-increasing in the radius
    smoothed = metrics["certified/smoothed_accuracy"]
    assert 0.5 < certified[0] <= smoothed <= 1  # a trained model: most digits certified
    assert certified[0] <= metrics["certified/guess_accuracy"] <= 1
    # certified-correct and abstained images are disjoint
    assert certified[0] + metrics["certified/abstention_rate"] <= 1 + 1e-12
    # 64 samples at alpha = 0.001 cap the radius at sigma * Phi^-1(0.001^(1/64)) = 0.32: a
    # radius of 0.5 is refused before training (before: a column of zeros)
    with pytest.raises(ConfigError, match=r"largest certifiable radius is .* 0\.317"):
        check_certification_settings({**SETTINGS, "radii": [*RADII, 0.5]})


# ----------------------------------------------------------------------------- settings
@pytest.mark.parametrize(
    "settings, match",
    [
        ({"sigma": 0}, "certification.sigma must be > 0"),
        ({"sigma": -0.25}, "certification.sigma must be > 0"),
        ({"n0": 0}, "certification.n0 must be an integer >= 1"),
        ({"n": 0}, "certification.n must be an integer >= 1"),
        ({"n": 2.5}, "certification.n must be an integer >= 1"),
        ({"alpha": 0}, "certification.alpha must lie in (0, 1)"),
        ({"alpha": 1}, "certification.alpha must lie in (0, 1)"),
        ({"radii": [0, -0.25]}, "certification.radii must be numbers >= 0"),
        ({"radii": []}, "certification.radii must be a non-empty list"),
        ({"batch_size": 0}, "certification.batch_size must be an integer >= 1"),
        ({"sigmas": 0.25}, "unknown keys ['sigmas']"),
        ([0.25], "must be a mapping"),
    ],
)
def test_bad_settings_are_refused_when_the_callback_is_built(settings, match):
    with pytest.raises(ConfigError, match=re.escape(match)) as info:
        RobustnessEvaluation(attacks=[], corruptions=[], certification=settings)
    assert "\n" not in str(info.value)


def test_bad_settings_are_refused_on_the_command_line_before_training(workdir, capsys):
    expect_error(
        capsys,
        "fit",
        "--config",
        STANDARD,
        "--config",
        FAST,
        "--config",
        certification_layer(workdir, {"sigma": 0}),
        match="certification.sigma must be > 0",
    )
    assert not list(workdir.glob("**/*.ckpt")) and not list(workdir.glob("**/robustness.json"))


def test_certification_is_off_by_default_and_settings_are_completed():
    assert RobustnessEvaluation().certification is None
    assert not any(name.startswith("certified/") for name in RobustnessEvaluation().metric_names())
    callback = RobustnessEvaluation(certification={"sigma": 0.5, "radii": [0.5, 0]})
    assert callback.certification == check_certification_settings({"sigma": 0.5, "radii": [0, 0.5]})
    assert callback.certification["n"] == 1000 and callback.certification["radii"] == [0.0, 0.5]
    names = callback.metric_names()
    assert {"certified/r=0", "certified/r=0.5", "certified/abstention_rate"} <= names
    assert "certified/smoothed_accuracy" not in names  # n_predict = 0: PREDICT does not run
    test_names = callback.metric_names(prefix="test_", test=True)
    assert {"test_certified/r=0.5", "test_certified/guess_accuracy"} <= test_names


def test_checkpoint_monitor_on_a_certified_metric_is_checked(workdir, capsys):
    line = expect_error(
        capsys,
        "fit",
        "--config",
        STANDARD,
        "--config",
        FAST,
        "--config",
        certification_layer(workdir, {"radii": [0, 0.25]}),
        "--checkpoint.monitor",
        "certified/r=0.3",
        match="no RobustnessEvaluation logs this metric",
    )
    assert "certified/r=0.25" in line  # the close match is suggested


# ----------------------------------------------------------------------------- chunks
class Threshold(nn.Module):
    """Class 1 when the mean pixel is above 0.5, else class 0, with margin-sized logits."""

    def forward(self, images):
        margin = images.mean(dim=(1, 2, 3)) - 0.5
        return torch.stack([-margin, margin], dim=1) * 50


def test_certify_chunks_matches_certify_images_whatever_the_chunks():
    images = torch.linspace(0.3, 0.7, 7).view(7, 1, 1, 1).expand(7, 1, 2, 2).contiguous()
    labels = (images.mean(dim=(1, 2, 3)) > 0.5).long()
    settings = check_certification_settings({"sigma": 0.25, "n0": 8, "n": 50, "n_predict": 20})
    whole = certify_images(
        Threshold(),
        images,
        labels,
        2,
        **{k: settings[k] for k in ("sigma", "n0", "n", "alpha")},
        batch_size=settings["batch_size"],
        n_predict=20,
        seed=3,
    )
    dataset = list(zip(images, labels))
    for chunk_size in (1, 3, 7):
        result = certify_chunks(
            Threshold(), iterate_chunks(dataset, chunk_size), 7, chunk_size, settings, seed=3
        )
        assert torch.equal(result.predictions, whole.predictions)
        assert torch.equal(result.radii, whole.radii)
        assert torch.equal(result.smoothed_predictions, whole.smoothed_predictions)
        assert result.metrics([0, 0.2]) == whole.metrics([0, 0.2])
    assert (whole.predictions == ABSTAIN).any() and (whole.radii > 0).any()
    metrics = whole.metrics([0, 0.2], prefix="test_")
    assert list(metrics) == certification_metric_names([0, 0.2], smoothed=True, prefix="test_")


# ----------------------------------------------------------------------------- the layer
def test_digits_certification_layer_adds_only_the_certification(capsys):
    def merged(*configs):
        args = ["fit"]
        for config in configs:
            args += ["--config", str(config)]
        with pytest.raises(SystemExit):
            cli_main([*args, "--print_config"])
        return yaml.safe_load(capsys.readouterr().out)

    reference = merged(STANDARD, GAUSSIAN)
    config = merged(STANDARD, GAUSSIAN, LAYER)
    (callback,) = config["trainer"]["callbacks"]
    (before,) = reference["trainer"]["callbacks"]
    settings = callback["init_args"].pop("certification")
    assert before["init_args"].pop("certification") is None
    assert callback == before  # attacks, subset and period of the recipe are kept
    assert {k: v for k, v in config.items() if k != "trainer"} == {
        k: v for k, v in reference.items() if k != "trainer"
    }
    completed = check_certification_settings(settings)
    assert completed["sigma"] == config["model"]["init_args"]["batch_augment"][0]["sigma"]
    # every radius can be certified with n samples: sigma * Phi^-1(alpha^(1/n)) >= max radius
    cap = completed["sigma"] * NormalDist().inv_cdf(completed["alpha"] ** (1 / completed["n"]))
    assert max(completed["radii"]) <= cap
