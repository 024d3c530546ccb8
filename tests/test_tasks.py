"""Tasks: schedules, EMA, adversarial training step."""

import math

import pytest
import torch
from torch import nn

from robustart.errors import ConfigError, UnknownNameError
from robustart.tasks import AdversarialTrainingTask, ClassificationTask
from robustart.tasks.ema import ModelEma
from robustart.tasks.optim import lr_multiplier


def test_cosine_with_warmup_hand_computed():
    f = lr_multiplier("cosine", total_steps=110, warmup_steps=10)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.5)  # halfway through the cosine
    assert f(110) == pytest.approx(0.0, abs=1e-12)
    g = lr_multiplier("cosine", total_steps=100, lr=0.1, min_lr=0.01)
    assert g(100) == pytest.approx(0.1)


def test_multistep_cyclic_constant_hand_computed():
    f = lr_multiplier("multistep", total_steps=200, milestones=(0.5, 0.75), gamma=0.1)
    assert [f(0), f(99), f(100), f(149), f(150)] == pytest.approx([1, 1, 0.1, 0.1, 0.01])
    c = lr_multiplier("cyclic", total_steps=100, warmup_steps=50)  # cyclic ignores warm-up
    assert [c(0), c(20), c(40), c(70), c(100)] == pytest.approx([0, 0.5, 1, 0.5, 0])
    assert lr_multiplier("constant", 10)(7) == 1.0
    with pytest.raises(UnknownNameError, match="Did you mean: cosine"):
        lr_multiplier("cosin", 10)
    with pytest.raises(ConfigError, match="fractions"):
        lr_multiplier("multistep", 10, milestones=(100,))


def test_ema_update_hand_computed():
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema = ModelEma(model, decay=0.5)
    with torch.no_grad():
        model.weight.fill_(3.0)
    ema.update(model)  # first update: decay min(0.5, 1/10) = 0.1 → 0.1·1 + 0.9·3
    assert ema.module.weight.item() == pytest.approx(2.8)
    ema.update(model)  # decay min(0.5, 2/11) → 2/11·2.8 + 9/11·3
    assert ema.module.weight.item() == pytest.approx(2 / 11 * 2.8 + 9 / 11 * 3)
    assert not any(p.requires_grad for p in ema.parameters())
    ema.train()
    assert not ema.module.training


def test_task_builds_model_with_linked_facts_and_validates():
    task = ClassificationTask(
        model="resnet20", num_classes=7, mean=(0.5,) * 3, std=(0.2,) * 3, ema_decay=0.99
    )
    assert task(torch.rand(2, 3, 32, 32)).shape == (2, 7)
    assert task.ema is not None
    with pytest.raises(ConfigError, match="label_smoothing"):
        ClassificationTask(label_smoothing=1.5)


@pytest.mark.parametrize("bn_mode,train_forwards", [("eval", 1), ("train", 3)])
def test_adversarial_training_loss_crafts_without_touching_parameter_grads(bn_mode, train_forwards):
    torch.manual_seed(0)
    task = AdversarialTrainingTask(model="resnet20", eps="8/255", steps=2, bn_mode=bn_mode)
    images, labels = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))
    task.train()
    bn = task.model.backbone.bn1
    loss, logits = task.training_loss(images, labels)
    # BatchNorm counts its train-mode forwards: the final one, plus one per PGD step in "train"
    assert int(bn.num_batches_tracked) == train_forwards
    assert all(p.grad is None for p in task.parameters())  # crafting accumulated nothing
    assert task.training and logits.shape == (8, 10) and loss.requires_grad
    loss.backward()
    assert all(p.grad is not None for p in task.model.parameters())
    assert math.isfinite(loss.item())


def test_adversarial_training_rejects_bad_settings():
    with pytest.raises(ConfigError, match="adv_weight"):
        AdversarialTrainingTask(adv_weight=0)
    with pytest.raises(ConfigError, match=">= 0"):
        AdversarialTrainingTask(eps=-0.1)
    with pytest.raises(ConfigError, match="does not support norm"):
        AdversarialTrainingTask(norm="l7")
