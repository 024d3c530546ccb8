"""A diverged model is never reported as a model: training stops (or skips) at the step where
the loss or gradients stop being finite, checkpoints stay finite, and evaluating non-finite
logits is refused."""

from __future__ import annotations

import pytest
import torch
from conftest import FAST, RECIPES
from conftest import expect_cli_error as expect_error

from robustart.callbacks import DivergenceGuard, RobustnessEvaluation
from robustart.errors import ConfigError, InputRangeError, NonFiniteError
from robustart.evaluation import RobustnessSuite, evaluate_robustness
from robustart.main import cli_main

STANDARD = RECIPES / "digits" / "standard.yaml"
RUN = ("runs", "digits_standard", "version_0")


def run(*args):
    return cli_main([str(a) for a in args])


def poison(tmp_path, epoch, batches, name="poison.yaml"):
    layer = tmp_path / name
    layer.write_text(
        "trainer:\n  callbacks+:\n    - class_path: poison.PoisonGradients\n"
        f"      init_args: {{epoch: {epoch}, batches: {list(batches)}}}\n"
    )
    return layer


@pytest.fixture(autouse=True)
def tests_on_path(monkeypatch):
    import sys
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent))
    yield
    sys.modules.pop("poison", None)


def all_finite(state):
    return all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_huge_learning_rate_stops_training_with_the_step_named(tmp_path, monkeypatch, capsys):
    """The issue's reproduction: lr 1e6 used to exit 0 and report a "fully robust" model."""
    monkeypatch.chdir(tmp_path)
    line = expect_error(
        capsys,
        "fit",
        "--config",
        STANDARD,
        "--trainer.max_epochs",
        "1",
        "--trainer.enable_progress_bar",
        "false",
        "--model.init_args.lr",
        "1e6",
        match="training diverged",
    )
    assert "step" in line and "learning rate" in line
    run_dir = tmp_path.joinpath(*RUN)
    assert not (run_dir / "robustness.json").exists()  # no number for a broken model
    assert not list(run_dir.glob("checkpoints/*.ckpt"))


def test_nan_gradients_stop_before_the_update_and_keep_the_last_finite_checkpoint(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    line = expect_error(
        capsys,
        "fit",
        "--config",
        STANDARD,
        "--config",
        FAST,
        "--config",
        poison(tmp_path, epoch=1, batches=[1]),
        "--trainer.max_epochs",
        "3",
        match="training diverged at step 3 (epoch 1, batch 1): the gradient norm is nan",
    )
    checkpoints = tmp_path.joinpath(*RUN, "checkpoints")
    assert "runs/digits_standard/version_0/checkpoints/last.ckpt" in line
    assert sorted(p.name for p in checkpoints.iterdir()) == ["epoch=000.ckpt", "last.ckpt"]
    last = torch.load(checkpoints / "last.ckpt", weights_only=True)
    assert last["global_step"] == 2 and all_finite(last["state_dict"])
    # the recipe evaluates every 4 epochs and at the last: nothing was evaluated
    assert not tmp_path.joinpath(*RUN, "robustness.json").exists()


def test_skip_drops_the_batch_counts_it_and_trains_on(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--config", STANDARD, "--config", FAST, "--trainer.max_epochs", "2"]
    assert run(*args, "--config", poison(tmp_path, 1, [0]), "--divergence.action", "skip") == 0
    run_dir = tmp_path.joinpath(*RUN)
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 4 and all_finite(last["state_dict"])
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    column = rows[0].split(",").index("train/nonfinite_skipped")
    counts = [float(r.split(",")[column]) for r in rows[1:] if r.split(",")[column]]
    assert counts == [0.0, 1.0]  # epoch 0: none; epoch 1: the poisoned batch
    # the NaN step was not applied: the SGD momentum buffers are finite too
    assert all(all_finite(state) for state in last["optimizer_states"][0]["state"].values())


def test_skip_gives_up_after_max_skipped_batches_in_a_row(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    expect_error(
        capsys,
        "fit",
        "--config",
        STANDARD,
        "--config",
        FAST,
        "--config",
        poison(tmp_path, 0, [0, 1]),
        "--divergence.action",
        "skip",
        "--divergence.max_skipped",
        "2",
        match="for 2 batches in a row",
    )


def test_guard_refuses_to_write_a_checkpoint_with_nan_weights():
    guard = DivergenceGuard()

    class FakeTrainer:
        global_step = 7
        checkpoint_callback = None

    state = {"model.weight": torch.tensor([1.0, float("nan")]), "model.count": torch.tensor(3)}
    with pytest.raises(NonFiniteError, match="1 weight tensors are NaN"):
        guard.on_save_checkpoint(FakeTrainer(), None, {"state_dict": state})
    with pytest.raises(ConfigError):
        DivergenceGuard(action="ignore")


# --------------------------------------------------------------------------- evaluation
class Constant(torch.nn.Module):
    """A "model" returning fixed logits (N, 10), optionally NaN."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.value = value

    def forward(self, images):
        logits = images.flatten(1)[:, :10] * self.scale
        return torch.where(torch.isfinite(logits), logits * 0 + self.value, logits)


@pytest.mark.parametrize(
    "suite",
    [
        RobustnessSuite([{"name": "pgd", "eps": "8/255", "steps": 2}], None),
        RobustnessSuite(None, ["contrast"], severities=[1]),
    ],
    ids=["attack", "corruption_only"],
)
def test_evaluation_refuses_nan_logits(suite):
    images, labels = torch.rand(4, 3, 8, 8), torch.arange(4)
    with pytest.raises(NonFiniteError, match="NaN or infinite"):
        evaluate_robustness(Constant(float("nan")), [(0, images, labels)], suite, "cpu")


def test_evaluation_refuses_labels_out_of_range_and_zero_images():
    suite = RobustnessSuite(None, ["contrast"], severities=[1])  # corruption-only
    images = torch.rand(4, 3, 8, 8)
    for labels in (torch.tensor([0, 1, 2, 10]), torch.tensor([0, -1, 2, 3])):
        with pytest.raises(InputRangeError, match="model with 10 classes"):
            evaluate_robustness(Constant(0.0), [(0, images, labels)], suite, "cpu")
    with pytest.raises(ConfigError, match="zero images"):
        evaluate_robustness(Constant(0.0), [], suite, "cpu")


def test_test_of_a_nan_checkpoint_refuses_and_writes_no_robustness(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run("fit", "--config", STANDARD, "--config", FAST) == 0
    last = tmp_path.joinpath(*RUN, "checkpoints", "last.ckpt")
    checkpoint = torch.load(last, weights_only=True)
    weight = next(k for k in checkpoint["state_dict"] if k.endswith("conv1.weight"))
    checkpoint["state_dict"][weight].fill_(float("nan"))
    broken = tmp_path / "broken.ckpt"
    torch.save(checkpoint, broken)
    expect_error(
        capsys,
        "test",
        "--config",
        STANDARD,
        "--config",
        FAST,
        "--ckpt_path",
        broken,
        match="hold NaN or infinite values in 1 tensor(s) (e.g. model.backbone.conv1.weight)",
    )
    assert not tmp_path.joinpath("runs", "digits_standard", "version_1", "robustness.json").exists()


def test_callback_reports_the_metric_names_it_logs():
    callback = RobustnessEvaluation(
        attacks=[{"name": "pgd", "eps": ["8/255"], "steps": 2}], corruptions=["contrast"]
    )
    names = callback.metric_names()
    assert {"robust/clean", "robust/pgd2_linf/eps=8_255", "corruption/contrast/5"} <= names
    assert "robust_ar/pgd2_linf/eps=8_255" in names and "corruption/mean" in names
