"""Bad input on the command line: every case gets one ``robustart: error: ...`` line naming the
problem, exit status 2, no traceback and no usage dump, and it is refused when the
configuration is built, before any training or attack starts (no checkpoint, no results).

The library-level cases (datasets, images, labels, attacks, corruptions, metrics, checkpoints,
``transfer`` and ``shift``) are in tests/test_bad_input.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import FAST, RECIPES
from conftest import expect_cli_error as expect_error

from robustart.callbacks import RobustnessEvaluation
from robustart.errors import ConfigError
from robustart.utils import check_output_dir

STANDARD = RECIPES / "digits" / "standard.yaml"
PGD_AT = RECIPES / "digits" / "pgd_at.yaml"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def nothing_trained(folder) -> bool:
    return not list(folder.glob("**/*.ckpt")) and not list(folder.glob("**/robustness.json"))


# --------------------------------------------------------------------------- config files
def test_missing_config_file(workdir, capsys):
    expect_error(capsys, "fit", "--config", "nothere.yaml", match="nothere.yaml does not exist")


def test_unparsable_config_file_is_named_with_its_line(workdir, capsys):
    (workdir / "bad.yaml").write_text("trainer:\n  max_epochs: [1\n")
    line = expect_error(
        capsys, "fit", "--config", STANDARD, "--config", "bad.yaml", match="bad.yaml"
    )
    assert "not valid YAML at line" in line


def test_empty_config_file_is_named(workdir, capsys):
    (workdir / "empty.yaml").write_text("# nothing yet\n")
    expect_error(capsys, "fit", "--config", "empty.yaml", match="empty.yaml is empty")


def test_config_file_that_is_not_a_mapping(workdir, capsys):
    (workdir / "list.yaml").write_text("- model\n- data\n")
    expect_error(capsys, "fit", "--config", "list.yaml", match="list.yaml holds a YAML list")


def test_unknown_option_gets_one_line_not_the_usage(workdir, capsys):
    expect_error(
        capsys,
        "fit",
        "--config",
        STANDARD,
        "--model.init_args.lrr",
        "3",
        match="Option 'lrr' is not accepted",
    )


def test_value_of_the_wrong_type(workdir, capsys):
    expect_error(
        capsys,
        "fit",
        "--config",
        STANDARD,
        "--trainer.max_epochs",
        "many",
        match="trainer.max_epochs: expected int",
    )


def test_unknown_class_path(workdir, capsys):
    expect_error(
        capsys, "fit", "--config", STANDARD, "--model", "robustart.tasks.Nope", match="Nope"
    )


@pytest.mark.parametrize("argv", [[], ["fitt"]], ids=["none", "typo"])
def test_missing_or_unknown_subcommand_lists_all_of_them(argv, capsys):
    names = "fit, validate, test, predict, compare, study, transfer, shift, benchmark"
    expect_error(capsys, *argv, match=names)


# --------------------------------------------------------------------------- outputs
@pytest.mark.parametrize(
    "option",
    ["--trainer.logger.init_args.save_dir", "--trainer.default_root_dir", "--checkpoint.dirpath"],
)
def test_fit_output_below_a_regular_file_is_refused_before_training(option, workdir, capsys):
    (workdir / "occupied").write_text("a file, not a folder")
    expect_error(
        capsys,
        "fit",
        "--config",
        STANDARD,
        "--config",
        FAST,
        option,
        "occupied/runs",
        match="occupied/runs is below occupied, which is a file",
    )
    assert nothing_trained(workdir)


@pytest.mark.parametrize(
    ("option", "value", "match"),
    [
        # before: ZeroDivisionError / ValueError tracebacks when Lightning's loops started
        ("--trainer.check_val_every_n_epoch", "0", "check_val_every_n_epoch is 0: it must be 1"),
        ("--trainer.accumulate_grad_batches", "0", "accumulate_grad_batches is 0: it must be 1"),
        ("--trainer.val_check_interval", "5", "limit_train_batches=2: validation would never"),
        # before: two robustness evaluations per epoch, recorded as one epoch
        ("--trainer.val_check_interval", "0.5", "a validation every 1 of the epoch's 2 training"),
        ("--trainer.val_check_interval", "1", "a validation every 1 of the epoch's 2 training"),
        # before: accepted, and Lightning trained without clipping
        ("--trainer.gradient_clip_val", "-1", "gradient_clip_val is -1: Lightning skips"),
        # before: a dtype traceback at the first attack or evaluation
        ("--trainer.precision", "bf16-true", "--trainer.precision bf16-mixed"),
        # Lightning's own refusals (MisconfigurationException), now one line
        ("--checkpoint.save_top_k", "-2", "Invalid value for save_top_k=-2"),
        ("--checkpoint.mode", "maxx", "`mode` can be min, max but got maxx"),
    ],
)
def test_trainer_and_checkpoint_settings_are_refused_in_one_line(
    option, value, match, workdir, capsys
):
    expect_error(capsys, "fit", "--config", STANDARD, "--config", FAST, option, value, match=match)
    assert nothing_trained(workdir)


def test_seeds_out_of_range_are_refused_before_work(workdir, capsys):
    """Seeds beyond 2**32 - 1 (NumPy's and Lightning's range): before, an overflow traceback
    from torch's manual_seed, for the epoch-end evaluation's seed after a training epoch."""
    expect_error(
        capsys,
        "fit",
        "--config",
        STANDARD,
        "--config",
        FAST,
        "--seed_everything",
        str(2**40),
        match="seed_everything must be an integer from 0 to 4294967295",
    )
    expect_error(
        capsys,
        "benchmark",
        "zoo:digits_resnet20_standard",
        "--seed",
        str(2**70),
        match="argument --seed: expected a seed from 0 to 4294967295",
    )
    with pytest.raises(ConfigError, match="RobustnessEvaluation seed must be an integer"):
        RobustnessEvaluation(seed=2**40)
    assert nothing_trained(workdir)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_outputs_where_no_folder_can_be_made_are_refused_before_work(workdir, capsys):
    """/proc passes os.access for root but refuses mkdir. (Before: a FileNotFoundError
    traceback from the logger, or from benchmark's writer after the evaluation.)"""
    option = "--trainer.logger.init_args.save_dir"
    expect_error(
        capsys,
        "fit",
        "--config",
        STANDARD,
        "--config",
        FAST,
        option,
        "/proc/robustart_runs",
        match="/proc/robustart_runs: cannot create folders in /proc",
    )
    assert nothing_trained(workdir)
    with pytest.raises(ConfigError, match="cannot create folders in /proc"):
        check_output_dir("/proc/robustart_out/deeper", "--output folder")
    check_output_dir(workdir / "new" / "results")  # a writable place: nothing left behind
    assert not (workdir / "new").exists() and not list(workdir.glob(".robustart-write-check-*"))


def test_compare_output_below_a_regular_file_is_refused_before_training(workdir, capsys):
    (workdir / "occupied").write_text("a file")
    expect_error(
        capsys,
        "compare",
        STANDARD,
        PGD_AT,
        "--common",
        FAST,
        "--output",
        "occupied/cmp",
        match="--output folder occupied/cmp is below occupied",
    )
    assert nothing_trained(workdir)


def test_compare_checks_every_recipe_before_training_the_first(workdir, capsys):
    (workdir / "typo.yaml").write_text("model:\n  init_args:\n    lrr: 0.1\n")
    expect_error(
        capsys,
        "compare",
        STANDARD,
        f"{PGD_AT}+typo.yaml",
        "--common",
        FAST,
        match="Option 'lrr' is not accepted",
    )
    assert nothing_trained(workdir)


def test_compare_names_a_missing_recipe(workdir, capsys):
    expect_error(capsys, "compare", STANDARD, "nothere.yaml", match="recipe nothere.yaml does not")
    assert nothing_trained(workdir)


# --------------------------------------------------------------------------- monitors
def test_checkpoint_monitor_typo_suggests_the_logged_names(workdir, capsys):
    line = expect_error(
        capsys,
        "fit",
        "--config",
        PGD_AT,
        "--checkpoint.monitor",
        "robust/pgd10_linf/eps=16/256",
        match="no RobustnessEvaluation logs this metric",
    )
    assert "robust/pgd10_linf/eps=16_255" in line
    assert nothing_trained(workdir)


def test_checkpoint_ranked_by_a_stale_robustness_value_is_refused(workdir, capsys):
    expect_error(
        capsys,
        "fit",
        "--config",
        PGD_AT,
        "--checkpoint.every_n_epochs",
        "1",
        match="only every 4 epochs",
    )


def test_validation_monitor_typo(workdir, capsys):
    expect_error(
        capsys,
        "fit",
        "--config",
        STANDARD,
        "--checkpoint.monitor",
        "val/accuracy",
        match="did you mean val/acc?",
    )


def test_early_stopping_on_a_metric_that_is_not_logged(workdir, capsys):
    (workdir / "early.yaml").write_text(
        "trainer:\n  callbacks+:\n    - class_path: lightning.pytorch.callbacks.EarlyStopping\n"
        "      init_args: {monitor: robust/pgd10_linf/eps=32_255, mode: max}\n"
    )
    expect_error(
        capsys,
        "fit",
        "--config",
        STANDARD,
        "--config",
        "early.yaml",
        match="EarlyStopping(monitor='robust/pgd10_linf/eps=32_255')",
    )


# --------------------------------------------------------------------------- suites
def test_missing_frost_photographs_fail_when_the_suite_is_built(workdir, monkeypatch, capsys):
    """A final suite with frost used to die after all its attacks; now before training."""
    empty = workdir / "no_frost"
    empty.mkdir()
    monkeypatch.setenv("ROBUSTART_FROST_DIR", str(empty))
    expect_error(
        capsys,
        "fit",
        "--config",
        PGD_AT,
        "--config",
        RECIPES / "evaluation" / "digits_final.yaml",
        match="frost",
    )
    assert nothing_trained(workdir)


def test_unknown_named_suite(workdir, capsys):
    expect_error(
        capsys,
        "fit",
        "--config",
        STANDARD,
        "--config",
        FAST,
        "--trainer.callbacks.init_args.test_suite",
        "autoattack_lnf",
        match="unknown robustness suite 'autoattack_lnf'",
    )


def test_unparsable_suite_file_is_named(workdir, capsys):
    (workdir / "suite.yaml").write_text("attacks: [{name: pgd\n")
    line = expect_error(
        capsys,
        "fit",
        "--config",
        STANDARD,
        "--config",
        FAST,
        "--trainer.callbacks.init_args.test_suite",
        "suite.yaml",
        match="suite.yaml is not valid YAML",
    )
    assert "\n" not in line


def test_unknown_attack_in_a_suite(workdir, capsys):
    (workdir / "suite.yaml").write_text("attacks:\n  - {name: pgdd, eps: 8/255}\n")
    expect_error(
        capsys,
        "fit",
        "--config",
        STANDARD,
        "--config",
        FAST,
        "--trainer.callbacks.init_args.test_suite",
        "suite.yaml",
        match="pgdd",
    )


# --------------------------------------------------------------------------- checkpoints
def test_missing_checkpoint(workdir, capsys):
    expect_error(
        capsys, "test", "--config", STANDARD, "--ckpt_path", "nothere.ckpt", match="no such file"
    )


def test_random_bytes_checkpoint_never_suggests_weights_only_false(workdir, capsys):
    (workdir / "noise.ckpt").write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8).numpy())
    line = expect_error(
        capsys, "test", "--config", STANDARD, "--ckpt_path", "noise.ckpt", match="noise.ckpt"
    )
    assert "weights_only" not in line


def test_plain_state_dict_of_another_architecture_as_ckpt_path(workdir, capsys):
    import timm

    torch.save(timm.create_model("resnet18", num_classes=10).state_dict(), "resnet18.pt")
    expect_error(
        capsys,
        "test",
        "--config",
        STANDARD,
        "--ckpt_path",
        "resnet18.pt",
        match="not a Lightning checkpoint",
    )


def test_plain_state_dict_of_another_architecture_as_weights(workdir, capsys):
    import timm

    torch.save(timm.create_model("resnet18", num_classes=10).state_dict(), "resnet18.pt")
    expect_error(
        capsys,
        "fit",
        "--config",
        STANDARD,
        "--model.init_args.weights",
        "resnet18.pt",
        match="do not fit model 'resnet20'",
    )
    assert nothing_trained(workdir)


@pytest.mark.parametrize(
    "argv",
    [
        ["compare", "--bogus"],
        ["transfer", "zoo:digits_resnet20_standard", "--eps"],
        ["shift", "zoo:digits_resnet20_standard", "--benchmark", "cifar10-c"],
    ],
    ids=["compare", "transfer", "shift"],
)
def test_usage_errors_of_the_other_subcommands_are_one_line(argv, workdir, capsys):
    expect_error(capsys, *argv, match=f"(see `robustart {argv[0]} --help`)")


@pytest.mark.parametrize(
    "option", ["--trainer.limit_test_batches", "--trainer.limit_train_batches"]
)
def test_compare_refuses_a_stage_over_zero_batches_before_training(workdir, capsys, option):
    """compare fits and then tests with the same trainer: a test over zero batches would come
    after every fit and report nothing."""
    line = expect_error(
        capsys,
        "compare",
        STANDARD,
        PGD_AT,
        "--common",
        FAST,
        "--",
        option,
        "0",
        match=f"{option[2:]} is 0",
    )
    assert "batches >= 1" in line
    assert nothing_trained(workdir)


def test_only_jsonargparse_type_checks_pass_for_bad_input():
    """A bug raised while a class is built (jsonargparse wraps it in the same union error)
    must stay a traceback, not become a `robustart: error:` line that blames the input."""
    from robustart.cli.errors import instantiation_message

    head = (
        "Does not validate against any of the Union subtypes\nSubtypes: [<class "
        "'robustart.tasks.classification.ClassificationTask'>, <class 'NoneType'>]\nErrors:\n"
    )
    refused = head + "  - Expected argument `num_classes` to be an integer larger than 1\n"
    assert instantiation_message(refused) == (
        "robustart.tasks.classification.ClassificationTask: Expected argument `num_classes` "
        "to be an integer larger than 1"
    )
    assert instantiation_message(head + "  - name 'check_seed' is not defined\n") is None
    assert instantiation_message("some other ValueError") is None


def test_robustart_warnings_are_one_line_and_other_warnings_keep_pythons_format(tmp_path, capsys):
    """Before: ``.../folders.py:190: UserWarning: ...`` and the source line, for a warning
    addressed to the user (non-image files left out of a dataset)."""
    import warnings

    from robustart.cli.errors import robustart_warnings_as_one_line
    from robustart.data.folders import scan_class_folders

    (tmp_path / "a").mkdir()
    from PIL import Image

    Image.new("RGB", (4, 4)).save(tmp_path / "a" / "0.png")
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    with warnings.catch_warnings(), robustart_warnings_as_one_line():
        warnings.simplefilter("always")
        scan_class_folders(tmp_path, {"a": 0}, "my set", "<root>/<class>/*.png")
        scan_class_folders(tmp_path, {"a": 0}, "my set", "<root>/<class>/*.png")  # once only
        warnings.warn("from elsewhere", UserWarning, stacklevel=1)
    err = capsys.readouterr().err  # the other warning goes to Python's (here pytest's) handler
    assert err.startswith("robustart: warning: my set: 1 file(s) in the class folders")
    assert len(err.splitlines()) == 1 and "elsewhere" not in err and "folders.py" not in err


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (["--checkpoint.monitor", "val/acc"], "better when higher, so it would keep"),
        (["--checkpoint.monitor", "val/loss", "--checkpoint.mode", "max"], "better when lower"),
        (["--checkpoint.monitor", "val_loss"], "no evaluation of this run logs this metric"),
        (["--checkpoint.monitor", "test/acc"], "no evaluation of this run logs this metric"),
        # CE normalised by AlexNet's ImageNet-C errors: not logged for 32-px digits
        (
            ["--config", str(FAST), "--checkpoint.monitor", "corruption_error/gaussian_noise"],
            "no evaluation of this run logs this metric; did you mean",
        ),
    ],
)
def test_checkpoint_monitor_directions_and_unknown_names_are_refused(
    workdir, capsys, options, match
):
    """Before: monitoring val/acc with Lightning's default mode 'min' kept the worst epoch's
    checkpoint (val/acc 0.047 of 0.047, 0.117, 0.070), which `compare` then tested; a monitor
    outside robustart's names failed after the first epoch."""
    expect_error(capsys, "fit", "--config", STANDARD, *options, match=match)
    assert nothing_trained(workdir)


def test_an_interrupted_command_is_one_line_and_status_130(capsys):
    """Before: Ctrl-C during a benchmark printed a KeyboardInterrupt traceback."""
    from robustart.cli.errors import input_errors_as_one_line

    with pytest.raises(SystemExit) as info, input_errors_as_one_line():
        raise KeyboardInterrupt
    assert info.value.code == 130
    err = capsys.readouterr().err
    assert err.startswith("robustart: interrupted:") and len(err.splitlines()) == 1
