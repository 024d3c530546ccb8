"""The command line end to end: recipes, checkpoints, resume, compare and bad input."""

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import FAST, RECIPES, expect_cli_error

from robustart.cli import SUBCOMMANDS
from robustart.main import cli_main
from robustart.utils import RESULTS_PREFIX

DIGITS = [RECIPES / "digits" / "standard.yaml", RECIPES / "digits" / "pgd_at.yaml"]


def run(*args):
    return cli_main([str(a) for a in args])


def csv_columns(path):
    return path.read_text().splitlines()[0].split(",")


def announced_results(out: str) -> Path:
    """The folder named by the last line of a command's stdout, ``robustart: results in DIR``."""
    last = out.rstrip("\n").splitlines()[-1]
    assert last.startswith(RESULTS_PREFIX), out[-2000:]
    return Path(last[len(RESULTS_PREFIX) :]).resolve()


@pytest.mark.parametrize("recipe", DIGITS, ids=lambda p: p.stem)
def test_fit_then_test_from_saved_checkpoint(recipe, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run("fit", "--config", recipe, "--config", FAST) == 0
    run_dir = next((tmp_path / "runs").glob("*/version_0"))
    assert announced_results(capsys.readouterr().out) == run_dir.resolve()
    last = run_dir / "checkpoints" / "last.ckpt"
    assert last.is_file() and (run_dir / "config.yaml").is_file()
    columns = csv_columns(run_dir / "metrics.csv")
    for key in (
        "robust/clean",
        "robust/pgd2_linf/eps=8_255",
        "corruption/contrast/5",
        "corruption/mean",
        "val/acc",
        "train/loss",
    ):
        assert key in columns, key
    history = json.loads((run_dir / "robustness.json").read_text())
    assert history[-1]["metrics"]["robust/clean"] >= history[-1]["metrics"]["corruption/mean"] - 1
    assert (run_dir / "robustness_curves.png").stat().st_size > 1000
    checkpoint = torch.load(last, weights_only=True)
    assert checkpoint["robustart"]["model"] == "resnet20"

    assert run("test", "--config", recipe, "--config", FAST, "--ckpt_path", last) == 0
    test_dir = run_dir.parent / "version_1"
    assert announced_results(capsys.readouterr().out) == test_dir.resolve()
    assert "test_robust/pgd2_linf/eps=8_255" in csv_columns(test_dir / "metrics.csv")
    assert "test/acc" in csv_columns(test_dir / "metrics.csv")


def test_resume_from_last_continues_at_the_right_epoch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = DIGITS[0]
    run("fit", "--config", recipe, "--config", FAST)
    run_dir = tmp_path / "runs" / "digits_standard" / "version_0"
    first = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert first["epoch"] == 0
    run(
        "fit",
        "--config",
        recipe,
        "--config",
        FAST,
        "--trainer.max_epochs",
        "2",
        "--ckpt_path",
        "last",
    )
    assert not (run_dir.parent / "version_1").exists()  # logs continue in the same version
    resumed = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["epoch"] == 1 and resumed["global_step"] == 4  # 2 batches per epoch
    epochs = [h["epoch"] for h in json.loads((run_dir / "robustness.json").read_text())]
    assert epochs == [0, 1]


def test_resume_without_a_checkpoint_starts_from_scratch(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run("fit", "--config", DIGITS[0], "--config", FAST, "--ckpt_path", "last")
    err = capsys.readouterr().err  # the command line's one-line warning
    assert "robustart: warning: --ckpt_path last: no last.ckpt" in err
    assert "starting from scratch" in err
    assert (tmp_path / "runs" / "digits_standard" / "version_0" / "checkpoints").is_dir()


def test_fit_without_checkpointing_writes_no_checkpoint(tmp_path, monkeypatch, capsys):
    """``--trainer.enable_checkpointing false`` leaves robustart's checkpoint callback out (it
    would clash with Lightning's setting); the run still logs and evaluates."""
    monkeypatch.chdir(tmp_path)
    no_checkpoints = ["--trainer.enable_checkpointing", "false"]
    assert run("fit", "--config", DIGITS[0], "--config", FAST, *no_checkpoints) == 0
    run_dir = tmp_path / "runs" / "digits_standard" / "version_0"
    assert announced_results(capsys.readouterr().out) == run_dir.resolve()
    assert not list(tmp_path.glob("**/*.ckpt")) and not (run_dir / "checkpoints").exists()
    assert "val/acc" in csv_columns(run_dir / "metrics.csv")
    assert json.loads((run_dir / "robustness.json").read_text())[-1]["epoch"] == 0

    # resuming needs the checkpoint it would keep up to date: refused before anything runs
    line = expect_cli_error(
        capsys,
        "fit",
        "--config",
        DIGITS[0],
        "--config",
        FAST,
        *no_checkpoints,
        "--ckpt_path",
        "last",
        match="--ckpt_path last resumes a run from its last.ckpt",
    )
    assert "enable_checkpointing is false" in line
    assert not (run_dir.parent / "version_1").exists()
    assert len(json.loads((run_dir / "robustness.json").read_text())) == 1


def test_fast_dev_run_writes_no_results(tmp_path, monkeypatch, capsys):
    """A debug run writes nothing, as Lightning's loggers and checkpoints (before: its
    robustness.json and figures went to the working directory, where later debug runs appended
    to the same history); the callback's save_dir still writes there."""
    monkeypatch.chdir(tmp_path)
    assert run("fit", "--config", DIGITS[0], "--config", FAST, "--trainer.fast_dev_run", "1") == 0
    out = capsys.readouterr().out
    assert out.rstrip().splitlines()[-1].startswith("robustart: fast_dev_run: a debug run")
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]
    save_dir = ["--trainer.callbacks.save_dir", "kept"]
    assert (
        run(
            "fit", "--config", DIGITS[0], "--config", FAST, "--trainer.fast_dev_run", "1", *save_dir
        )
        == 0
    )
    assert len(json.loads((tmp_path / "kept" / "robustness.json").read_text())) == 1


def test_compare_without_checkpointing_tests_the_last_weights(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run(
        "compare",
        DIGITS[0],
        "--common",
        FAST,
        "--output",
        "cmp",
        "--",
        "--trainer.enable_checkpointing",
        "false",
    )
    captured = capsys.readouterr()
    assert "robustart: warning: " in captured.err and "checkpointing is off" in captured.err
    assert "standard" in captured.out
    assert set(json.loads((tmp_path / "cmp" / "comparison.json").read_text())["runs"]) == {
        "standard"
    }
    assert not list(tmp_path.glob("**/*.ckpt"))


def test_print_config_and_help(capsys):
    with pytest.raises(SystemExit) as info:
        run("fit", "--config", DIGITS[1], "--print_config")
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "robustart.tasks.AdversarialTrainingTask" in out and "eps: 16/255" in out
    with pytest.raises(SystemExit):
        run("fit", "--model.help", "robustart.tasks.AdversarialTrainingTask")
    out = capsys.readouterr().out
    assert "bn_mode" in out and "BatchNorm" in out


@pytest.mark.slow  # four fits and tests; compare itself is checked by the tests below
def test_compare_over_seeds_reports_mean_and_spread_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["compare", *DIGITS, "--common", FAST, "--output", "cmp", "--seeds", "0", "1"]
    run(*args)
    out = capsys.readouterr().out
    assert "mean ± std over seeds [0, 1]" in out and " ± " in out
    summary = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert summary["seeds"] == [0, 1]
    headers, means, stds = (summary["table"][k] for k in ("headers", "mean", "std"))
    column = headers.index("subset clean")
    for row, mean, std in zip(summary["per_seed"].values(), means, stds):
        values = [100 * run["report"]["clean"] for run in row]
        assert [run["seed"] for run in row] == [0, 1]
        assert mean[column] == pytest.approx(statistics.fmean(values))
        assert std[column] == pytest.approx(statistics.stdev(values))
    # ≈ marks a difference from the first recipe within √(s₁² + s₂²)
    within = summary["table"]["within_spread"]
    for j in range(1, len(headers)):
        if means[1][j] is None:
            continue
        spread = math.hypot(stds[0][j], stds[1][j])
        assert within[1][j] == (abs(means[1][j] - means[0][j]) <= spread)
    assert not any(within[0][1:])  # the baseline is not compared with itself
    csv_header = (tmp_path / "cmp" / "comparison.csv").read_text().splitlines()[0]
    assert "subset clean mean,subset clean std" in csv_header
    # run again: every (recipe, seed) run is reused, and the table is the same
    run(*args)
    err = capsys.readouterr().err
    assert err.count("reusing") == 4
    assert (
        json.loads((tmp_path / "cmp" / "comparison.json").read_text())["table"]
        == (summary["table"])
    )


def test_compare_prints_one_table_and_writes_files(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run("compare", *DIGITS, "--common", FAST, "--output", "cmp")
    out = capsys.readouterr().out
    assert "recipe" in out and "standard" in out and "pgd_at" in out
    assert "pgd2_linf 8/255" in out and "corruption mean (2)" in out
    summary = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert set(summary["runs"]) == {"standard", "pgd_at"}
    assert summary["attack_settings"]["pgd2_linf"]["steps"] == 2
    markdown = (tmp_path / "cmp" / "comparison.md").read_text()
    assert markdown.startswith("| recipe |") and "](robustness_curves.png)" in markdown
    assert (tmp_path / "cmp" / "robustness_curves.png").is_file()
    # one results line, the last: the recipes' own runs do not announce theirs
    assert announced_results(out) == (tmp_path / "cmp").resolve()
    assert out.count(RESULTS_PREFIX) == 1


# --------------------------------------------------------------------------- dispatch
def test_top_level_help_lists_every_subcommand_without_importing_them():
    """`robustart --help` (and `robustart -h`) names every subcommand with its summary, and
    imports none of their modules."""
    probe = (
        "import sys; from robustart.main import cli_main; status = cli_main(sys.argv[1:]); "
        "print(sorted(m for m in sys.modules if m.startswith('robustart.cli.'))); "
        "print('lightning' in sys.modules); sys.exit(status)"
    )
    for option in ("--help", "-h"):
        result = subprocess.run(
            [sys.executable, "-c", probe, option], capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr
        *help_lines, imported, lightning = result.stdout.splitlines()
        assert imported == "['robustart.cli.errors']" and lightning == "False"
        text = "\n".join(help_lines)
        expected = ["fit", "validate", "test", "predict", "compare", "study", "transfer", "shift"]
        assert [*expected, "benchmark"] == list(SUBCOMMANDS)
        for name, subcommand in SUBCOMMANDS.items():
            assert f"  {name}" in text and subcommand.summary in text, name


def test_no_subcommand_prints_the_help_and_refuses(capsys):
    with pytest.raises(SystemExit) as info:
        run()
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert all(f"  {name} " in captured.out for name in SUBCOMMANDS)
    assert captured.err.count("robustart: error:") == 1


def test_unknown_subcommand_is_one_line_with_a_suggestion(capsys):
    with pytest.raises(SystemExit) as info:
        run("tranfser", "zoo:digits_resnet20_standard")
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith("robustart: error: unknown subcommand 'tranfser' (did you mean")
    assert "transfer" in line and ", ".join(SUBCOMMANDS) in line


# --------------------------------------------------------------------------- bad input
def expect_error(capsys, *args, match):
    with pytest.raises(SystemExit) as info:
        run(*args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert match in err, err
    assert "Traceback" not in err
    return err


def test_missing_cifar_root(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    expect_error(
        capsys,
        "fit",
        "--config",
        RECIPES / "cifar10" / "standard.yaml",
        "--config",
        FAST,
        "--data.init_args.root",
        tmp_path / "cifar",
        match="robustart: error: CIFAR-10 not found",
    )


def test_unknown_model_suggests_names(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    expect_error(
        capsys,
        "fit",
        "--config",
        DIGITS[0],
        "--config",
        FAST,
        "--model.init_args.model",
        "resnt20",
        match="Did you mean: resnet20",
    )


def test_unknown_attack_in_callback(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad_attack.yaml"
    bad.write_text(FAST.read_text().replace("name: pgd", "name: pgdd"))
    expect_error(
        capsys,
        "fit",
        "--config",
        DIGITS[0],
        "--config",
        bad,
        match="unknown attack 'pgdd'. Did you mean: pgd",
    )


def test_model_checkpoint_callback_without_checkpointing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    layer = tmp_path / "own_checkpoint.yaml"
    layer.write_text(
        "trainer:\n  callbacks:\n    - class_path: lightning.pytorch.callbacks.ModelCheckpoint\n"
    )
    expect_cli_error(
        capsys,
        "fit",
        "--config",
        DIGITS[0],
        "--config",
        layer,
        "--trainer.enable_checkpointing",
        "false",
        match="trainer.enable_checkpointing is false, but trainer.callbacks holds a "
        "ModelCheckpoint",
    )
    assert not (tmp_path / "runs").exists()


def test_fewer_than_two_classes_are_refused_before_training(capsys, tmp_path, monkeypatch):
    """An image folder tree with one class, or num_classes 1 given to the data: one error
    line when the classes are built. (Before: jsonargparse's multi-line ValueError traceback
    from the value linked into the model.)"""
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    for root, classes in (("one", ["cat"]), ("two", ["cat", "dog"])):
        for split in ("train", "val"):
            for name in classes:
                folder = tmp_path / root / split / name
                folder.mkdir(parents=True)
                for i in range(2):
                    Image.new("RGB", (12, 12), (40 * i, 90, 200)).save(folder / f"{i}.png")
    imagenet = [
        "fit",
        "--config",
        RECIPES / "imagenet" / "standard.yaml",
        "--config",
        FAST,
        "--model.init_args.model",
        "resnet20",
        "--model.init_args.warmup_epochs",
        "0",
        "--data.init_args.num_workers",
        "0",
    ]
    expect_error(
        capsys,
        *imagenet,
        "--data.init_args.root",
        "one",
        match="one/train has 1 class folder (cat): a classifier needs at least 2 classes",
    )
    err = expect_error(
        capsys,
        *imagenet,
        "--data.init_args.root",
        "two",
        "--data.init_args.num_classes",
        "1",
        match="num_classes must be an integer >= 2, got 1",
    )
    assert len(err.strip().splitlines()[-1]) > 0 and "Subtypes" not in err
    assert not (tmp_path / "runs").exists()


def test_malformed_yaml_key(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  init_args:\n    modle: resnet20\n")
    expect_error(capsys, "fit", "--config", DIGITS[0], "--config", bad, match="modle")


def test_truncated_and_mismatched_checkpoints(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run("fit", "--config", DIGITS[0], "--config", FAST)
    last = tmp_path / "runs" / "digits_standard" / "version_0" / "checkpoints" / "last.ckpt"
    expect_error(
        capsys,
        "test",
        "--config",
        DIGITS[0],
        "--config",
        FAST,
        "--ckpt_path",
        last,
        "--model.init_args.model",
        "resnet32",
        match="trained with model='resnet20'",
    )
    # A record that says what the configuration builds, over weights that do not fit it (an
    # edited file, or a checkpoint of another LightningModule without the record): refused
    # from the weights' shapes before Lightning's multi-line load_state_dict error.
    checkpoint = torch.load(last, weights_only=True)
    head = "model.backbone.fc.weight"
    assert head in checkpoint["state_dict"], list(checkpoint["state_dict"])[-4:]
    checkpoint["state_dict"][head] = torch.zeros(100, checkpoint["state_dict"][head].shape[1])
    for drop_record in (False, True):
        if drop_record:
            del checkpoint["robustart"]
        edited = tmp_path / "edited.ckpt"
        torch.save(checkpoint, edited)
        expect_error(
            capsys,
            "test",
            "--config",
            DIGITS[0],
            "--config",
            FAST,
            "--ckpt_path",
            edited,
            match="shape mismatches (e.g. model.backbone.fc.weight: checkpoint (100, 64)",
        )
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(last.read_bytes()[:1000])
    expect_error(
        capsys,
        "test",
        "--config",
        DIGITS[0],
        "--config",
        FAST,
        "--ckpt_path",
        truncated,
        match="truncated or corrupt",
    )


def test_console_script_exits_cleanly_on_bad_input(tmp_path):
    """The installed entry point: one error line, exit status 2, no traceback."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "robustart",
            "fit",
            "--config",
            str(DIGITS[0]),
            "--config",
            str(FAST),
            "--data.init_args.batch_size",
            "0",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "robustart: error: batch_size must be >= 1" in result.stderr
    assert "Traceback" not in result.stderr
