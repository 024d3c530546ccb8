"""Training settings that would silently train something else are refused when built.

Found by a third audit of ordinary use (training paths): a negative ``min_lr`` drove the cosine
rate below 0 and one above ``lr`` made it rise; multistep ``gamma`` 10 grew the rate 100-fold;
Nesterov without momentum (or with Adam) was silently dropped; the cyclic schedule ignored a
warm-up and a warm-up 5x longer than training kept the rate at a fraction of ``lr``; Free-AT took
``eps: 8`` (pixel units) and turned the images into 0/1 noise; ``eps: 0`` adversarial training
was standard training at the attack's cost; a Gaussian-noise sigma of 64 replaced the images;
NaN weights and infinite Mixup alphas passed ``< 0`` checks; ``ema_decay`` 1.5 ended in a raw
traceback and the overfitting guard's pixel-unit eps was refused only after an epoch.
"""

from __future__ import annotations

import math

import pytest
from conftest import FAST, RECIPES
from conftest import expect_cli_error as expect_error

from robustart.augment.gaussian_noise import GaussianNoise
from robustart.augment.mixup import Mixup
from robustart.callbacks import CatastrophicOverfittingGuard
from robustart.errors import ConfigError
from robustart.tasks import ClassificationTask, FreeAdversarialTrainingTask, build_objective

NAN = math.nan


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"min_lr": -0.01}, r"min_lr must be in \[0, lr\]"),
        ({"min_lr": 1.0}, r"min_lr must be in \[0, lr\]"),
        ({"lr_schedule": "multistep", "gamma": 10.0}, r"gamma .* must be in \(0, 1\]"),
        ({"lr_schedule": "multistep", "gamma": 0.0}, r"gamma .* must be in \(0, 1\]"),
        ({"nesterov": True, "momentum": 0.0}, "nesterov needs optimizer sgd with momentum"),
        ({"nesterov": True, "optimizer": "adamw"}, "nesterov needs optimizer sgd"),
        ({"momentum": -1.0}, r"momentum must be in \[0, 1\)"),
        ({"lr": NAN}, "lr must be a finite number"),
        ({"weight_decay": NAN}, "weight_decay must be a finite number"),
        ({"warmup_epochs": -1.0}, "warmup_epochs must be >= 0"),
        ({"lr_schedule": "cyclic", "warmup_epochs": 1.0}, "cyclic schedule .* ignores warmup"),
        ({"milestones": (0.5, 1.5)}, r"milestones are fractions of training in \(0, 1\)"),
        ({"consistency_weight": NAN}, "consistency_weight must be a finite number"),
        ({"ema_decay": 1.5}, r"ema_decay must be in \(0, 1\)"),
    ],
    ids=lambda v: "-".join(f"{k}={w}" for k, w in v.items()) if isinstance(v, dict) else "",
)
def test_optimisation_settings_that_train_otherwise_are_refused(settings, match):
    with pytest.raises(ConfigError, match=match):
        ClassificationTask(model="resnet20", **settings)


def test_the_shipped_optimisation_settings_pass():
    ClassificationTask(model="resnet20", lr=0.1, min_lr=0.1, lr_schedule="cosine")
    ClassificationTask(model="resnet20", optimizer="adamw", lr=1e-3, momentum=0.9)
    ClassificationTask(model="resnet20", lr_schedule="cyclic", nesterov=True)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: FreeAdversarialTrainingTask(model="resnet20", eps=8), "write e.g. 8/255"),
        (lambda: FreeAdversarialTrainingTask(model="resnet20", eps=0), "eps is 0"),
        (
            lambda: FreeAdversarialTrainingTask(model="resnet20", eps="8/255", step_size=8),
            "step_size must be at most 1",
        ),
        (lambda: build_objective("pgd_at", eps=0), "eps is 0, which trains on clean images"),
        (lambda: build_objective("trades", eps="0/255"), "eps is 0"),
        (lambda: GaussianNoise(sigma=64), r"sigma must be a number in \[0, 1\]"),
        (lambda: Mixup(num_classes=10, alpha=math.inf), "alpha must be > 0 and finite"),
        (lambda: CatastrophicOverfittingGuard(eps=8), "write e.g. 8/255"),
    ],
    ids=[
        "free_eps8",
        "free_eps0",
        "free_step8",
        "pgd_at_eps0",
        "trades_eps0",
        "noise64",
        "mixup_inf",
        "guard_eps8",
    ],
)
def test_technique_settings_that_disable_or_break_it_are_refused(build, match):
    with pytest.raises(ConfigError, match=match):
        build()


@pytest.mark.parametrize(
    ("recipe", "option", "value", "match"),
    [
        ("standard", "warmup_epochs", "5", "warmup_epochs is 5 and trainer.max_epochs is 1"),
        ("pgd_at_awp", "awp_warmup_epochs", "1", "AWP would never run"),
    ],
)
def test_warmups_past_the_end_of_training_are_refused(
    tmp_path, monkeypatch, capsys, recipe, option, value, match
):
    monkeypatch.chdir(tmp_path)
    config = ["--config", RECIPES / "digits" / f"{recipe}.yaml", "--config", FAST]
    expect_error(capsys, "fit", *config, f"--model.init_args.{option}", value, match=match)
    assert not (tmp_path / "runs").exists()
