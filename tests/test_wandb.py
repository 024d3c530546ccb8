"""Weights & Biases, for real, in offline mode (no account, no network), read back with the
wandb SDK's own reader (``wandb leet inspect``, see ``wandb_run.py``)."""

import json
import math

import pytest
from conftest import FAST, RECIPES
from wandb_run import offline_runs

from robustart.main import cli_main

WANDB = RECIPES / "loggers" / "wandb.yaml"
PGD_AT = RECIPES / "digits" / "pgd_at.yaml"


@pytest.fixture(autouse=True)
def fresh_wandb_service():
    """Each test gets its own W&B service: the service keeps the working directory of the first
    run of the process, so a later test in another temporary folder would find its run file in
    the earlier test's folder."""
    yield
    import wandb

    wandb.teardown()


def _fit_and_test_pgd_at(tmp_path, monkeypatch):
    """Two epochs of the PGD-AT recipe evaluated after each, then its last checkpoint tested:
    two offline W&B runs (fit, test)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    configs = ["--config", str(PGD_AT), "--config", str(WANDB), "--config", str(FAST)]
    cli_main(
        [
            "fit",
            *configs,
            "--trainer.max_epochs",
            "2",
            "--trainer.callbacks.init_args.every_n_epochs",
            "1",
        ]
    )
    (run_dir,) = (tmp_path / "runs" / "robustart").iterdir()
    cli_main(["test", *configs, "--ckpt_path", str(run_dir / "checkpoints" / "last.ckpt")])
    fit, test = offline_runs(tmp_path / "runs")
    return fit, test, run_dir


@pytest.fixture(scope="module")
def pgd_at_runs(tmp_path_factory):
    monkeypatch = pytest.MonkeyPatch()
    try:
        yield _fit_and_test_pgd_at(tmp_path_factory.mktemp("wandb"), monkeypatch)
    finally:
        monkeypatch.undo()
        import wandb

        wandb.teardown()


def test_fit_and_test_runs_are_grouped_by_recipe_with_job_types(pgd_at_runs):
    fit, test, _ = pgd_at_runs
    for run, job in ((fit, "fit"), (test, "test")):
        assert run.run["display_name"] == "digits_pgd_at"
        assert run.run["run_group"] == "digits_pgd_at"
        assert run.run["job_type"] == job
        assert run.exited


def test_config_is_nested_with_numeric_eps(pgd_at_runs):
    fit, _, _ = pgd_at_runs
    config = fit.config
    assert config["model"]["class"] == "AdversarialTrainingTask"
    assert config["model"]["eps"] == pytest.approx(16 / 255)
    assert config["model"]["step_size"] == pytest.approx(4 / 255)
    assert config["data"]["class"] == "DigitsDataModule" and config["data"]["batch_size"] == 64
    assert config["trainer"]["max_epochs"] == 2
    attack = config["robustness"]["attacks"][0]
    assert attack["eps"] == pytest.approx([2 / 255, 8 / 255])
    assert config["checkpoint"]["every_n_epochs"] == 1
    assert "eps: 16/255" in config["lightning_config"]  # the exact YAML, for reproduction
    assert "eps" not in config  # no flat duplicate of the model's settings


def test_metric_names_group_well(pgd_at_runs):
    fit, test, _ = pgd_at_runs
    keys = {k for run in (fit, test) for row in run.history for k in row}
    assert "robust/pgd2_linf/eps=8_255" in keys and "test_robust/pgd2_linf/eps=8_255" in keys
    for key in keys:
        _, _, value = key.partition("eps=")
        assert "/" not in value, key  # no '/' inside a value
    # one unit per section: accuracies are fractions, corruption errors percentages
    for run in (fit, test):
        for row in run.history:
            for key, value in row.items():
                section = key.split("/")[0].removeprefix("test_")
                if section in ("robust", "corruption") and isinstance(value, float):
                    assert 0.0 <= value <= 1.0, (key, value)
    assert any(k.startswith("corruption_error/unnormalized_mce") for k in keys)
    assert {k.split("/")[0] for k in keys if k.startswith("test")} >= {
        "test",
        "test_robust",
        "test_corruption",
        "test_corruption_error",
        "test_robustness_curves",
        "test_figures",
    }


def test_curves_tables_and_figures_at_the_step_of_their_scalars(pgd_at_runs):
    fit, _, _ = pgd_at_runs
    scalars = fit.rows_with("robust/clean")
    tables = fit.rows_with("robustness_curves/history")
    assert len(scalars) == len(tables) == 2  # one per evaluation
    for scalar_row, table_row in zip(scalars, tables):
        assert table_row["trainer/global_step"] == scalar_row["trainer/global_step"]
        assert table_row["epoch"] == scalar_row["epoch"]
        for figure in ("robustness_curves", "robustness_over_epochs", "corruption_heatmap"):
            assert fit.image(table_row, f"figures/{figure}").read_bytes()[:4] == b"\x89PNG"
    last = tables[-1]
    history = fit.table(last, "robustness_curves/history")
    columns = history["columns"]
    assert columns[:3] == ["epoch", "step", "clean (%)"]
    assert "pgd2_linf ε=8/255 (%)" in columns and "corruption mean (%)" in columns
    assert [row[0] for row in history["data"]] == [0, 1]  # one row per evaluation so far
    assert [row[1] for row in history["data"]] == [r["trainer/global_step"] for r in scalars]
    clean = columns.index("clean (%)")
    assert history["data"][-1][clean] == pytest.approx(100 * scalars[-1]["robust/clean"])
    # accuracy vs ε: one line per evaluated epoch, ε in units of 1/255, starting at clean
    curve = fit.records(last, "robustness_curves/accuracy_vs_eps_pgd2_linf_table")
    points = {(r["lineKey"], r["step"]): r["lineVal"] for r in curve}  # (line, x) → accuracy
    assert sorted({line for line, _ in points}) == ["epoch 0", "epoch 1"]
    assert sorted({x for _, x in points}) == [0, 2, 8]
    eps8 = scalars[-1]["robust/pgd2_linf/eps=8_255"]
    assert points[("epoch 1", 8)] == pytest.approx(100 * eps8)
    severity = fit.records(last, "robustness_curves/accuracy_vs_severity_table")
    assert {r["step"] for r in severity} == {0, 1, 5}
    over_epochs = fit.records(last, "robustness_curves/accuracy_over_epochs_table")
    assert {r["lineKey"] for r in over_epochs} >= {"clean", "pgd2_linf ε=8/255"}
    assert {r["step"] for r in over_epochs} == {0, 1}
    eps_long = fit.table(last, "robustness_curves/eps_curves")
    assert eps_long["columns"] == ["epoch", "attack", "norm", "eps", "eps_255", "accuracy (%)"]


def test_test_run_logs_its_own_sections_and_gallery(pgd_at_runs):
    _, test, run_dir = pgd_at_runs
    (row,) = test.rows_with("test_robustness_curves/history")
    (scalars,) = test.rows_with("test_robust/clean")
    assert row["trainer/global_step"] == scalars["trainer/global_step"]
    for figure in ("robustness_curves", "corruption_heatmap", "corruption_gallery"):
        assert test.image(row, f"test_figures/{figure}").is_file()
    assert not any("figures/robustness_over_epochs" in k for k in row)  # one evaluation
    assert math.isfinite(test.summary["test_robust/pgd2_linf/eps=8_255"])
    for name in ("robustness_curves.png", "robustness_over_epochs.png"):
        assert (run_dir / name).is_file(), name  # the fit's folder
    test_dir = run_dir.parent / test.run["run_id"]  # each W&B run has its own folder
    for name in ("robustness_curves_test.png", "corruption_gallery.png"):
        assert (test_dir / name).is_file(), name


def test_wandb_resume_from_last_uses_the_same_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    args = [
        "fit",
        "--config",
        str(RECIPES / "digits" / "standard.yaml"),
        "--config",
        str(WANDB),
        "--config",
        str(FAST),
    ]
    cli_main(args)
    (first,) = (tmp_path / "runs" / "robustart").iterdir()
    cli_main([*args, "--trainer.max_epochs", "2", "--ckpt_path", "last"])
    assert [p.name for p in (tmp_path / "runs" / "robustart").iterdir()] == [first.name]


def test_compare_groups_its_runs_and_logs_the_table(tmp_path, monkeypatch):
    """`robustart compare` fits and tests with one trainer: the W&B run (one per recipe) holds
    the training and the test metrics and is finished after the test; the runs share a group,
    and one more run of the group holds the comparison table."""
    import wandb

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    recipe = RECIPES / "digits" / "standard.yaml"
    cli_main(
        ["compare", str(recipe), "--common", str(WANDB), "--common", str(FAST), "--group", "abl"]
    )
    assert wandb.run is None  # finished, not left open for the next run in the process
    run, table_run = offline_runs(tmp_path / "runs")  # fit + test in one run, then the table
    assert run.run["run_group"] == table_run.run["run_group"] == "abl"
    assert (run.run["job_type"], table_run.run["job_type"]) == ("compare", "comparison")
    assert run.exited and table_run.exited
    keys = {k for row in run.history for k in row}
    assert {"val/acc", "test/acc", "test_robust/pgd2_linf/eps=8_255"} <= keys
    (row,) = table_run.rows_with("comparison/table")
    table = table_run.table(row, "comparison/table")
    assert table["columns"][:3] == ["recipe", "test acc", "subset clean"]
    assert [r[0] for r in table["data"]] == ["standard"]
    summary = json.loads((tmp_path / "runs" / "compare" / "comparison.json").read_text())
    clean = summary["runs"]["standard"]["report"]["clean"]
    assert table["data"][0][2] == pytest.approx(100 * clean)
    assert table_run.image(row, "comparison/robustness_curves").is_file()


def test_resume_last_picks_this_runs_checkpoint_among_a_projects_runs(tmp_path, monkeypatch):
    """W&B keeps every run of a project in one folder. Before: `--ckpt_path last` of run s0
    resumed the newest last.ckpt there, run s1's, continuing s1's training under s0's name."""
    import os
    import time

    from jsonargparse import Namespace

    from robustart.callbacks.run_dir import resume_last_checkpoint
    from robustart.errors import ConfigError

    monkeypatch.setenv("WANDB_MODE", "offline")
    project = tmp_path / "runs" / "robustart"
    for run_id, name in (("aaa", "s0"), ("bbb", "s1")):
        (project / run_id / "checkpoints").mkdir(parents=True)
        (project / run_id / "checkpoints" / "last.ckpt").write_bytes(b"")
        (project / run_id / "config.yaml").write_text(
            f"trainer:\n  logger:\n    init_args: {{name: {name}, project: robustart}}\n"
        )
        time.sleep(0.01)
    os.utime(project / "bbb" / "checkpoints" / "last.ckpt")  # s1's is the newest

    def trainer_config(name):
        init_args = Namespace(save_dir=str(tmp_path / "runs"), project="robustart", name=name)
        logger = Namespace(class_path="lightning.pytorch.loggers.WandbLogger", init_args=init_args)
        return Namespace(logger=logger)

    config = trainer_config("s0")
    assert resume_last_checkpoint(config) == project / "aaa" / "checkpoints" / "last.ckpt"
    assert config.logger.init_args.version == "aaa"
    with pytest.raises(ConfigError, match="--ckpt_path last is ambiguous: 2 runs"):
        resume_last_checkpoint(trainer_config(None))
    with pytest.warns(UserWarning, match="starting from scratch"):
        assert resume_last_checkpoint(trainer_config("s2")) is None
