"""The metrics refuse input that would make them report a number for nothing or for garbage:
empty states, predictions passed as masks, non-finite or out-of-range rates and baselines,
broken minimal-ε budgets, float predictions, top-5 distances over fewer than 5 classes,
non-finite perturbations; AR without a clean-correct image is undefined (NaN), not 0, and no
corruption is dropped from the category means."""

import math

import numpy as np
import pytest
import torch

from robustart.errors import ConfigError, EmptyInputError, InputRangeError, NonFiniteError
from robustart.metrics import (
    FlipProbability,
    GradientHealth,
    RobustnessCounts,
    category_means,
    corruption_category,
    corruption_error,
    expected_calibration_error,
    flip_probability,
    mean_corruption_accuracy,
    mean_flip_rate,
    mean_top5_distance,
    mean_top5_distance_rate,
    minimal_eps_statistics,
    perturbation_norms,
    relative_corruption_error,
    top5_distance,
    unnormalized_mean_corruption_error,
)

NAN, INF = math.nan, math.inf


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_robustness_counts_refuse_zero_images():
    with pytest.raises(EmptyInputError, match="zero images"):
        RobustnessCounts(["clean", "pgd"]).compute()
    counts = RobustnessCounts(["clean", "pgd"])
    empty = torch.zeros(0, dtype=torch.bool)
    counts.update({"clean": empty, "pgd": empty})
    with pytest.raises(EmptyInputError, match="zero images"):
        counts.compute()
    counts.update({"clean": torch.tensor([True, False]), "pgd": torch.tensor([False, False])})
    assert counts.compute()["accuracy"] == {"clean": 0.5, "pgd": 0.0}


@pytest.mark.parametrize(
    "clean,pgd",
    [
        (torch.tensor([5, 0]), torch.tensor([3, 0])),  # predictions, not masks
        (torch.tensor([1, 0]), torch.tensor([1, 0])),  # 0/1 integers: still not masks
        (torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0])),
    ],
)
def test_robustness_counts_refuse_non_bool_masks(clean, pgd):
    with pytest.raises(InputRangeError, match="must be a bool tensor"):
        RobustnessCounts(["clean", "pgd"]).update({"clean": clean, "pgd": pgd})


def test_robustness_counts_refuse_missing_tests_and_mismatched_shapes():
    counts = RobustnessCounts(["clean", "pgd"])
    with pytest.raises(ConfigError, match=r"lacks the tests \['pgd'\]"):
        counts.update({"clean": torch.tensor([True])})
    with pytest.raises(InputRangeError, match="same N"):
        counts.update({"clean": torch.tensor([True, False]), "pgd": torch.tensor([True])})


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_gradient_health_refuses_zero_images():
    with pytest.raises(EmptyInputError, match="zero images"):
        GradientHealth().compute()
    health = GradientHealth()
    health.update(torch.zeros(0, 3, 2, 2))
    with pytest.raises(EmptyInputError, match="zero images"):
        health.compute()


@pytest.mark.parametrize(
    "values,baseline,message",
    [
        ({"a": NAN}, {"a": 0.1}, "flip probability of a must be a fraction"),
        ({"a": -0.5}, {"a": 0.1}, "flip probability of a must be a fraction"),
        ({"a": 1.5}, {"a": 0.1}, "flip probability of a must be a fraction"),
        ({"a": 0.1}, {"a": NAN}, "baseline's flip probability of a"),
        ({"a": 0.1}, {"a": INF}, "baseline's flip probability of a"),
        ({"a": 0.1}, {"a": -0.2}, "baseline's flip probability of a"),
        ({"a": 0.1}, {"a": 0.0}, "baseline's flip probability of a is 0"),
    ],
)
def test_mean_flip_rate_refuses_non_finite_or_out_of_range(values, baseline, message):
    with pytest.raises(ConfigError, match=message):
        mean_flip_rate(values, baseline)


def test_mean_top5_distance_rate_refuses_non_finite_or_out_of_range():
    assert mean_top5_distance_rate({"a": 3.0}, {"a": 6.0}) == pytest.approx(50.0)
    for values, baseline in (({"a": NAN}, {"a": 1.0}), ({"a": 16.0}, {"a": 1.0})):
        with pytest.raises(ConfigError, match="top-5 distance of a must be"):
            mean_top5_distance_rate(values, baseline)
    with pytest.raises(ConfigError, match="baseline's top-5 distance of a"):
        mean_top5_distance_rate({"a": 1.0}, {"a": INF})


@pytest.mark.parametrize("value", [0.0, NAN, -0.3, 1.5, INF])
def test_corruption_error_refuses_bad_baselines(value):
    with pytest.raises(ConfigError, match="baseline's error"):
        corruption_error("fog", {1: 0.2}, {"fog": {1: value}})


@pytest.mark.parametrize("value", [NAN, -0.1, 2.0, INF])
def test_relative_corruption_error_refuses_bad_baseline_clean_error(value):
    with pytest.raises(ConfigError, match="baseline_clean_error must be a fraction"):
        relative_corruption_error("fog", {1: 0.2}, 0.1, {"fog": {1: 0.5}}, value)


def test_relative_corruption_error_still_refuses_a_baseline_without_an_increase():
    with pytest.raises(ConfigError, match="does not exceed its clean error"):
        relative_corruption_error("fog", {1: 0.2}, 0.1, {"fog": {1: 0.4}}, 0.4)
    with pytest.raises(ConfigError, match="baseline's error on fog at severity 1"):
        relative_corruption_error("fog", {1: 0.2}, 0.1, {"fog": {1: NAN}}, 0.4)


def test_pair_means_refuse_unknown_severities():
    with pytest.raises(ConfigError, match=r"severity must be an integer 1\.\.5, got 7"):
        unnormalized_mean_corruption_error({"fog": {1: 0.2, 7: 0.3}})
    with pytest.raises(ConfigError, match=r"severity must be an integer 1\.\.5, got 9"):
        mean_corruption_accuracy({"fog": {9: 0.5}})


@pytest.mark.parametrize("bad", [NAN, -0.1, -INF])
def test_minimal_eps_statistics_refuses_nan_and_negative_budgets(bad):
    with pytest.raises(ConfigError, match="NaN or negative"):
        minimal_eps_statistics(torch.tensor([bad, 0.2, 0.3]))


def test_minimal_eps_statistics_keeps_misclassified_and_unbroken_markers():
    stats = minimal_eps_statistics(torch.tensor([0.0, 0.2, INF]))
    assert stats == pytest.approx(
        {"mean": 0.2, "median": 0.2, "unbroken": 1 / 3, "median_all": 0.2}
    )


@pytest.mark.parametrize(
    "predictions", [torch.rand(2, 4), torch.tensor([[True, False], [False, False]])]
)
def test_flip_probability_refuses_non_integer_predictions(predictions):
    with pytest.raises(InputRangeError, match="integer class indices"):
        flip_probability(predictions, noise=False)
    with pytest.raises(InputRangeError, match="integer class indices"):
        FlipProbability().update(predictions)


def test_flip_probability_and_top5_distance_refuse_zero_sequences():
    with pytest.raises(EmptyInputError, match="zero sequences"):
        flip_probability(torch.zeros(0, 3, dtype=torch.long), noise=False)
    with pytest.raises(EmptyInputError, match="zero sequences"):
        mean_top5_distance(torch.zeros(0, 3, 6), noise=False)


def test_top5_distance_refuses_fewer_than_5_classes():
    scores = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    with pytest.raises(InputRangeError, match="at least 5 classes, got 4"):
        top5_distance(scores, scores.flip(1))
    with pytest.raises(InputRangeError, match="at least 5 classes, got 3"):
        mean_top5_distance(torch.randn(2, 3, 3), noise=False)
    five = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0]])
    assert top5_distance(five, five.flip(1)).tolist() == [12.0]  # |4|+|3-1|+0+|1-3|+|0-4|


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_ar_is_undefined_without_a_clean_correct_image():
    counts = RobustnessCounts(["clean", "pgd"])
    counts.update({"clean": torch.tensor([False, False]), "pgd": torch.tensor([False, True])})
    result = counts.compute()
    assert result["accuracy"] == {"clean": 0.0, "pgd": 0.5}
    assert all(math.isnan(v) for v in result["ar"].values())
    assert all(math.isnan(v) for v in result["success_rate"].values())
    counts.update({"clean": torch.tensor([True]), "pgd": torch.tensor([False])})
    assert counts.compute()["ar"] == {"clean": 1.0, "pgd": 0.0}


def test_a_report_from_zero_counted_images_is_refused():
    from robustart.evaluation import RobustnessReport
    from robustart.evaluation.suite import load_suite

    suite = load_suite({"attacks": [{"name": "fgsm", "eps": ["8/255"]}]})
    with pytest.raises(EmptyInputError, match="0 images"):
        RobustnessReport.from_counts(suite, [0, 0], total=0)
    assert RobustnessReport.from_counts(suite, [3, 1], total=4).clean == 0.75


@pytest.mark.parametrize("bad", [NAN, INF, -INF])
def test_perturbation_norms_refuse_non_finite_perturbations(bad):
    delta = torch.zeros(3, 1, 2, 2)
    delta[1, 0, 1, 1] = bad
    with pytest.raises(NonFiniteError, match="1 of 3 perturbations"):
        perturbation_norms(delta)


def test_category_means_keep_every_corruption(monkeypatch):
    from robustart.corruptions.base import CORRUPTIONS, Corruption

    class Hue(Corruption):
        name, category = "test_hue_shift", "colour"

    monkeypatch.setitem(CORRUPTIONS._items, "test_hue_shift", Hue)
    assert corruption_category("test_hue_shift") == "colour"
    table = {
        "gaussian_noise": {1: 0.9, 3: 0.7},
        "test_hue_shift": {1: 0.6},
        "my_unregistered": {2: 0.4},
        "speckle_noise": {1: 0.2},
    }
    assert category_means(table) == pytest.approx(
        {"noise": 0.8, "extra": 0.2, "colour": 0.6, "other": 0.4}
    )
    assert list(category_means(table)) == ["noise", "extra", "colour", "other"]


def test_metric_inputs_that_would_be_misread_are_refused():
    """Before: severity 1.5 read as 1 (overwriting it), "01" beside "1", a corruption listed
    twice weighing double, an empty list a ZeroDivisionError, (N, K) logits flattened into
    AUROC "scores", correctness 0.5 read as 0 and 2 a torchmetrics traceback."""
    from robustart.metrics.calibration import expected_calibration_error
    from robustart.metrics.corruption import (
        BENCHMARK_CORRUPTIONS,
        corruption_error,
        mean_corruption_error,
    )
    from robustart.metrics.ood import auroc, ood_detection_scores

    with pytest.raises(ConfigError, match=r"integer 1\.\.5, got 1\.5"):
        corruption_error("fog", {1: 0.2, 1.5: 0.9})
    with pytest.raises(ConfigError, match="got '01'"):
        corruption_error("fog", {"1": 0.9, "01": 0.1})
    assert corruption_error("fog", {"1": 0.2}) == corruption_error("fog", {1: 0.2})  # JSON keys
    full = {n: {s: 0.5 for s in range(1, 6)} for n in BENCHMARK_CORRUPTIONS}
    with pytest.raises(ConfigError, match="more than once would weigh double: fog"):
        mean_corruption_error(full, corruptions=["fog", "fog", "snow"])
    with pytest.raises(EmptyInputError):
        mean_corruption_error(full, corruptions=[])
    with pytest.raises(InputRangeError, match=r"shape \(3, 4\): OOD detection takes one"):
        ood_detection_scores(torch.randn(3, 4), torch.randn(2, 4))
    with pytest.raises(InputRangeError, match="3 scores but 2 labels"):
        auroc(torch.tensor([0.1, 0.2, 0.3]), torch.tensor([True, False]))
    for correct in (torch.full((4,), 0.5), torch.full((4,), 2)):
        with pytest.raises(InputRangeError, match="0/1 or bool"):
            expected_calibration_error(torch.full((4,), 0.5), correct)


# ----------------------------------------------------------------------------- fourth audit
def test_half_precision_probabilities_are_not_softmaxed_again():
    """Before: float16/bfloat16 softmax rows (sums off by more than 1e-4) were taken for
    logits, so ECE was 0.0016 instead of 0.454 over 1,000 classes; MSP likewise."""
    from robustart.metrics import expected_calibration_error_from_scores, max_softmax_anomaly_score

    logits = torch.randn(64, 1000, generator=torch.Generator().manual_seed(0)) * 4
    labels = torch.randint(0, 1000, (64,), generator=torch.Generator().manual_seed(1))
    expected = expected_calibration_error_from_scores(logits, labels)
    for dtype in (torch.float16, torch.bfloat16):
        probabilities = logits.to(dtype).softmax(1)
        assert expected_calibration_error_from_scores(probabilities, labels) == pytest.approx(
            expected, abs=2e-3
        )
        msp = max_softmax_anomaly_score(probabilities)
        assert torch.allclose(msp, max_softmax_anomaly_score(logits), atol=0.05)  # not ~0


def test_robustness_counts_need_the_clean_test_first_and_groups_with_members():
    """Before: ["pgd", "clean"] gave AR relative to pgd (1.0 instead of 0.5) and an empty
    worst-case group a worst-case accuracy of 100 %."""
    with pytest.raises(ConfigError, match="clean test first"):
        RobustnessCounts(["pgd", "clean"])
    with pytest.raises(ConfigError, match="has no tests: its accuracy would be 100"):
        RobustnessCounts(["clean", "pgd"], groups={"robust/worst_case_l2/eps=0.5": []})
    RobustnessCounts(["robust/clean", "robust/pgd"], groups={"wc": ["robust/pgd"]})


def test_perturbation_norms_take_a_bool_success_mask():
    """Before: a 0/1 integer mask selected images 0, 0, 1 by index (L∞ mean 0.0133, not 0.03)."""
    from robustart.metrics import PerturbationNorms

    norms = PerturbationNorms(["pgd"])
    delta = torch.stack([torch.full((3, 2, 2), v) for v in (0.01, 0.02, 0.03)])
    with pytest.raises(InputRangeError, match="must be a bool tensor"):
        norms.update("pgd", delta, torch.tensor([0, 0, 1]))
    with pytest.raises(ConfigError, match="unknown test 'fgsm'"):
        norms.update("fgsm", delta, torch.tensor([False, False, True]))
    norms.update("pgd", delta, torch.tensor([False, False, True]))
    assert norms.compute()["pgd"]["linf_mean"] == pytest.approx(0.03)


def test_relative_mce_against_another_baseline_needs_its_clean_error():
    """Before: AlexNet's clean error (0.435) was paired with the other baseline's errors:
    181.6 instead of 83.3."""
    from robustart.corruptions.base import BENCHMARK_CORRUPTIONS
    from robustart.evaluation.report import RobustnessReport
    from robustart.metrics import relative_mean_corruption_error, summarize_report

    model = {c: dict.fromkeys(range(1, 6), 0.5) for c in BENCHMARK_CORRUPTIONS}
    other = {c: dict.fromkeys(range(1, 6), 0.6) for c in BENCHMARK_CORRUPTIONS}
    with pytest.raises(ConfigError, match="needs that baseline's clean error"):
        relative_mean_corruption_error(model, 0.2, baseline=other)
    value = relative_mean_corruption_error(model, 0.2, baseline=other, baseline_clean_error=0.24)
    assert value == pytest.approx(100 * 0.3 / 0.36)
    accuracies = {c: dict.fromkeys(range(1, 6), 0.5) for c in BENCHMARK_CORRUPTIONS}
    report = RobustnessReport(4, 0.8, corruptions=accuracies, image_size=(224, 224))
    with pytest.raises(ConfigError, match="give the baseline's own baseline_clean_error"):
        summarize_report(report, other)
    assert summarize_report(report, other, None)["relative_mce"] is None


def test_mfr_and_mt5d_need_every_baseline_perturbation():
    """Before: the mFR of one of three perturbations was reported (50.0); mCE refuses that."""
    base = {"rotate": 0.2, "translate": 0.4, "scale": 0.3}
    with pytest.raises(ConfigError, match="no value for scale, translate"):
        mean_flip_rate({"rotate": 0.1}, base)
    with pytest.raises(ConfigError, match="mT5D averages over the baseline's 3 perturbations"):
        mean_top5_distance_rate({"rotate": 1.0}, base)
    assert mean_flip_rate(dict.fromkeys(base, 0.1), dict.fromkeys(base, 0.2)) == pytest.approx(50)


def test_top5_distance_refuses_non_finite_scores():
    """Before: a NaN row ranked as perfectly stable (distance 0)."""
    scores = torch.randn(3, 10)
    broken = scores.clone()
    broken[0, 0] = NAN
    with pytest.raises(NonFiniteError):
        top5_distance(scores, broken)


def test_sixteen_bit_pngs_decode_to_the_same_pixels_with_every_decoder():
    """Before: torchvision's decoder kept the low byte of each 16-bit sample (85 levels off)."""
    import io

    import numpy as np
    from PIL import Image

    from robustart.system_noise import DECODERS

    samples = np.random.default_rng(0).integers(0, 65536, (20, 20)).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(samples).save(buffer, format="PNG")
    expected = np.rint(samples / 257.0).astype(np.uint8)
    for name in ("pil", "torchvision"):
        decoded = DECODERS.get(name)(buffer.getvalue())
        np.testing.assert_array_equal(decoded[..., 0], expected, err_msg=name)


def test_a_report_no_evaluation_can_produce_is_refused():
    """Before: a report of 0 images gave metrics and an mCE of 64.67; percentages flowed into
    the metrics and figures (y = 9000 %); a NaN between two budgets hid a rising curve from
    the sanity check; a JSON without `corruptions` was a KeyError."""
    from robustart.evaluation.report import RobustnessReport

    with pytest.raises(EmptyInputError, match="at least one evaluated image"):
        RobustnessReport(num_images=0, clean=0.5)
    with pytest.raises(InputRangeError, match="a percentage"):
        RobustnessReport(num_images=4, clean=85.0)
    with pytest.raises(InputRangeError, match=r"pgd at eps=0\.1 is nan"):
        RobustnessReport(4, 0.5, attacks={"pgd": {0.05: 0.4, 0.1: NAN, 0.2: 0.6}})
    with pytest.raises(InputRangeError, match="fog at severity 3"):
        RobustnessReport(4, 0.5, corruptions={"fog": {3: 1.5}})
    assert math.isnan(RobustnessReport(4, NAN).clean)  # clean not measured: allowed
    data = RobustnessReport(4, 0.5, corruptions={"fog": {3: 0.25}}).to_dict()
    del data["corruptions"]
    with pytest.raises(ConfigError, match=r"not a robustart report .* 'corruptions'"):
        RobustnessReport.from_dict(data)


def _numpy_and_tensor_calls():
    """(name, call) pairs: each call takes a converter applied to every array argument."""
    g = np.random.default_rng(0)
    logits = g.normal(size=(12, 6)).astype(np.float32)
    labels = g.integers(0, 4, 12)
    confidence, hit = g.random(12), g.random(12) > 0.5
    sequences = g.integers(0, 4, (3, 6))
    from robustart.evaluation.minimal import accuracy_curve
    from robustart.metrics import (
        auroc,
        average_precision,
        calibration_bins,
        confidence_and_correct,
        distortion_statistics,
        expected_calibration_error_from_scores,
        max_softmax_anomaly_score,
        ood_detection_scores,
        sequence_flip_probabilities,
    )

    return [
        ("ece", lambda a: expected_calibration_error(a(confidence), a(hit))),
        ("bins", lambda a: calibration_bins(a(confidence), a(hit))),
        ("confidence", lambda a: confidence_and_correct(a(logits), a(labels))),
        ("ece scores", lambda a: expected_calibration_error_from_scores(a(logits), a(labels))),
        ("auroc", lambda a: auroc(a(confidence), a(hit))),
        ("aupr", lambda a: average_precision(a(confidence), a(hit))),
        ("msp", lambda a: max_softmax_anomaly_score(a(logits))),
        ("ood", lambda a: ood_detection_scores(a(confidence[:6]), a(confidence[6:]))),
        ("flips", lambda a: sequence_flip_probabilities(a(sequences), noise=False)),
        ("flip", lambda a: flip_probability(a(sequences), noise=True)),
        ("top5", lambda a: top5_distance(a(logits[:6]), a(logits[6:]))),
        ("norms", lambda a: perturbation_norms(a(logits.reshape(12, 1, 2, 3)))),
        ("distortion", lambda a: distortion_statistics({"l2": a(confidence)}, a(hit))),
        ("minimal", lambda a: minimal_eps_statistics(a(np.array([0.0, 0.1, np.inf])))),
        ("curve", lambda a: accuracy_curve(a(np.array([0.0, 0.1, 0.3])), [0.05])),
    ]


@pytest.mark.parametrize(("name", "call"), _numpy_and_tensor_calls())
def test_metrics_take_numpy_arrays_and_lists_as_tensors(name, call):
    """NumPy arrays and lists give what tensors give (before: AttributeError on .detach)."""
    expected = _plain(call(torch.from_numpy))
    for convert in (lambda x: x, lambda x: x.tolist()):  # a list of float32 values: float64
        assert _plain(call(convert)) == pytest.approx(expected, rel=1e-6), name


def _plain(value):
    """Tensors, dataclasses and dicts of a metric's result as flat lists of floats."""
    if isinstance(value, torch.Tensor):
        return [float(v) for v in value.flatten()]
    if hasattr(value, "__dataclass_fields__"):
        value = vars(value)
    if isinstance(value, dict):
        return [x for key in sorted(value) for x in _plain(value[key])]
    if isinstance(value, (tuple, list)):
        return [x for item in value for x in _plain(item)]
    return [float(value)]


@pytest.mark.parametrize("bad", [["a", "b"], [[0.1, 0.2], [0.3]], None])
def test_metrics_refuse_arguments_without_numbers(bad):
    with pytest.raises(ConfigError, match="confidence must be a tensor, a NumPy array or a list"):
        expected_calibration_error(bad, torch.ones(2, dtype=torch.bool))
