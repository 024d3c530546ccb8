"""Weights & Biases, for real, in offline mode (no account, no network)."""

import pytest
from conftest import FAST, RECIPES
from wandb_records import logged_values, read_records

from robustart.main import cli_main


@pytest.fixture(autouse=True)
def fresh_wandb_service():
    """Each test gets its own W&B service: the service keeps the working directory of the first
    run of the process, so a later test in another temporary folder would find its run file in
    the earlier test's folder."""
    yield
    import wandb

    wandb.teardown()


def test_wandb_offline_summary_holds_robustness_metrics(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    cli_main(
        [
            "fit",
            "--config",
            str(RECIPES / "digits" / "pgd_at.yaml"),
            "--config",
            str(RECIPES / "loggers" / "wandb.yaml"),
            "--config",
            str(FAST),
        ]
    )
    runs = list((tmp_path / "runs" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    run_id = runs[0].name.rsplit("-", 1)[1]
    summary = logged_values(runs[0] / f"run-{run_id}.wandb")
    for key in (
        "robust/clean",
        "robust/pgd2_linf/eps=8_255",
        "corruption/contrast/5",
        "corruption/mean",
        "val/acc",
    ):
        assert key in summary, sorted(summary)
    assert 0 <= summary["robust/pgd2_linf/eps=8_255"] <= summary["robust/clean"] <= 1
    # the curves were logged as W&B line plots backed by tables
    assert summary["curves/pgd2_linf_table/_type"] == "table-file"
    assert summary["curves/corruption_severity_table/_type"] == "table-file"
    # files of the run live in its own folder next to its checkpoints
    run_dir = tmp_path / "runs" / "robustart" / run_id
    for name in (
        "config.yaml",
        "robustness.json",
        "robustness_curves.png",
        "checkpoints/last.ckpt",
    ):
        assert (run_dir / name).is_file(), name
    assert not (tmp_path / "runs" / "config.yaml").exists()


def test_wandb_resume_from_last_uses_the_same_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    args = [
        "fit",
        "--config",
        str(RECIPES / "digits" / "standard.yaml"),
        "--config",
        str(RECIPES / "loggers" / "wandb.yaml"),
        "--config",
        str(FAST),
    ]
    cli_main(args)
    (first,) = (tmp_path / "runs" / "robustart").iterdir()
    cli_main([*args, "--trainer.max_epochs", "2", "--ckpt_path", "last"])
    assert [p.name for p in (tmp_path / "runs" / "robustart").iterdir()] == [first.name]


def test_compare_closes_each_wandb_run_after_its_test(tmp_path, monkeypatch):
    """`robustart compare` fits and tests with one trainer: the W&B run (one per recipe) holds
    the training and the test metrics, and FinishLoggers closes it only after the test."""
    import wandb

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    recipe = RECIPES / "digits" / "standard.yaml"
    logger = RECIPES / "loggers" / "wandb.yaml"
    cli_main(["compare", str(recipe), "--common", str(logger), "--common", str(FAST)])
    assert wandb.run is None  # finished, not left open for the next run in the process
    (run,) = (tmp_path / "runs" / "wandb").glob("offline-run-*")  # fit and test: one run
    run_file = run / f"run-{run.name.rsplit('-', 1)[1]}.wandb"
    summary = logged_values(run_file)
    assert "val/acc" in summary and "test/acc" in summary, sorted(summary)
    assert "test_robust/pgd2_linf/eps=8_255" in summary
    kinds = [record.WhichOneof("record_type") for record in read_records(run_file)]
    assert "exit" in kinds  # the run was finished
    last_summary = max(i for i, kind in enumerate(kinds) if kind == "summary")
    assert last_summary < kinds.index("exit")  # the test metrics came before the finish
