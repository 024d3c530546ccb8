"""Robustness metrics and sanity checks on hand-computed cases."""

import pytest
import torch

from robustart.evaluation import RobustnessReport, RobustnessSuite
from robustart.metrics import GradientHealth, PerturbationNorms, RobustnessCounts

T, F_ = True, False


def test_counts_accuracy_ar_success_and_wcar_hand_computed():
    metric = RobustnessCounts(["clean", "a", "b"], groups={"wc": ["a", "b"]})
    metric.update(
        {
            "clean": torch.tensor([T, T, T, T, F_]),
            "a": torch.tensor([T, T, F_, F_, T]),  # the last image is fooled clean but right here
            "b": torch.tensor([T, F_, T, F_, F_]),
        }
    )
    metric.update({"clean": torch.tensor([T]), "a": torch.tensor([T]), "b": torch.tensor([T])})
    out = metric.compute()
    # 6 images, 5 clean-correct
    assert out["accuracy"] == pytest.approx({"clean": 5 / 6, "a": 4 / 6, "b": 3 / 6})
    assert out["ar"] == pytest.approx({"clean": 1.0, "a": 3 / 5, "b": 3 / 5})
    assert out["success_rate"]["a"] == pytest.approx(2 / 5)
    assert out["wcar"]["wc"] == pytest.approx(2 / 6)  # images 0 and 5 survive both
    assert out["count"] == {"images": 6.0, "clean_correct": 5.0}


def test_perturbation_norms_hand_computed():
    metric = PerturbationNorms(["pgd"])
    delta = torch.zeros(3, 1, 2, 2)
    delta[0, 0, 0, 0] = 0.3  # linf 0.3, l2 0.3
    delta[1, 0] = 0.1  # linf 0.1, l2 0.2
    delta[2, 0, 0, 0] = 0.9  # not successful: ignored
    metric.update("pgd", delta, torch.tensor([T, T, F_]))
    stats = metric.compute()["pgd"]
    assert stats["linf_mean"] == pytest.approx(0.2)
    assert stats["l2_mean"] == pytest.approx(0.25)
    assert stats["linf_median"] == pytest.approx(0.1)  # lower median of two
    empty = PerturbationNorms(["x"])
    empty.update("x", delta, torch.tensor([F_, F_, F_]))
    assert empty.compute()["x"]["l2_mean"] is None


def test_gradient_health():
    metric = GradientHealth()
    grad = torch.randn(4, 3, 2, 2)
    grad[1] = 0
    grad[2, 0, 0, 0] = float("nan")
    metric.update(grad)
    assert metric.compute() == {"zero_fraction": 0.25, "nonfinite_fraction": 0.25}


def make_report(pgd, fgsm=None, square=None, clean=0.9, zero=0.0):
    suite = RobustnessSuite(
        [
            {"name": "pgd", "eps": list(pgd), "steps": 10},
            *([{"name": "fgsm", "eps": list(fgsm)}] if fgsm else []),
            *([{"name": "square", "eps": list(square), "queries": 10}] if square else []),
        ]
    )
    report = RobustnessReport(num_images=100, clean=clean)
    for entry in suite.attacks:
        source = {"pgd": pgd, "fgsm": fgsm, "square": square}[entry.attack.name]
        report.attacks[entry.label] = dict(source)
        report.attack_settings[entry.label] = entry.attack.config
    report.gradient_check = {"zero_fraction": zero, "nonfinite_fraction": 0.0}
    return report


def test_sanity_checks_pass_on_a_healthy_report():
    report = make_report({0.0: 0.9, 0.01: 0.6, 0.03: 0.2}, fgsm={0.03: 0.4}, square={0.03: 0.3})
    assert report.sanity_warnings() == []


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"pgd": {0.0: 0.85, 0.03: 0.2}}, "not the clean accuracy"),
        ({"pgd": {0.01: 0.3, 0.03: 0.5}}, "accuracy rises"),
        ({"pgd": {0.03: 0.5}, "fgsm": {0.03: 0.4}}, "weaker than FGSM"),
        ({"pgd": {0.03: 0.5}, "square": {0.03: 0.3}}, "likely gradient masking"),
        ({"pgd": {0.03: 0.5}, "zero": 0.5}, "all-zero CE input gradient"),
    ],
)
def test_sanity_checks_flag_each_red_flag(kwargs, message):
    warnings = make_report(**kwargs).sanity_warnings()
    assert any(message in w for w in warnings), warnings


def test_report_metric_names_include_ar_success_and_worst_case():
    suite = RobustnessSuite(
        [{"name": "pgd", "eps": "8/255", "steps": 3}, {"name": "fgsm", "eps": "8/255"}]
    )
    counts = RobustnessCounts(suite.keys(), suite.worst_case_groups())
    counts.update(
        {
            "robust/clean": torch.tensor([T, T, T, F_]),
            "robust/pgd3_linf/eps=8_255": torch.tensor([T, F_, F_, F_]),
            "robust/fgsm_linf/eps=8_255": torch.tensor([T, T, F_, F_]),
        }
    )
    metrics = RobustnessReport.from_metrics(suite, counts.compute()).metrics()
    assert metrics["robust/pgd3_linf/eps=8_255"] == 0.25
    assert metrics["robust_ar/pgd3_linf/eps=8_255"] == pytest.approx(1 / 3)
    assert metrics["attack_success/fgsm_linf/eps=8_255"] == pytest.approx(1 / 3)
    assert metrics["robust/worst_case_linf/eps=8_255"] == 0.25
