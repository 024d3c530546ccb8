"""Settings under which ``robustart fit | validate | test`` would report numbers for nothing (or
for a mix of two trainings) are refused when the configuration is built: evaluating untrained
weights, runs over zero batches, epochs or steps, resuming a fit that already reached its epochs
or steps, resuming a fit with other settings than it started with, a W&B logger without an
account, a ``--ckpt_path`` folder. Each refusal is one
``robustart: error: ...`` line (exit status 2), before any run folder is written."""

from __future__ import annotations

import os

import pytest
import torch
from conftest import FAST, RECIPES
from conftest import expect_cli_error as expect_error
from jsonargparse import Namespace

from robustart.cli.checks import (
    _same_setting,
    check_run_length,
    check_trained_weights,
    check_wandb_can_log,
)
from robustart.cli.lightning import LIGHTNING_WANDB_LOGGERS
from robustart.errors import ConfigError

STANDARD = RECIPES / "digits" / "standard.yaml"
WANDB = RECIPES / "loggers" / "wandb.yaml"
RECIPE = ["--config", STANDARD, "--config", FAST]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def checkpoint(workdir):
    """A Lightning checkpoint file of the recipe's architecture: the refusals come before it is
    loaded into a model."""
    path = workdir / "model.ckpt"
    torch.save({"state_dict": {}, "robustart": {"model": "resnet20", "num_classes": 10}}, path)
    return path


def finished_checkpoint(folder, epochs: int, steps: int, at_epoch_end: bool = False):
    """A checkpoint saved by Lightning after ``epochs`` epochs and ``steps`` steps (the fields
    robustart reads: the fit loop's epoch progress and the global step). ``at_epoch_end``: saved
    by ModelCheckpoint at the end of the last epoch, which Lightning counts as processed but not
    yet completed (``epoch=NNN.ckpt``; ``last.ckpt`` at the end of a fit has it completed)."""
    path = folder / "finished.ckpt"
    completed = epochs - 1 if at_epoch_end else epochs
    progress = {
        "current": {"ready": epochs, "started": epochs, "processed": epochs, "completed": completed}
    }
    torch.save(
        {
            "state_dict": {},
            "robustart": {"model": "resnet20", "num_classes": 10},
            "epoch": epochs - 1,
            "global_step": steps,
            "loops": {"fit_loop": {"epoch_progress": progress}},
        },
        path,
    )
    return path


def nothing_written(folder) -> bool:
    return not (folder / "runs").exists()


# --------------------------------------------------------------------------- untrained weights
@pytest.mark.parametrize("subcommand", ["validate", "test"])
def test_evaluating_untrained_weights_is_refused(workdir, capsys, subcommand):
    line = expect_error(capsys, subcommand, *RECIPE, match="random initial weights")
    assert "--ckpt_path" in line and "--model.init_args.weights" in line
    assert nothing_written(workdir)


@pytest.mark.parametrize("name", ["last", "best"])
def test_named_checkpoints_of_an_earlier_fit_are_refused_by_test(workdir, capsys, name):
    line = expect_error(capsys, "test", *RECIPE, "--ckpt_path", name, match=f"--ckpt_path {name}")
    assert "checkpoints/last.ckpt" in line
    assert nothing_written(workdir)


def test_a_checkpoint_or_trained_weights_are_enough_to_evaluate():
    def task(**init_args) -> Namespace:
        return Namespace(class_path="robustart.tasks.ClassificationTask", init_args=init_args)

    for subcommand in ("validate", "test"):
        for config in (
            Namespace(ckpt_path="model.ckpt", model=task(weights=None)),
            Namespace(model=task(weights="zoo:digits_resnet20_standard")),
            Namespace(model=task(weights=None, pretrained=True)),
        ):
            check_trained_weights(config, subcommand)
        with pytest.raises(ConfigError, match="random initial weights"):
            check_trained_weights(Namespace(model=task(weights=None)), subcommand)
    check_trained_weights(Namespace(model=task(weights=None)), "fit")  # training starts untrained


def test_a_directory_as_ckpt_path_is_named_as_one(workdir, capsys):
    (workdir / "run" / "checkpoints").mkdir(parents=True)
    (workdir / "run" / "checkpoints" / "last.ckpt").write_bytes(b"")
    line = expect_error(capsys, "test", *RECIPE, "--ckpt_path", "run", match="is a directory")
    assert "no such file" not in line and "last.ckpt" in line


# --------------------------------------------------------------------------- runs over nothing
@pytest.mark.parametrize(
    ("subcommand", "option", "value"),
    [
        ("test", "limit_test_batches", "0"),
        ("test", "limit_test_batches", "0.0"),
        ("validate", "limit_val_batches", "0"),
        ("fit", "limit_train_batches", "0"),
        ("fit", "max_epochs", "0"),
        ("fit", "max_steps", "0"),
    ],
)
def test_runs_over_nothing_are_refused(workdir, capsys, checkpoint, subcommand, option, value):
    ckpt = [] if subcommand == "fit" else ["--ckpt_path", checkpoint]
    args = [subcommand, *RECIPE, *ckpt, f"--trainer.{option}", value]
    line = expect_error(capsys, *args, match=f"trainer.{option} is 0")
    assert f"Set --trainer.{option} to" in line
    assert "results in" not in capsys.readouterr().out
    assert nothing_written(workdir)


def test_run_lengths_that_run_something_pass():
    for subcommand, limits in (
        ("fit", {"limit_train_batches": 2.0, "limit_val_batches": 0, "max_epochs": -1}),
        ("fit", {"max_epochs": None, "max_steps": -1}),
        ("test", {"limit_test_batches": 0.25}),
        ("validate", {"limit_val_batches": 1}),
        ("fit", {"fast_dev_run": True, "max_epochs": 0}),  # fast_dev_run overrides both
    ):
        check_run_length(Namespace(**limits), subcommand)
    with pytest.raises(ConfigError, match="invalid number of batches"):
        check_run_length(Namespace(limit_test_batches=2.5), "test")


# --------------------------------------------------------------------------- W&B credentials
@pytest.fixture
def no_wandb_account(tmp_path, monkeypatch):
    """An environment where W&B finds no API key: none in the environment, no ``.netrc``."""
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NETRC", str(home / ".netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(home / ".config" / "wandb"))
    return home


def test_online_wandb_without_an_account_is_refused_up_front(workdir, capsys, no_wandb_account):
    line = expect_error(capsys, "fit", *RECIPE, "--config", WANDB, match="WANDB_MODE=offline")
    assert "wandb login" in line
    assert nothing_written(workdir)


def wandb_trainer(**init_args) -> Namespace:
    logger = Namespace(class_path="robustart.loggers.WandbLogger", init_args=Namespace(init_args))
    return Namespace(logger=[Namespace(class_path="robustart.loggers.CSVLogger"), logger])


def test_wandb_offline_or_logged_in_passes(no_wandb_account, monkeypatch):
    with pytest.raises(ConfigError, match="wandb login"):
        check_wandb_can_log(wandb_trainer(project="p"), LIGHTNING_WANDB_LOGGERS)
    for offline in ({"offline": True}, {"mode": "offline"}, {"settings": {"mode": "disabled"}}):
        check_wandb_can_log(wandb_trainer(**offline), LIGHTNING_WANDB_LOGGERS)
    with monkeypatch.context() as env:
        env.setenv("WANDB_MODE", "offline")
        check_wandb_can_log(wandb_trainer(), LIGHTNING_WANDB_LOGGERS)
    with monkeypatch.context() as env:
        env.setenv("WANDB_API_KEY", "k" * 40)
        check_wandb_can_log(wandb_trainer(), LIGHTNING_WANDB_LOGGERS)
    netrc = no_wandb_account / ".netrc"  # what `wandb login` writes
    netrc.write_text(f"machine api.wandb.ai\n  login user\n  password {'k' * 40}\n")
    netrc.chmod(0o600)
    check_wandb_can_log(wandb_trainer(), LIGHTNING_WANDB_LOGGERS)


# --------------------------------------------------------------------------- finished fits
@pytest.mark.parametrize(
    "options, match",
    [
        (["--trainer.max_epochs", "3"], "already trained 3 epochs"),
        (["--trainer.max_epochs", "2"], "already trained 3 epochs"),
        (["--trainer.max_epochs", "-1", "--trainer.max_steps", "6"], "already taken 6 optimizer"),
    ],
)
@pytest.mark.parametrize("at_epoch_end", [False, True], ids=["last", "epoch_end"])
def test_resuming_a_finished_fit_is_refused(workdir, capsys, options, match, at_epoch_end):
    ckpt = finished_checkpoint(workdir, epochs=3, steps=6, at_epoch_end=at_epoch_end)
    line = expect_error(capsys, "fit", *RECIPE, "--ckpt_path", ckpt, *options, match=match)
    assert "--trainer.max_" in line and "robustart test" in line
    assert nothing_written(workdir)


def test_resuming_a_fit_with_epochs_left_passes(workdir):
    from robustart.cli.checks import check_fit_has_work_left

    ckpt = finished_checkpoint(workdir, epochs=3, steps=6)
    for trainer in (
        Namespace(max_epochs=4, max_steps=-1),
        Namespace(max_epochs=-1, max_steps=7),
        Namespace(max_epochs=None, max_steps=None),  # Lightning's default: 1000 epochs
    ):
        check_fit_has_work_left(ckpt, trainer)
    with pytest.raises(ConfigError, match="max_epochs is 1000"):
        check_fit_has_work_left(finished_checkpoint(workdir, 1000, 9), Namespace())


# --------------------------------------------------------------------------- resumed fits
@pytest.fixture(scope="module")
def trained_folder(tmp_path_factory):
    """A folder holding a one-epoch fit of the recipe (one fit for the module: the refusals
    below write nothing, which they check)."""
    from robustart.main import cli_main

    folder = tmp_path_factory.mktemp("trained")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        cli_main(["fit", *map(str, RECIPE)])
    finally:
        os.chdir(cwd)
    return folder


@pytest.fixture
def trained_run(trained_folder, monkeypatch):
    """The last.ckpt of :func:`trained_folder`, with the working directory there."""
    monkeypatch.chdir(trained_folder)
    return trained_folder / "runs" / "digits_standard" / "version_0" / "checkpoints" / "last.ckpt"


@pytest.mark.parametrize(
    "options, match",
    [
        (["--model.init_args.lr", "0.05"], "model.init_args.lr is 0.1 there and 0.05 here"),
        (["--model.init_args.warmup_epochs", "2"], "warmup_epochs is 1.0 there and 2.0 here"),
        (["--data.init_args.batch_size", "32"], "batch_size is 64 there and 32 here"),
        (
            ["--config", RECIPES / "digits" / "autoaugment.yaml"],
            "augment_policy is None there and {'name': 'autoaugment', 'policy': 'cifar10'} here",
        ),
        (
            ["--config", RECIPES / "digits" / "pgd_at.yaml", "--config", FAST],
            "the task is robustart.tasks.ClassificationTask there and "
            "robustart.tasks.AdversarialTrainingTask here",
        ),
    ],
    ids=["lr", "warmup", "batch_size", "augment_policy", "task"],
)
def test_resuming_a_fit_with_other_settings_is_refused(trained_run, capsys, options, match):
    """Lightning would restore the weights, optimiser and epoch and go on with the new recipe;
    the run would report a mix of two trainings under the new settings."""
    before = torch.load(trained_run, weights_only=True)
    same_run = ["--trainer.logger.init_args.name", "digits_standard"]
    line = expect_error(
        capsys,
        "fit",
        *RECIPE,
        *options,
        *same_run,
        "--trainer.max_epochs",
        "2",
        "--ckpt_path",
        "last",
        match=match,
    )
    assert "--model.init_args.weights" in line and "config.yaml" in line
    after = torch.load(trained_run, weights_only=True)
    assert after["epoch"] == before["epoch"] == 0  # nothing trained
    assert not (trained_run.parents[2] / "version_1").exists()


def test_resume_settings_compare_values_not_spellings():
    assert _same_setting((0.5, 0.75), [0.5, 0.75])
    assert _same_setting(0.30591932, 0.3059193193912506)  # data statistics, float32 vs 64
    assert _same_setting({"a": [1, 2]}, Namespace(a=(1, 2)))
    assert not _same_setting(0.1, 0.05)
    assert not _same_setting(1, True) and not _same_setting([0.5], [0.5, 0.75])
    assert not _same_setting({"name": "mixup"}, {"name": "cutmix"})
    assert not _same_setting("16/255", "8/255")


# --------------------------------------------------------------------------- accelerators
@pytest.mark.skipif(
    torch.cuda.is_available() or torch.backends.mps.is_available(), reason="a GPU is visible"
)
@pytest.mark.parametrize("accelerator", ["gpu", "cuda", "mps"])
def test_a_gpu_accelerator_without_a_gpu_is_refused(workdir, capsys, accelerator):
    line = expect_error(
        capsys, "fit", *RECIPE, "--trainer.accelerator", accelerator, match="PyTorch sees no"
    )
    assert f"trainer.accelerator is '{accelerator}'" in line and "accelerator auto" in line
    assert nothing_written(workdir)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (["--trainer.limit_val_batches", "0"], "turns validation off"),
        (
            ["--trainer.check_val_every_n_epoch", "3", "--trainer.max_epochs", "2"],
            "would never run",
        ),
    ],
)
def test_a_fit_whose_robustness_evaluation_never_runs_is_refused(workdir, capsys, options, match):
    """Before: exit status 0 and no robustness.json at all."""
    expect_error(capsys, "fit", *RECIPE, *options, match=match)
    assert nothing_written(workdir)
