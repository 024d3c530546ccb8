"""Evaluation loops over on-disk datasets, with tiny real models and hand-computed numbers."""

import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import TensorDataset

from robustart.data import CIFAR10P, IMAGENET_A_WNIDS, ImageNetA, imagenet_subset
from robustart.evaluation.benchmarks import (
    evaluate_classification,
    evaluate_corruption_files,
    evaluate_ood,
    evaluate_perturbation_sequences,
)
from robustart.metrics import ALEXNET_ERRORS, summarize_report

BRIGHT, DARK = 204, 25  # uint8 values: means 0.8 and about 0.1


class MeanBrightness(nn.Module):
    """Class 1 if the mean intensity exceeds 0.5; logits ±(mean − 0.5)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([0.5 - m, m - 0.5], dim=1)


class MeanBrightnessSixClasses(MeanBrightness):
    """:class:`MeanBrightness` with four more classes that always rank last (the top-5
    distance needs at least 5 classes)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        never = torch.full((len(x), 4), -10.0, dtype=x.dtype, device=x.device)
        return torch.cat([super().forward(x), never], dim=1)


class FixedLogits(nn.Module):
    """Ignores the image and always returns the same (1000,) logits."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("logits", logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(len(x), -1)


def test_corruption_files_give_a_report_with_accuracy_and_ece(tmp_path):
    # 5 images per severity, all labelled 1 (bright); at severity s the first s − 1 are dark
    images = np.full((25, 32, 32, 3), BRIGHT, dtype=np.uint8)
    for s in range(1, 6):
        images[(s - 1) * 5 : (s - 1) * 5 + s - 1] = DARK
    np.save(tmp_path / "fog.npy", images)
    np.save(tmp_path / "labels.npy", np.ones(25, dtype=np.int64))
    report, ece = evaluate_corruption_files(
        MeanBrightness(), "cifar10-c", str(tmp_path), clean_accuracy=1.0, corruptions=["fog"]
    )
    assert report.corruptions["fog"] == pytest.approx({1: 1.0, 2: 0.8, 3: 0.6, 4: 0.4, 5: 0.2})
    assert report.num_images == 5 and report.clean == 1.0
    # severity 2: four correct with confidence sigmoid(0.6), one wrong with confidence
    # sigmoid(2·(0.5 − 25/255)); they fall in different bins of width 1/15
    bright_conf = 1 / (1 + math.exp(-2 * (BRIGHT / 255 - 0.5)))
    dark_conf = 1 / (1 + math.exp(-2 * (0.5 - DARK / 255)))
    assert ece["fog"][2] == pytest.approx(0.8 * (1 - bright_conf) + 0.2 * dark_conf, abs=1e-6)
    summary = summarize_report(report)
    assert summary["mce"] is None and len(summary["mce_missing"]) == 14
    assert summary["ce"]["fog"] == pytest.approx(
        100 * (0 + 0.2 + 0.4 + 0.6 + 0.8) / sum(ALEXNET_ERRORS["fog"].values())
    )


def test_subset_scoring_of_a_1000_class_model(tmp_path):
    for wnid, count in ((IMAGENET_A_WNIDS[0], 1), (IMAGENET_A_WNIDS[5], 2)):
        (tmp_path / wnid).mkdir()
        for i in range(count):
            Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(tmp_path / wnid / f"{i}.jpg")
    data = ImageNetA(tmp_path, allow_missing_classes=True)
    subset = imagenet_subset("imagenet_a")
    logits = torch.zeros(1000)
    logits[subset.indices[5]] = 2.0  # the model always predicts ImageNet-A class 5 ...
    logits[3] = 9.0  # ... once the non-ImageNet-A class 3 is masked out
    model = FixedLogits(logits)
    masked = evaluate_classification(model, data, batch_size=2, output_transform=subset.restrict)
    assert masked["accuracy"] == pytest.approx(2 / 3) and masked["num_images"] == 3
    # without the mask the argmax is class 3 and matches nothing
    assert evaluate_classification(model, data)["accuracy"] == 0.0


def test_ood_evaluation_with_confident_in_distribution_images():
    constant = lambda v, n: torch.full((n, 3, 8, 8), v)  # noqa: E731
    in_data = TensorDataset(torch.cat([constant(0.95, 3), constant(0.02, 3)]), torch.zeros(6))
    out_data = TensorDataset(torch.cat([constant(0.5, 2), constant(0.55, 2)]), torch.zeros(4))
    result = evaluate_ood(MeanBrightness(), in_data, out_data, batch_size=4)
    assert result == pytest.approx({"aupr": 1.0, "auroc": 1.0})
    # swapped roles: OOD images are the confident ones → every OOD score below every in-score
    swapped = evaluate_ood(MeanBrightness(), out_data, in_data)
    assert swapped["auroc"] == pytest.approx(0.0)


def test_perturbation_sequences_flip_probability_and_top5(tmp_path):
    frames = np.full((2, 4, 32, 32, 3), BRIGHT, dtype=np.uint8)
    frames[0, 1:3] = DARK  # sequence 0: bright, dark, dark, bright; sequence 1 constant
    np.save(tmp_path / "rotate.npy", frames)
    np.save(tmp_path / "shot_noise.npy", frames)
    rotate = CIFAR10P(tmp_path, "rotate")
    assert not rotate.noise and CIFAR10P(tmp_path, "shot_noise").noise
    result = evaluate_perturbation_sequences(
        MeanBrightnessSixClasses(), rotate, rotate.noise, batch_size=1
    )
    # consecutive flips in sequence 0: 2 of 3; each flip swaps the two classes: distance 2
    assert result["flip_probability"] == pytest.approx((2 / 3 + 0) / 2)
    assert result["top5_distance"] == pytest.approx((4 / 3 + 0) / 2)
    noise = evaluate_perturbation_sequences(MeanBrightnessSixClasses(), rotate, noise=True)
    # against frame 0: dark ≠ bright twice, bright = bright once → also 2/3
    assert noise["flip_probability"] == pytest.approx(1 / 3)
