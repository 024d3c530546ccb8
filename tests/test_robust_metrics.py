"""Corruption, perturbation, calibration and OOD metrics on hand-computed cases."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score
from torchmetrics.classification import MulticlassCalibrationError

from robustart.corruptions import BENCHMARK_CORRUPTIONS, CORRUPTION_CATEGORIES
from robustart.errors import ConfigError, InputRangeError
from robustart.evaluation.report import RobustnessReport
from robustart.metrics import (
    ALEXNET_CLEAN_ERROR,
    ALEXNET_ERRORS,
    CalibrationError,
    FlipProbability,
    Top5Distance,
    auroc,
    average_precision,
    category_means,
    compares_with_first_frame,
    corruption_error,
    expected_calibration_error,
    expected_calibration_error_from_scores,
    flip_probability,
    max_softmax_anomaly_score,
    mean_corruption_accuracy,
    mean_corruption_error,
    mean_flip_rate,
    mean_top5_distance,
    mean_top5_distance_rate,
    missing_pairs,
    normalize_by_baseline,
    ood_detection_scores,
    relative_corruption_error,
    relative_mean_corruption_error,
    sequence_flip_probabilities,
    summarize_report,
    summary_metrics,
    top5_distance,
    unnormalized_mean_corruption_error,
)

# Row means of the AlexNet table in corruptions.md (its "mean" column), typed in separately from
# the per-severity values: a typo in either shows up as a mismatch.
ALEXNET_MEANS = {
    "gaussian_noise": 0.886428,
    "shot_noise": 0.894468,
    "impulse_noise": 0.922640,
    "defocus_blur": 0.819880,
    "glass_blur": 0.826268,
    "motion_blur": 0.785948,
    "zoom_blur": 0.798360,
    "snow": 0.866816,
    "frost": 0.826572,
    "fog": 0.819324,
    "brightness": 0.564592,
    "contrast": 0.853204,
    "elastic_transform": 0.646056,
    "pixelate": 0.717840,
    "jpeg_compression": 0.606500,
    "speckle_noise": 0.845388,
    "gaussian_blur": 0.787108,
    "spatter": 0.717512,
    "saturate": 0.658248,
}


def full(value: float, names=BENCHMARK_CORRUPTIONS) -> dict[str, dict[int, float]]:
    return {n: {s: value for s in range(1, 6)} for n in names}


# ------------------------------------------------------------------ corruption errors
def test_alexnet_table_is_keyed_by_name_and_consistent_with_its_means():
    assert set(ALEXNET_ERRORS) == set(BENCHMARK_CORRUPTIONS) | set(CORRUPTION_CATEGORIES["extra"])
    assert len(ALEXNET_ERRORS) == 19
    for name, mean in ALEXNET_MEANS.items():
        row = ALEXNET_ERRORS[name]
        assert sorted(row) == [1, 2, 3, 4, 5]
        assert sum(row.values()) / 5 == pytest.approx(mean, abs=1e-6), name
    assert ALEXNET_ERRORS["saturate"][3] == 0.51174 and ALEXNET_ERRORS["fog"][5] == 0.945


def test_corruption_error_hand_computed():
    # Σ_s E = 2.5; Σ_s E(AlexNet, gaussian_noise) = .69528+.82542+.93554+.98138+.99452 = 4.43214
    errors = {s: 0.5 for s in range(1, 6)}
    assert corruption_error("gaussian_noise", errors) == pytest.approx(2.5 / 4.43214, rel=1e-12)
    # partial curve: normalised over the same severities only
    assert corruption_error("fog", {1: 0.3, 5: 0.6}) == pytest.approx(0.9 / (0.67474 + 0.945))
    # relative CE: Σ(E − clean) / Σ(E_alex − clean_alex) = 5·(.5 − .2) / (4.43214 − 5·.43478)
    rel = relative_corruption_error("gaussian_noise", errors, clean_error=0.2)
    assert rel == pytest.approx(1.5 / (4.43214 - 5 * 0.43478), rel=1e-12)
    assert ALEXNET_CLEAN_ERROR == 0.43478


def test_mce_equals_100_for_alexnet_and_scales_linearly():
    assert mean_corruption_error(ALEXNET_ERRORS) == pytest.approx(100.0)
    half = {n: {s: e / 2 for s, e in ALEXNET_ERRORS[n].items()} for n in BENCHMARK_CORRUPTIONS}
    assert mean_corruption_error(half) == pytest.approx(50.0)
    # relative mCE of AlexNet itself with its own clean error is 100
    assert relative_mean_corruption_error(ALEXNET_ERRORS, ALEXNET_CLEAN_ERROR) == pytest.approx(100)


def test_mce_is_keyed_by_name_not_position():
    # Two corruptions with very different AlexNet errors; the model's errors are swapped in
    # dictionary order. A positional bug would pair them with the wrong baseline.
    errors = full(0.5)
    reordered = dict(reversed(list(errors.items())))
    errors["brightness"] = {s: 0.2 for s in range(1, 6)}
    reordered["brightness"] = {s: 0.2 for s in range(1, 6)}
    assert mean_corruption_error(errors) == pytest.approx(mean_corruption_error(reordered))
    expected = (
        100
        * (
            sum(2.5 / (5 * ALEXNET_MEANS[n]) for n in BENCHMARK_CORRUPTIONS if n != "brightness")
            + 1.0 / (5 * ALEXNET_MEANS["brightness"])
        )
        / 15
    )
    assert mean_corruption_error(errors) == pytest.approx(expected)


def test_mce_refuses_a_subset_and_names_what_is_missing():
    errors = full(0.4)
    del errors["fog"]
    del errors["snow"][3]
    with pytest.raises(ConfigError, match=r"snow \(severity 3\); fog"):
        mean_corruption_error(errors)
    assert missing_pairs(errors) == ["snow (severity 3)", "fog"]
    # an explicit subset is allowed
    subset = ["gaussian_noise", "contrast"]
    assert mean_corruption_error(errors, corruptions=subset) == pytest.approx(
        100
        * (2.0 / (5 * ALEXNET_MEANS["gaussian_noise"]) + 2.0 / (5 * ALEXNET_MEANS["contrast"]))
        / 2
    )


def test_unnormalized_mce_mean_accuracy_and_categories():
    acc = {"gaussian_noise": {1: 0.9, 2: 0.7}, "contrast": {1: 0.5}, "speckle_noise": {3: 0.2}}
    assert mean_corruption_accuracy(acc) == pytest.approx((0.9 + 0.7 + 0.5 + 0.2) / 4)
    errors = {n: {s: 1 - a for s, a in c.items()} for n, c in acc.items()}
    assert unnormalized_mean_corruption_error(errors) == pytest.approx(
        100 * (0.1 + 0.3 + 0.5 + 0.8) / 4
    )
    assert category_means(acc) == pytest.approx({"noise": 0.8, "digital": 0.5, "extra": 0.2})
    with pytest.raises(ConfigError, match="fraction"):
        mean_corruption_accuracy({"fog": {1: 85.0}})


def test_summarize_report_complete_and_incomplete():
    report = RobustnessReport(num_images=10, clean=0.8, corruptions=full(0.6))
    summary = summarize_report(report)
    # every error 0.4: CE_c = 2.0 / (5·mean_c);
    # relative CE_c = 5·(0.4 − 0.2) / (5·mean_c − 5·.43478)
    expected_mce = 100 * sum(0.4 / ALEXNET_MEANS[n] for n in BENCHMARK_CORRUPTIONS) / 15
    expected_rel = (
        100
        * sum(0.2 / (ALEXNET_MEANS[n] - ALEXNET_CLEAN_ERROR) for n in BENCHMARK_CORRUPTIONS)
        / 15
    )
    assert summary["mce"] == pytest.approx(expected_mce)
    assert summary["relative_mce"] == pytest.approx(expected_rel)
    assert summary["mce_missing"] == []
    assert summary["unnormalized_mce"] == pytest.approx(40.0)
    assert summary["mean_corruption_accuracy"] == pytest.approx(0.6)
    assert summary["num_pairs"] == 75
    assert summary["clean_error"] == pytest.approx(0.2)
    assert summary["category_accuracy"] == pytest.approx(
        {"noise": 0.6, "blur": 0.6, "weather": 0.6, "digital": 0.6}
    )
    flat = summary_metrics(summary)
    assert flat["corruption_error/mce"] == pytest.approx(expected_mce)
    assert flat["corruption_error/fog"] == pytest.approx(100 * 0.4 / ALEXNET_MEANS["fog"])
    assert all(isinstance(v, float) for v in flat.values())

    partial = RobustnessReport(
        num_images=10, clean=0.8, corruptions={"gaussian_noise": {3: 0.5}, "contrast": {3: 0.7}}
    )
    summary = summarize_report(partial)
    assert summary["mce"] is None and summary["relative_mce"] is None
    assert "gaussian_noise (severities 1, 2, 4, 5)" in summary["mce_missing"]
    assert "fog" in summary["mce_missing"] and len(summary["mce_missing"]) == 15
    assert summary["mean_corruption_accuracy"] == pytest.approx(0.6)
    assert summary["ce"]["contrast"] == pytest.approx(100 * 0.3 / 0.88874)
    assert "corruption_error/mce" not in summary_metrics(summary)
    with pytest.raises(ConfigError, match="no corruption accuracies"):
        summarize_report(RobustnessReport(num_images=1, clean=1.0))


# ------------------------------------------------------------------ ImageNet-P
def test_flip_probability_pairs_frames_as_the_reference():
    preds = torch.tensor([[0, 1, 1, 0], [2, 2, 2, 2]])
    # consecutive: seq 0 flips 0→1, 1→1, 1→0 = 2/3; seq 1: 0 → mean 1/3
    assert flip_probability(preds, noise=False) == pytest.approx(1 / 3)
    # with frame 0: seq 0: 1≠0, 1≠0, 0=0 → 2/3 as well; change frame 3 to see the difference
    preds2 = torch.tensor([[0, 1, 0, 1]])
    assert flip_probability(preds2, noise=False) == pytest.approx(1.0)
    assert flip_probability(preds2, noise=True) == pytest.approx(2 / 3)
    assert sequence_flip_probabilities(preds, False).tolist() == pytest.approx([2 / 3, 0])
    assert compares_with_first_frame("gaussian_noise") and compares_with_first_frame("shot_noise_3")
    assert not compares_with_first_frame("rotate") and not compares_with_first_frame("motion_blur")
    with pytest.raises(InputRangeError, match="at least 2 frames"):
        flip_probability(torch.zeros(3, 1, dtype=torch.long), noise=False)


def ranking(order: list[int], k: int = 8) -> torch.Tensor:
    """Scores whose descending order of classes is ``order`` (others after, by index)."""
    scores = torch.zeros(k)
    for position, cls in enumerate(order):
        scores[cls] = 100.0 - position
    return scores


def test_top5_distance_hand_computed():
    a = ranking([0, 1, 2, 3, 4, 5, 6, 7])
    same = top5_distance(a[None], a[None])
    assert same.tolist() == [0.0]
    # top two swapped: σ = (2, 1, 3, 4, 5) → |0−1| + |1−0| = 2
    assert top5_distance(a[None], ranking([1, 0, 2, 3, 4, 5, 6, 7])[None]).tolist() == [2.0]
    # A's top class falls to rank 8 in B: σ − 1 = (7→5, 0, 1, 2, 3) → 5 + 1 + 1 + 1 + 1 = 9
    b = ranking([1, 2, 3, 4, 5, 6, 7, 0])
    assert top5_distance(a[None], b[None]).tolist() == [9.0]
    # A's classes 3 and 4 fall below the top 5 and 5, 6 take their places:
    # σ − 1 = (0, 1, 2, 6→5, 7→5) → 0 + 0 + 0 + |3−5| + |4−5| = 3
    c = ranking([0, 1, 2, 5, 6, 7, 3, 4])
    assert top5_distance(a[None], c[None]).tolist() == [3.0]


def test_top5_distance_sequences_and_metric_accumulate():
    a, b, c = (
        ranking([0, 1, 2, 3, 4, 5, 6, 7]),
        ranking([1, 0, 2, 3, 4, 5, 6, 7]),
        ranking([1, 2, 3, 4, 5, 6, 7, 0]),
    )
    seq = torch.stack([torch.stack([a, b, c])])  # (1, 3, 8)
    # consecutive: d(a, b) = 2; d(b, c): B order 1,0,2,3,4 → in C ranks: 1→0, 0→7→5, 2→1, 3→2, 4→3
    #   = |0−0| + |1−5| + |2−1| + |3−2| + |4−3| = 7 → mean 4.5
    assert mean_top5_distance(seq, noise=False) == pytest.approx(4.5)
    # with frame 0: d(a, b) = 2, d(a, c) = 9 → 5.5
    assert mean_top5_distance(seq, noise=True) == pytest.approx(5.5)
    metric = Top5Distance(noise=False)
    metric.update(seq)
    metric.update(torch.stack([a, a, a])[None])
    assert metric.compute().item() == pytest.approx((4.5 + 0) / 2)
    fp = FlipProbability(noise=True)
    fp.update(torch.tensor([[0, 1, 1], [2, 2, 2]]))
    fp.update(seq)  # logits: argmax 0, 1, 1 → 2 flips of 2 against frame 0
    assert fp.compute().item() == pytest.approx((1.0 + 0.0 + 1.0) / 3)


def test_flip_rate_and_t5d_normalised_by_named_baseline():
    model = {"rotate": 0.02, "gaussian_noise": 0.09}
    baseline = {"rotate": 0.04, "gaussian_noise": 0.06, "tilt": 0.1}
    assert normalize_by_baseline(model, baseline) == pytest.approx(
        {"rotate": 0.5, "gaussian_noise": 1.5}
    )
    with pytest.raises(ConfigError, match="no value for tilt"):  # a subset must be named
        mean_flip_rate(model, baseline)
    assert mean_flip_rate(model, baseline, ["rotate", "gaussian_noise"]) == pytest.approx(100.0)
    assert mean_top5_distance_rate({"rotate": 1.0}, {"rotate": 4.0}) == pytest.approx(25.0)
    with pytest.raises(ConfigError, match="the baseline has no value for scale"):
        mean_flip_rate({"scale": 0.1}, baseline, ["scale"])


# ------------------------------------------------------------------ calibration
def test_ece_hand_computed():
    conf = torch.tensor([0.95, 0.95, 0.65, 0.65, 0.25])
    correct = torch.tensor([1, 0, 1, 1, 0])
    # bins of width .1: (.9, 1]: acc .5, conf .95 → .45·2/5; (.6, .7]: 1 vs .65 → .35·2/5;
    # (.2, .3]: 0 vs .25 → .25·1/5. Total .18 + .14 + .05 = .37
    assert expected_calibration_error(conf, correct, n_bins=10) == pytest.approx(0.37)
    # one bin: |mean conf − accuracy| = |.69 − .6|
    assert expected_calibration_error(conf, correct, n_bins=1) == pytest.approx(0.09)
    probs = torch.tensor([[0.95, 0.05], [0.95, 0.05], [0.35, 0.65], [0.35, 0.65], [0.25, 0.75]])
    labels = torch.tensor([0, 1, 1, 1, 1])
    # last row: confidence .75 correct → bin (.7, .8]: .25·1/5 = .05
    assert expected_calibration_error_from_scores(probs, labels, 10) == pytest.approx(
        0.18 + 0.14 + 0.05
    )


def test_ece_matches_torchmetrics_and_accumulates():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(300, 10, generator=g) * 3
    labels = torch.randint(0, 10, (300,), generator=g)
    reference = MulticlassCalibrationError(num_classes=10, n_bins=15, norm="l1")(logits, labels)
    ours = expected_calibration_error_from_scores(logits, labels, n_bins=15)
    assert ours == pytest.approx(reference.item(), abs=1e-6)
    metric = CalibrationError(n_bins=15)
    for chunk in range(3):
        metric.update(
            logits[chunk * 100 : (chunk + 1) * 100], labels[chunk * 100 : (chunk + 1) * 100]
        )
    assert metric.compute().item() == pytest.approx(ours, abs=1e-6)
    with pytest.raises(ConfigError, match="n_bins"):
        CalibrationError(n_bins=0)


# ------------------------------------------------------------------ OOD (ImageNet-O)
def test_average_precision_and_auroc_hand_computed():
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    positive = torch.tensor([True, False, True, False])
    # thresholds .9: P=1 R=.5; .8: P=.5 R=.5; .7: P=2/3 R=1; .6: P=.5 R=1
    # AP = .5·1 + 0 + .5·2/3 + 0 = 5/6
    assert average_precision(scores, positive) == pytest.approx(5 / 6)
    # pairs (pos > neg): (.9 > .8), (.9 > .6), (.7 < .8), (.7 > .6) → 3/4
    assert auroc(scores, positive) == pytest.approx(0.75)
    ties = torch.tensor([0.5, 0.5]), torch.tensor([True, False])
    assert average_precision(*ties) == pytest.approx(0.5)  # one threshold: P = .5, R = 1
    assert auroc(*ties) == pytest.approx(0.5)


def test_ood_scores_match_sklearn_with_ood_positive():
    g = torch.Generator().manual_seed(1)
    in_logits = torch.randn(40, 5, generator=g) * 4
    out_logits = torch.randn(30, 5, generator=g)
    in_scores, out_scores = (
        max_softmax_anomaly_score(in_logits),
        max_softmax_anomaly_score(out_logits),
    )
    assert torch.all(in_scores <= -0.2 + 1e-6) and torch.all(in_scores >= -1)
    result = ood_detection_scores(in_scores, out_scores)
    y = np.r_[np.ones(30), np.zeros(40)]
    s = np.r_[out_scores.numpy(), in_scores.numpy()]
    assert result["aupr"] == pytest.approx(average_precision_score(y, s))
    assert result["auroc"] == pytest.approx(roc_auc_score(y, s))
    # perfectly separated: confident in-distribution, uniform OOD
    perfect = ood_detection_scores(torch.tensor([-1.0, -0.9]), torch.tensor([-0.2, -0.3]))
    assert perfect == {"aupr": 1.0, "auroc": 1.0}
    with pytest.raises(ConfigError, match="both"):
        ood_detection_scores(torch.tensor([]), torch.tensor([0.1]))
    assert math.isfinite(result["aupr"])


def test_metric_states_merge_like_ddp_ranks():
    """merge_state applies the states' dist_reduce_fx, as the DDP sync does: two "ranks" that
    each saw half the data must give the single-process value."""
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(60, 7, generator=g)
    labels = torch.randint(0, 7, (60,), generator=g)
    sequences = torch.randn(6, 5, 7, generator=g)
    for make, args in (
        (CalibrationError, (logits, labels)),
        (lambda: FlipProbability(noise=True), (sequences,)),
        (lambda: Top5Distance(noise=False), (sequences,)),
    ):
        whole, rank0, rank1 = make(), make(), make()
        whole.update(*args)
        rank0.update(*(a[: len(a) // 3] for a in args))
        rank1.update(*(a[len(a) // 3 :] for a in args))
        rank0.merge_state(rank1)
        assert rank0.compute().item() == pytest.approx(whole.compute().item(), abs=1e-6)


def test_alexnet_normalisation_only_for_imagenet_scale_reports():
    """AlexNet's errors are ImageNet-C's (224 px, the ImageNet table): a digits run logged
    corruption_error/contrast = 114.5 and leaderboards an "mCE" normalised by them. Reports
    that record a CIFAR-scale image size keep only the unnormalised scores."""
    full = {n: {s: 0.5 for s in range(1, 6)} for n in BENCHMARK_CORRUPTIONS}
    small = summarize_report(RobustnessReport(4, 0.9, corruptions=full, image_size=(32, 32)))
    assert small["mce"] is None and small["relative_mce"] is None and small["ce"] == {}
    assert small["unnormalized_mce"] == pytest.approx(50.0)
    assert "corruption_error/mce" not in summary_metrics(small)
    large = summarize_report(RobustnessReport(4, 0.9, corruptions=full, image_size=(224, 224)))
    unknown_size = RobustnessReport(4, 0.9, corruptions=full)  # older reports: as before
    assert large["mce"] == pytest.approx(summarize_report(unknown_size)["mce"])
    assert RobustnessReport.from_dict(RobustnessReport(4, 0.9, image_size=(32, 32)).to_dict())
