"""The W&B content built from robustness results, on hand-made cases (no run needed)."""

import pytest
from jsonargparse import Namespace
from lightning.pytorch import Trainer

from robustart.callbacks.robustness import describe_model
from robustart.evaluation import RobustnessReport
from robustart.models.loading import model_names
from robustart.tasks import ClassificationTask
from robustart.wandb_logging import (
    Evaluation,
    curve_evaluations,
    history_columns,
    numeric_config,
    run_config,
)


def test_numeric_config_nests_classes_and_turns_fractions_into_numbers():
    config = Namespace(
        model=Namespace(
            class_path="robustart.tasks.AdversarialTrainingTask",
            init_args=Namespace(eps="16/255", step_size="4/255", steps=7, norm="linf"),
        ),
        data={"class_path": "robustart.data.DigitsDataModule", "init_args": {"batch_size": 64}},
        trainer=Namespace(
            max_epochs=8,
            logger={"class_path": "lightning.pytorch.loggers.WandbLogger"},
            callbacks=[
                {
                    "class_path": "robustart.callbacks.RobustnessEvaluation",
                    "init_args": {"attacks": [{"name": "pgd", "eps": ["2/255", "8/255"]}]},
                },
            ],
            devices=None,
        ),
        seed_everything=0,
    )
    out = run_config(config)
    assert out["model"] == {
        "class": "AdversarialTrainingTask",
        "eps": pytest.approx(16 / 255),
        "step_size": pytest.approx(4 / 255),
        "steps": 7,
        "norm": "linf",
    }
    assert out["data"] == {"class": "DigitsDataModule", "batch_size": 64}
    assert out["trainer"] == {"max_epochs": 8}  # no logger, callbacks or unset values
    assert out["robustness"]["attacks"][0]["eps"] == pytest.approx([2 / 255, 8 / 255])
    assert out["seed_everything"] == 0
    # only whole fractions become numbers
    assert numeric_config(["0.5/2", "a/b", "8/255 px", "1/0.5"]) == [0.25, "a/b", "8/255 px", 2.0]


def test_curve_evaluations_keep_the_first_and_the_latest():
    assert curve_evaluations(3, 8) == [0, 1, 2]
    assert curve_evaluations(100, 5) == [0, 25, 50, 74, 99]
    assert curve_evaluations(1, 8) == [0]


def _report(clean, pgd, corruption):
    return RobustnessReport(
        num_images=4,
        clean=clean,
        attacks={"pgd10_linf": {2 / 255: pgd[0], 8 / 255: pgd[1]}, "fgsm_linf": {8 / 255: 0.5}},
        attack_settings={"pgd10_linf": {"norm": "linf"}, "fgsm_linf": {"norm": "linf"}},
        corruptions={"fog": {1: corruption, 3: corruption / 2}},
        worst_case={"robust/worst_case_linf/eps=8_255": min(pgd[1], 0.5)},
    )


def test_history_columns_in_percent_with_one_row_per_evaluation():
    history = [
        Evaluation(0, 9, _report(0.75, (0.5, 0.25), 0.5), {"corruption_error/mce": 90.0}),
        Evaluation(3, 39, _report(1.0, (1.0, 0.75), 1.0), {"corruption_error/mce": 60.0}),
    ]
    columns = history_columns(history)
    assert list(columns) == [
        "clean (%)",
        "pgd10_linf ε=2/255 (%)",
        "pgd10_linf ε=8/255 (%)",
        "fgsm_linf ε=8/255 (%)",
        "worst_case_linf ε=8/255 (%)",
        "corruption mean (%)",
        "mCE (%)",
    ]
    assert columns["clean (%)"] == [75.0, 100.0]
    assert columns["pgd10_linf ε=8/255 (%)"] == [25.0, 75.0]
    assert columns["worst_case_linf ε=8/255 (%)"] == [25.0, 50.0]
    assert columns["corruption mean (%)"] == [37.5, 75.0]  # mean of severities 1 and 3
    assert columns["mCE (%)"] == [90.0, 60.0]  # already in percent
    # a column missing in one evaluation is None there, not 0
    history[0].report.attacks.pop("fgsm_linf")
    assert history_columns(history)["fgsm_linf ε=8/255 (%)"] == [None, 50.0]


def test_figure_titles_name_the_model_and_what_was_tested():
    task = ClassificationTask(model="resnet20", num_classes=10)
    trainer = Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    assert describe_model(trainer, task) == "resnet20, epoch 0"
    assert describe_model(trainer, task, prefix="test_") == "resnet20, initial weights"
    task.hparams["weights"] = "zoo:digits_resnet20_pgd_at"
    assert describe_model(trainer, task, prefix="test_") == (
        "resnet20, weights zoo:digits_resnet20_pgd_at"
    )


def test_checkpoints_of_wandb_runs_are_named_by_the_run_not_only_its_id(tmp_path):
    run = tmp_path / "runs" / "robustart" / "k3vsm2jq"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text(
        "trainer:\n  logger:\n    class_path: robustart.loggers.WandbLogger\n"
        "    init_args:\n      name: digits_pgd_at\n      project: robustart\n"
    )
    csv_run = tmp_path / "runs" / "digits_standard" / "version_0"
    (csv_run / "checkpoints").mkdir(parents=True)
    (csv_run / "config.yaml").write_text(": not yaml [")  # unreadable: the folders name it
    specs = [str(run / "checkpoints" / "last.ckpt"), str(csv_run / "checkpoints" / "last.ckpt")]
    assert model_names(specs) == ["digits_pgd_at/k3vsm2jq:last", "digits_standard/version_0:last"]
