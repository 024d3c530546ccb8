"""The adversarial-training family: PGD-AT, TRADES, MART and FGSM-RS as objectives of one task,
Free-AT with manual optimisation, the catastrophic-overfitting guard and their recipes."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import FAST, RECIPES
from single_thread import one_thread  # noqa: F401  (fixture)
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from robustart.attacks import PGD
from robustart.callbacks import CatastrophicOverfittingGuard
from robustart.cli.lightning import build_cli
from robustart.data import DigitsDataModule
from robustart.errors import ConfigError, UnknownNameError
from robustart.main import cli_main
from robustart.models import create_model
from robustart.tasks import (
    AT_OBJECTIVES,
    AdversarialTrainingTask,
    ClassificationTask,
    FreeAdversarialTrainingTask,
    build_objective,
)
from robustart.tasks.objectives import mart_loss, trades_loss

pytestmark = pytest.mark.usefixtures("one_thread")
DIGITS = RECIPES / "digits"
NEW_RECIPES = ["trades", "mart", "fast_at", "free_at"]


def quiet_trainer(**kwargs) -> L.Trainer:
    defaults = dict(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    return L.Trainer(**{**defaults, **kwargs})


class TinyNet(nn.Module):
    """A small deterministic classifier (no BatchNorm, no dropout) on 1×4×4 images."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(16, classes)

    def forward(self, images):
        return self.fc(images.flatten(1) * 4 - 2)


def softmax(row):
    exps = [math.exp(v) for v in row]
    return [e / sum(exps) for e in exps]


# ----------------------------------------------------------------------------- losses
def test_trades_loss_is_cross_entropy_plus_beta_kl_by_hand():
    clean = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    adv = torch.tensor([[0.0, 1.0, 0.0], [1.0, -1.0, 2.0]])
    labels = torch.tensor([0, 2])
    expected_ce, expected_kl = 0.0, 0.0
    for c, a, y in zip(clean.tolist(), adv.tolist(), labels.tolist()):
        p, q = softmax(c), softmax(a)
        expected_ce += -math.log(p[y]) / 2
        expected_kl += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q)) / 2
    loss, natural, robust = trades_loss(clean, adv, labels, beta=6.0)
    assert natural.item() == pytest.approx(expected_ce, rel=1e-5)
    assert robust.item() == pytest.approx(expected_kl, rel=1e-5)
    assert loss.item() == pytest.approx(expected_ce + 6 * expected_kl, rel=1e-5)


def test_trades_objective_on_a_tiny_model_matches_the_formula():
    model = TinyNet()
    images, labels = torch.rand(6, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    objective = build_objective({"name": "trades", "beta": 6.0}, eps="8/255", steps=3)
    assert objective.attack.loss_name == "kl" and objective.attack.random_start == "normal"
    assert objective.bn_mode == "eval" and objective.attack.steps == 3
    torch.manual_seed(1)
    loss, logits, terms = objective(model, images, labels, F.cross_entropy)
    torch.manual_seed(1)  # the same random start: the same adversarial examples
    with torch.no_grad():
        reference = model(images).softmax(1)
    adversarial = objective.attack(model, images, reference)
    assert (adversarial - images).abs().max() <= 8 / 255 + 1e-6
    clean_logits, adv_logits = model(images), model(adversarial)
    by_hand = F.cross_entropy(clean_logits, labels) + 6.0 * F.kl_div(
        F.log_softmax(adv_logits, 1), F.softmax(clean_logits, 1), reduction="batchmean"
    )
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-5)
    assert torch.allclose(logits, adv_logits)
    assert terms["loss_robust"].item() > 0  # the attack moved the prediction
    # the inner maximisation raises the KL above that of the random start alone
    start = images + 0.001 * torch.randn_like(images)
    kl_start = F.kl_div(F.log_softmax(model(start), 1), reference, reduction="batchmean")
    assert terms["loss_robust"].item() > 10 * kl_start.item()


def test_trades_crafts_in_eval_mode_and_trains_on_clean_and_adversarial_batches():
    torch.manual_seed(0)
    task = AdversarialTrainingTask(objective="trades", model="resnet20", steps=2)
    task.train()
    bn = task.model.backbone.bn1
    loss, logits = task.training_loss(torch.rand(4, 3, 32, 32), torch.randint(0, 10, (4,)))
    assert int(bn.num_batches_tracked) == 2  # only the clean and the adversarial train forwards
    assert all(p.grad is None for p in task.parameters())
    loss.backward()
    assert math.isfinite(loss.item()) and logits.shape == (4, 10)


def test_mart_loss_matches_its_formula_on_hand_built_logits():
    clean = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.5]])
    adv = torch.tensor([[0.5, 1.5, -0.5], [2.0, 0.0, 1.0]])
    labels = torch.tensor([0, 1])
    bce_sum, robust_sum = 0.0, 0.0
    for c, a, y in zip(clean.tolist(), adv.tolist(), labels.tolist()):
        p, q = softmax(c), softmax(a)
        wrong = max(q[k] for k in range(3) if k != y)
        bce_sum += -math.log(q[y]) - math.log(1 - wrong)
        kl = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
        robust_sum += kl * (1 - p[y])
    loss, bce, robust = mart_loss(clean, adv, labels, beta=6.0)
    assert bce.item() == pytest.approx(bce_sum / 2, rel=1e-5)
    assert robust.item() == pytest.approx(robust_sum / 2, rel=1e-5)
    assert loss.item() == pytest.approx((bce_sum + 6 * robust_sum) / 2, rel=1e-5)
    # a confidently wrong adversarial prediction keeps a finite loss and gradient
    extreme = torch.tensor([[0.0, 200.0, 0.0]], requires_grad=True)
    value = mart_loss(torch.zeros(1, 3), extreme, torch.tensor([0]), 6.0)[0]
    value.backward()
    assert math.isfinite(value.item()) and torch.isfinite(extreme.grad).all()


def test_mart_objective_crafts_with_cross_entropy_and_needs_hard_labels():
    objective = build_objective("mart", eps="8/255", steps=2)
    assert objective.attack.loss_name == "ce" and objective.bn_mode == "eval"
    assert objective.beta == 6.0
    model = TinyNet()
    images, labels = torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 2, 0])
    loss, _, terms = objective(model, images, labels, F.cross_entropy)
    assert math.isfinite(loss.item()) and set(terms) == {"loss_adv", "loss_robust", "acc_clean"}
    with pytest.raises(ConfigError, match="needs hard labels"):
        objective(model, images, F.one_hot(labels, 3).float(), F.cross_entropy)
    with pytest.raises(ConfigError, match=r"label_smoothing=0\.1"):
        AdversarialTrainingTask(objective="mart", label_smoothing=0.1)
    with pytest.raises(ConfigError, match="mixup"):
        AdversarialTrainingTask(objective="mart", batch_augment=[{"name": "mixup"}])


# ----------------------------------------------------------------------------- FGSM-RS
def test_fgsm_rs_is_one_uniform_start_step_of_one_and_a_quarter_eps():
    objective = build_objective("fgsm_rs", eps="8/255")
    attack = objective.attack
    assert attack.steps == 1 and attack.random_start == "uniform"
    assert attack.config["step_size"] == "1.25*eps" and objective.bn_mode == "train"
    eps = 8 / 255
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(2, 48, generator=torch.Generator().manual_seed(0)))
    images = 0.5 + 0.2 * (torch.rand(16, 3, 4, 4) - 0.5)  # away from the box edges
    labels = torch.zeros(16, dtype=torch.long)
    adversarial = attack(model, images, labels, generator=torch.Generator().manual_seed(3))
    delta = adversarial - images
    # by hand: uniform start, one step of 1.25·ε along the gradient sign, projection
    start = (2 * torch.rand(images.shape, generator=torch.Generator().manual_seed(3)) - 1) * eps
    sign = (model[1].weight[1] - model[1].weight[0]).sign().view(1, 3, 4, 4)  # ∇ of CE(y = 0)
    expected = (start + 1.25 * eps * sign).clamp(-eps, eps)
    assert torch.allclose(delta, expected, atol=1e-6)
    # a step of 1.25·ε from anywhere in the ball ends at least 0.25·ε along the sign
    assert ((delta * sign) >= 0.25 * eps - 1e-6).all()
    assert delta.abs().max() <= eps + 1e-6
    # near the box edges the result stays in [0, 1] and in the ball
    edge = torch.rand(16, 3, 4, 4).round()
    adv_edge = attack(model, edge, labels)
    assert adv_edge.min() >= 0 and adv_edge.max() <= 1
    assert (adv_edge - edge).abs().max() <= eps + 1e-6


# ----------------------------------------------------------------------------- task
def test_pgd_at_stays_the_default_with_its_settings():
    task = AdversarialTrainingTask(steps=2)
    assert type(task.objective).__name__ == "PGDAdversarialTraining"
    attack = task.attack
    # The default step is Madry et al.'s 2.5·eps/steps: 2 steps of 10/255 cross the 8/255 ball.
    assert attack.step_size is None and attack.steps == 2
    assert attack.rel_step_size * attack.eps == pytest.approx(10 / 255)
    assert attack.random_start == "uniform" and attack.mode == "train"
    assert attack.eps == pytest.approx(8 / 255) and not attack.track_best
    default = AdversarialTrainingTask().attack
    assert default.steps == 10 and default.rel_step_size * default.eps == 2 / 255  # published
    assert sorted(AT_OBJECTIVES) == ["fgsm_rs", "mart", "pgd_at", "trades"]
    mixed = AdversarialTrainingTask(steps=1, adv_weight=0.5)
    loss, _ = mixed.training_loss(torch.rand(2, 3, 32, 32), torch.tensor([1, 2]))
    assert math.isfinite(loss.item())


def test_bad_settings_are_clear_config_errors():
    with pytest.raises(ConfigError, match="beta must be a finite number >= 0"):
        AdversarialTrainingTask(objective={"name": "trades", "beta": -1.0})
    with pytest.raises(ConfigError, match="beta must be a finite number >= 0"):
        build_objective({"name": "mart", "beta": -0.5})
    for name in ("trades", "mart"):  # inf made the loss inf, read later as divergence
        with pytest.raises(ConfigError, match="beta must be a finite number >= 0"):
            build_objective({"name": name, "beta": math.inf})
    with pytest.raises(ConfigError, match="Known adversarial training objectives: fgsm_rs, mart"):
        AdversarialTrainingTask(objective="trade")
    with pytest.raises(UnknownNameError, match="Did you mean: trades"):
        build_objective("trade")
    with pytest.raises(ConfigError, match=">= 0"):
        AdversarialTrainingTask(objective="trades", eps=-0.1)
    with pytest.raises(ConfigError, match="needs a random start"):
        AdversarialTrainingTask(objective="trades", random_start=False)
    with pytest.raises(ConfigError, match="exactly one step"):
        AdversarialTrainingTask(objective="fgsm_rs", steps=3)
    with pytest.raises(ConfigError, match="Leave adv_weight at 1"):
        AdversarialTrainingTask(objective="trades", adv_weight=0.5)
    with pytest.raises(ConfigError, match="task settings"):
        build_objective({"name": "trades", "eps": "8/255"})
    with pytest.raises(ConfigError, match="has no setting gamma; its settings: beta"):
        build_objective({"name": "trades", "gamma": 1.0})
    with pytest.raises(ConfigError, match="with a 'name'"):
        build_objective({"beta": 6.0})
    with pytest.raises(ConfigError, match="bn_mode"):
        AdversarialTrainingTask(bn_mode="frozen")
    with pytest.raises(ConfigError, match="replays must be an integer >= 1"):
        FreeAdversarialTrainingTask(replays=0)
    with pytest.raises(ConfigError, match=">= 0"):
        FreeAdversarialTrainingTask(eps=-1)
    with pytest.raises(ConfigError, match="norm"):
        FreeAdversarialTrainingTask(norm="l1")
    with pytest.raises(ConfigError, match="ratio"):
        CatastrophicOverfittingGuard(ratio=0)
    with pytest.raises(ConfigError, match="AugMix"):
        FreeAdversarialTrainingTask().check_multi_view_support(3)


@pytest.mark.parametrize("objective", ["pgd_at", "trades", "mart", "fgsm_rs", "free_at"])
def test_each_objective_trains_through_lightning_on_digits(objective):
    torch.manual_seed(0)
    dm = DigitsDataModule(batch_size=16)
    common = dict(model="resnet20", mean=dm.mean, std=dm.std, eps="16/255")
    if objective == "free_at":
        task = FreeAdversarialTrainingTask(replays=2, **common)
        max_steps = 4  # optimiser steps: 2 minibatches × 2 replays
    else:
        steps = None if objective == "fgsm_rs" else 2
        task = AdversarialTrainingTask(objective=objective, steps=steps, **common)
        max_steps = 2
    trainer = quiet_trainer(max_steps=max_steps, limit_train_batches=2)
    trainer.fit(task, dm)
    assert trainer.global_step == max_steps
    loss = trainer.callback_metrics["train/loss"]
    assert torch.isfinite(loss) and loss > 0


# ----------------------------------------------------------------------------- Free-AT
def test_free_at_replays_each_batch_and_carries_the_perturbation():
    torch.manual_seed(0)
    replays, eps = 3, 8 / 255
    images = 0.25 + 0.5 * torch.rand(12, 3, 32, 32)  # no clipping at the box edges
    labels = torch.randint(0, 10, (12,))
    loader = DataLoader(TensorDataset(images, labels), batch_size=4)
    task = FreeAdversarialTrainingTask(model="resnet20", eps=eps, replays=replays, lr=0.05)
    seen, carried = [], []
    original_forward = task.model.forward
    task.model.forward = lambda x: (seen.append(x.detach().clone()), original_forward(x))[1]

    class Snapshot(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            carried.append(pl_module._delta.clone())

    trainer = quiet_trainer(max_epochs=1, limit_train_batches=2, callbacks=[Snapshot()])
    trainer.fit(task, loader)
    assert trainer.global_step == 2 * replays  # one optimiser step per replay
    assert len(seen) == 2 * replays
    first, second = images[:4], images[4:8]
    assert torch.equal(seen[0], first)  # δ starts at zero
    deltas = [x - first for x in seen[1:replays]]
    assert all(d.abs().max() <= eps + 1e-6 for d in deltas)
    # the first replay step moves every pixel by ε·sign(g) from zero
    assert torch.allclose(deltas[0].abs(), torch.full_like(deltas[0], eps), atol=1e-6)
    # the next minibatch starts from the δ the previous one ended with
    assert torch.allclose(seen[replays] - second, carried[0], atol=1e-6)
    assert not torch.equal(carried[0], carried[1])
    # the learning-rate schedule advanced once per minibatch, not once per replay
    assert task.lr_schedulers().last_epoch == 2


def test_free_at_smaller_last_batch_uses_the_first_rows_and_new_shapes_reset():
    task = FreeAdversarialTrainingTask(replays=1)
    first = task.carried_delta(torch.rand(4, 3, 8, 8))
    assert first.shape == (4, 3, 8, 8) and not first.any()
    task._delta.fill_(0.01)
    assert torch.equal(task.carried_delta(torch.rand(2, 3, 8, 8)), task._delta[:2])
    assert task._delta.shape[0] == 4  # the buffer keeps its rows for the next full batch
    assert not task.carried_delta(torch.rand(4, 3, 16, 16)).any()  # another image size


def test_free_at_schedule_spans_the_minibatches_that_run_under_max_steps():
    task = FreeAdversarialTrainingTask(replays=4, lr=0.1, lr_schedule="cosine")
    loader = DataLoader(TensorDataset(torch.rand(32, 3, 32, 32), torch.zeros(32).long()), 4)
    trainer = quiet_trainer(max_steps=8, max_epochs=10, limit_train_batches=8)
    trainer.fit(task, loader)
    assert trainer.global_step == 8
    # 2 minibatches of 4 replays ran: the cosine schedule is over after them
    assert task.optimizers().param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-9)


# ----------------------------------------------------------------------------- guard
def test_guard_decision_rules():
    guard = CatastrophicOverfittingGuard()
    assert guard.collapse_reason(0.0, 0.0) is None  # no best yet, FGSM low as well
    guard.best_pgd_acc = 0.06
    assert guard.collapse_reason(0.01, 0.05) is None  # noise at low accuracy
    guard.best_pgd_acc = 0.45
    assert guard.collapse_reason(0.30, 0.60) is None  # within 0.5× of the best
    assert "fell to 20.0% from its best 45.0%" in guard.collapse_reason(0.20, 0.60)
    guard.best_pgd_acc = 0.08
    assert "FGSM accuracy is 90.0%" in guard.collapse_reason(0.02, 0.90)
    assert CatastrophicOverfittingGuard(fgsm_gap=None).collapse_reason(0.0, 0.95) is None


class ScrambleAt(ClassificationTask):
    """Does not train; at epoch ``scramble_epoch`` it zeroes the classifier's last layer
    (constant logits), the collapse of PGD accuracy the guard must catch."""

    def __init__(self, scramble_epoch: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.automatic_optimization = False
        self.scramble_epoch = scramble_epoch
        self.epochs_run = 0

    def training_step(self, batch, batch_idx):
        self.epochs_run = self.current_epoch + 1
        if self.current_epoch == self.scramble_epoch:
            with torch.no_grad():
                self.model.backbone.fc.weight.zero_()
                self.model.backbone.fc.bias.zero_()


def guarded_run(scramble_epoch, epochs=4):
    dm = DigitsDataModule(batch_size=32, augment=False)
    task = ScrambleAt(
        scramble_epoch,
        weights="zoo:digits_resnet20_standard",
        mean=dm.mean,
        std=dm.std,
    )
    kept = {k: v.clone() for k, v in task.state_dict().items()}
    guard = CatastrophicOverfittingGuard(eps="2/255", steps=3, num_images=32)
    trainer = quiet_trainer(max_epochs=epochs, limit_train_batches=1, callbacks=[guard])
    trainer.fit(task, dm)
    return task, guard, trainer, kept


def test_guard_stops_and_restores_the_best_weights_when_pgd_accuracy_collapses():
    with pytest.warns(UserWarning, match="catastrophic overfitting at epoch 1.*stopping training"):
        task, guard, trainer, kept = guarded_run(scramble_epoch=1)
    assert trainer.should_stop and task.epochs_run == 2  # stopped after the second epoch
    assert guard.best_pgd_acc > 0.5 and "fell to" in guard.collapse
    assert trainer.callback_metrics["overfit/pgd_acc"] < 0.5 * guard.best_pgd_acc
    state = task.state_dict()
    assert all(torch.equal(state[k], v) for k, v in kept.items())  # the best weights are back


def test_guard_does_not_trigger_while_pgd_accuracy_holds(recwarn):
    task, guard, trainer, _ = guarded_run(scramble_epoch=None, epochs=3)
    assert task.epochs_run == 3 and guard.collapse is None
    assert not [w for w in recwarn if "catastrophic" in str(w.message)]
    assert trainer.callback_metrics["overfit/pgd_acc"] == pytest.approx(guard.best_pgd_acc)


# ----------------------------------------------------------------------------- recipes
@pytest.mark.parametrize("name", NEW_RECIPES)
def test_digits_recipe_runs_two_batches(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = DIGITS / f"{name}.yaml"
    config = yaml.safe_load(recipe.read_text())
    assert config["checkpoint"]["monitor"] == "robust/pgd10_linf/eps=16_255"  # robust overfitting
    # fast_dev_run: n sets max_steps = n, and Free-AT takes one optimiser step per replay
    steps = 4 if name == "free_at" else 2
    args = ["fit", "--config", str(recipe), "--config", str(FAST)]
    args += ["--trainer.fast_dev_run", str(steps), "--data.init_args.batch_size", "16"]
    if name == "fast_at":  # the fast overlay replaces the callbacks: add a tiny guard again
        guards = [c for c in config["trainer"]["callbacks"] if "Overfitting" in c["class_path"]]
        assert guards, "fast_at must run the catastrophic-overfitting guard"
        args += ["--trainer.callbacks+=robustart.callbacks.CatastrophicOverfittingGuard"]
        args += ["--trainer.callbacks.num_images=16", "--trainer.callbacks.steps=2"]
    if name == "free_at":
        args += ["--model.init_args.replays", "2"]
    cli = build_cli(args)
    trainer = cli.trainer
    assert trainer.global_step == steps
    assert trainer.fit_loop.epoch_loop.batch_progress.current.ready == 2  # two minibatches
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    if name == "fast_at":
        assert "overfit/pgd_acc" in trainer.callback_metrics


@pytest.mark.parametrize("name", NEW_RECIPES)
def test_cifar10_recipe_keeps_the_pgd_at_model_and_the_robust_overfitting_guard(name):
    base = yaml.safe_load((RECIPES / "cifar10" / "pgd_at.yaml").read_text())
    config = yaml.safe_load((RECIPES / "cifar10" / f"{name}.yaml").read_text())
    assert config["model"]["init_args"]["model"] == base["model"]["init_args"]["model"]
    assert config["model"]["init_args"]["eps"] == "8/255"
    assert config["checkpoint"] == base["checkpoint"]


def test_help_explains_objectives_and_free_at(capsys):
    with pytest.raises(SystemExit):
        cli_main(["fit", "--model.help", "robustart.tasks.AdversarialTrainingTask"])
    out = capsys.readouterr().out
    assert "objective" in out and "trades" in out and "beta" in out and "BatchNorm" in out
    with pytest.raises(SystemExit):
        cli_main(["fit", "--model.help", "robustart.tasks.FreeAdversarialTrainingTask"])
    out = capsys.readouterr().out
    assert "replays" in out and "carries over" in out


# ----------------------------------------------------------------------------- robustness
def pgd_accuracy(model, images, labels, eps="8/255"):
    adversarial = PGD(eps=eps, steps=10)(
        model, images, labels, generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        return (model(adversarial).argmax(1) == labels).float().mean().item()


def zoo_model(name, dm):
    return create_model("resnet20", 10, mean=dm.mean, std=dm.std, weights=f"zoo:{name}").eval()


@pytest.mark.slow  # PGD-20 on 128 images of two zoo models
def test_trades_zoo_model_is_clearly_more_robust_than_the_standard_one():
    dm = DigitsDataModule()
    images, labels = dm.dataset("test")[:128]
    standard = pgd_accuracy(zoo_model("digits_resnet20_standard", dm), images, labels)
    trades = pgd_accuracy(zoo_model("digits_resnet20_trades", dm), images, labels)
    assert trades >= standard + 0.10, (trades, standard)


@pytest.mark.slow
def test_trades_recipe_trains_a_clearly_more_robust_model(tmp_path, monkeypatch):
    """The full digits TRADES recipe (several CPU minutes)."""
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--config", str(DIGITS / "trades.yaml"), "--trainer.callbacks=[]"]
    args += ["--trainer.enable_progress_bar", "false", "--checkpoint.monitor", "null"]
    cli = build_cli(args)
    dm = DigitsDataModule()
    images, labels = dm.dataset("test")[:250]
    trades = pgd_accuracy(cli.model.model.eval(), images, labels)
    standard = pgd_accuracy(zoo_model("digits_resnet20_standard", dm), images, labels)
    assert trades >= standard + 0.10, (trades, standard)
