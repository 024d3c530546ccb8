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
        # options the chosen schedule or optimiser does not read
        ({"milestones": (0.3, 0.6)}, "milestones .* read only by lr_schedule multistep"),
        ({"lr_schedule": "cyclic", "gamma": 0.2}, "gamma .* read only by lr_schedule multistep"),
        ({"lr_schedule": "multistep", "min_lr": 0.01}, "min_lr .* read only by lr_schedule cos"),
        ({"optimizer": "adamw", "momentum": 0.5}, "momentum .* read only by optimizer sgd"),
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
    ClassificationTask(model="resnet20", lr_schedule="multistep", milestones=(0.3,), gamma=0.2)


def test_the_unread_option_defaults_are_the_tasks():
    """:data:`OPTIONS_READ_BY` compares with the task's defaults: they must stay the same."""
    import inspect

    from robustart.tasks.optim import OPTIONS_READ_BY

    defaults = inspect.signature(ClassificationTask).parameters
    for option, (_, default) in OPTIONS_READ_BY.items():
        assert defaults[option].default == default, option


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
        (lambda: build_objective("trades", beta=0), "'trades' with beta 0 trains on clean"),
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
        "trades_beta0",
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


@pytest.mark.parametrize("objective", ["pgd_at", "trades", "mart"])
def test_the_default_training_step_crosses_any_budget(objective):
    """The default step was an absolute 2/255: 10 steps reached 0.078 of an L2 budget of 0.5,
    and 2 steps half of 8/255. It is now 2.5·eps/steps (2/255 at the published 8/255 x 10)."""
    for norm, eps, steps in (("l2", 0.5, 10), ("linf", "8/255", 2), ("linf", "16/255", 7)):
        attack = build_objective(objective, norm=norm, eps=eps, steps=steps).attack
        assert attack.reach() == pytest.approx(2.5)
    published = build_objective(objective).attack
    assert published.rel_step_size * published.eps == 2 / 255


@pytest.mark.parametrize(
    ("option", "value", "match"),
    [
        ("num_classes", "5", "num_classes is 5, but the data (DigitsDataModule) has num_classes"),
        ("in_channels", "1", "in_channels is 1, but the data"),
        ("mean", "[0.5,0.5,0.5]", "mean is (0.5, 0.5, 0.5), but the data"),
    ],
)
def test_a_model_setting_the_data_link_would_replace_is_refused(
    tmp_path, monkeypatch, capsys, option, value, match
):
    """``--model.init_args.num_classes 5`` on 10-class data trained a 10-class model."""
    monkeypatch.chdir(tmp_path)
    config = ["--config", RECIPES / "digits" / "standard.yaml", "--config", FAST]
    expect_error(capsys, "fit", *config, f"--model.init_args.{option}", value, match=match)
    assert not (tmp_path / "runs").exists()


def test_a_linked_setting_equal_to_the_data_is_accepted():
    from jsonargparse import Namespace

    from robustart.cli.checks import check_linked_settings, linked_settings_given
    from robustart.data import DigitsDataModule

    model = Namespace(class_path="robustart.tasks.ClassificationTask", init_args=Namespace())
    model.init_args.num_classes, model.init_args.in_channels = 10, 3
    assert linked_settings_given(Namespace(model=model)) == {}  # the class defaults
    data = DigitsDataModule()
    model.init_args.mean = list(data.mean)
    check_linked_settings(linked_settings_given(Namespace(model=model)), data)


@pytest.mark.parametrize(
    ("given", "expected"), [("1", 1), ("3", 3), ("1.0", 1.0), ("0.5", 0.5), ("null", 1.0)]
)
def test_a_batch_limit_of_1_is_one_batch(tmp_path, monkeypatch, given, expected):
    """Lightning types ``limit_*_batches`` ``Union[float, int]``, so jsonargparse read ``1`` as
    ``1.0``: all batches instead of one."""
    from robustart.cli.lightning import build_cli

    monkeypatch.chdir(tmp_path)
    config = ["--config", RECIPES / "digits" / "standard.yaml", "--config", FAST]
    cli = build_cli([*config, "--trainer.limit_val_batches", given], run=False, announce=False)
    limit = cli.trainer.limit_val_batches
    assert limit == expected and type(limit) is type(expected)


def test_a_consistency_weight_without_multi_view_batches_is_refused():
    """``consistency_weight`` is read only on AugMix's multi-view batches (before: ignored)."""
    from robustart.data import DigitsDataModule

    task = ClassificationTask(model="resnet20", consistency_weight=6.0)
    with pytest.raises(ConfigError, match="consistency_weight 6 weighs AugMix"):
        task.check_training_data(DigitsDataModule())
    task.check_training_data(DigitsDataModule(augment_policy={"name": "augmix"}))
    ClassificationTask(model="resnet20").check_training_data(DigitsDataModule())  # the default


def _fit_or_validate(task, images, labels, stage):
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    loader = DataLoader(TensorDataset(images, labels), batch_size=4)
    trainer = L.Trainer(
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        accelerator="cpu",
    )
    torch.manual_seed(0)
    if stage == "fit":
        trainer.fit(task, loader)
    else:
        getattr(trainer, stage)(task, loader, verbose=False)


@pytest.mark.parametrize("stage", ["fit", "validate", "test"])
@pytest.mark.parametrize("scale", ["normalized", "0-255"])
def test_images_outside_zero_one_are_refused_in_training_and_evaluation(stage, scale):
    """Images after Normalize() or in 0-255 were trained on and scored (val/acc 0.0 reported
    for a pipeline mistake)."""
    import torch

    from robustart.errors import InputRangeError

    images = torch.rand(4, 3, 32, 32)
    images = (images - 0.5) / 0.25 if scale == "normalized" else images * 255
    task = ClassificationTask(model="resnet20", num_classes=10)
    with pytest.raises(InputRangeError, match=r"must lie in \[0, 1\].*Remove Normalize"):
        _fit_or_validate(task, images, torch.tensor([0, 1, 2, 3]), stage)


@pytest.mark.parametrize("batch_augment", [None, [{"name": "mixup"}]])
def test_training_labels_out_of_range_are_refused_clearly(batch_augment):
    """A label of 12 for 10 classes raised a raw IndexError (RuntimeError with mixup)."""
    import torch

    from robustart.errors import InputRangeError

    task = ClassificationTask(model="resnet20", num_classes=10, batch_augment=batch_augment)
    with pytest.raises(InputRangeError, match="training labels"):
        _fit_or_validate(task, torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 12, 3]), "fit")


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"num_classes": 1}, "num_classes must be an integer >= 2"),
        ({"num_classes": 10.0}, "num_classes must be an integer >= 2"),
        ({"in_channels": 0}, "in_channels must be an integer >= 1"),
    ],
)
def test_task_refuses_degenerate_class_and_channel_counts(settings, match):
    with pytest.raises(ConfigError, match=match):
        ClassificationTask(model="resnet20", **settings)
