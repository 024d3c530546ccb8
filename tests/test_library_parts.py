"""EMA (timm), ECE and AUROC / AUPR (torchmetrics) on hand-computed cases.

The conventions where the libraries differ from what robustart computed by hand before: ECE's
bin edges (torchmetrics: ``[lo, hi)`` and a bin of its own for confidence 1), and the sigmoid
torchmetrics applies to scores outside [0, 1] (robustart passes ranks, so that large scores stay
distinct).
"""

from __future__ import annotations

import pytest
import torch
from timm.utils.model_ema import ModelEmaV3
from torch import nn
from torchmetrics.classification import MulticlassCalibrationError

from robustart.metrics import (
    CalibrationError,
    auroc,
    average_precision,
    calibration_bins,
    expected_calibration_error,
)
from robustart.tasks.ema import ModelEma


# ------------------------------------------------------------------------------------ EMA
def test_ema_is_timms_with_the_ramped_decay_and_copied_buffers():
    model = nn.Sequential(nn.Linear(2, 2, bias=False), nn.BatchNorm1d(2))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
    ema = ModelEma(model, decay=0.9)
    assert isinstance(ema, ModelEmaV3)
    expected, weights = 1.0, (3.0, -1.0, 5.0, 2.0, 0.5)
    for n, value in enumerate(weights):
        with torch.no_grad():
            model[0].weight.fill_(value)
        model.train()(torch.randn(4, 2))  # moves the BatchNorm statistics
        ema.update(model)
        decay = min(0.9, (1 + n) / (10 + n))  # 0.1, 2/11, 3/12, ... then 0.9
        expected = decay * expected + (1 - decay) * value
        assert ema.module[0].weight[0, 0].item() == pytest.approx(expected, rel=1e-6)
        assert torch.equal(ema.module[1].running_mean, model[1].running_mean)  # copied
    assert int(ema.num_updates) == len(weights)
    assert {k for k in ema.state_dict() if not k.startswith("module.")} == {"num_updates"}


# ------------------------------------------------------------------------------------ ECE
def test_ece_bin_edges_follow_torchmetrics():
    # 0.5 lies on the edge of 2 bins: torchmetrics' [0.5, 1) holds both predictions
    # (accuracy 1/2, mean confidence 0.625 → 0.125); the former (0, 0.5] | (0.5, 1] bins gave
    # |1 − 0.5|·½ + |0 − 0.75|·½ = 0.625.
    conf, correct = torch.tensor([0.5, 0.75]), torch.tensor([1, 0])
    assert expected_calibration_error(conf, correct, n_bins=2) == pytest.approx(0.125)
    # confidence exactly 1 has a bin of its own: |1 − 0.5|·½ + |0 − 1|·½ (one bin gave 0.25)
    conf, correct = torch.tensor([0.5, 1.0]), torch.tensor([1, 0])
    assert expected_calibration_error(conf, correct, n_bins=1) == pytest.approx(0.75)
    count, conf_sum, correct_sum = calibration_bins(conf, correct, n_bins=1)
    assert count.tolist() == [1.0, 1.0] and conf_sum.tolist() == [0.5, 1.0]
    assert correct_sum.tolist() == [1.0, 0.0]
    # the same from probabilities, as torchmetrics' multiclass metric computes it
    probs = torch.tensor([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]])
    labels = torch.tensor([0, 0])
    reference = MulticlassCalibrationError(num_classes=3, n_bins=1)(probs, labels)
    metric = CalibrationError(n_bins=1)
    metric.update(probs, labels)
    assert metric.compute().item() == pytest.approx(reference.item()) == pytest.approx(0.75)


def test_ece_away_from_edges_is_the_hand_computed_value_in_both_conventions():
    # no confidence on an edge of 4 bins: (|1 − .3| + |0 − .35|)/5 + |1 − .6|/5 + |.5 − .9|·2/5
    conf = torch.tensor([0.3, 0.35, 0.6, 0.9, 0.9])
    correct = torch.tensor([1, 0, 1, 1, 0])
    bins = (abs(0.5 - 0.325) * 2 + abs(1 - 0.6) + abs(0.5 - 0.9) * 2) / 5
    assert expected_calibration_error(conf, correct, n_bins=4) == pytest.approx(bins)


# ------------------------------------------------------------------------------ AUROC / AUPR
def test_large_scores_stay_distinct():
    """torchmetrics would squash these with a sigmoid into equal floats (σ(40) = σ(50) = 1)."""
    scores = torch.tensor([40.0, 50.0, 60.0, -3.0], dtype=torch.float64)
    positive = torch.tensor([False, True, True, False])
    assert auroc(scores, positive) == pytest.approx(1.0)
    assert average_precision(scores, positive) == pytest.approx(1.0)
    # ties still count one half: one positive and one negative at the same score
    tied = torch.tensor([7.0, 7.0, 1.0]), torch.tensor([True, False, False])
    assert auroc(*tied) == pytest.approx(0.75)  # (½ + 1) / 2
    assert average_precision(*tied) == pytest.approx(0.5)  # one threshold: P = ½, R = 1
