"""Statistics of a robustness study (least-squares line, Pareto frontier, Su et al.'s scaling
law, family transfer averages) and their figures, on hand-built cases."""

import doctest
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import robustart.metrics.study as study
from robustart.errors import ConfigError, EmptyInputError
from robustart.metrics import (
    LinearFit,
    family_transfer_averages,
    fit_line,
    pareto_frontier,
    scaling_law,
)
from robustart.plots import pareto_figure, save_pareto, save_scaling_law, scaling_law_figure

REVIEW = Path("/tmp/study_review")


def test_docstring_examples_run():
    assert doctest.testmod(study).failed == 0


# ----------------------------------------------------------------------------- fit_line
def test_fit_line_recovers_a_known_line_exactly():
    x = [-3.0, -1.5, 0.0, 2.0, 7.0]
    fit = fit_line(x, [0.3 * v + 2.0 for v in x])
    assert fit.slope == pytest.approx(0.3, abs=1e-12)
    assert fit.intercept == pytest.approx(2.0, abs=1e-12)
    assert fit.r2 == 1.0 and fit.n == 5
    assert fit.predict(10.0) == pytest.approx(5.0)
    assert fit.to_dict() == {"slope": fit.slope, "intercept": fit.intercept, "r2": 1.0, "n": 5}


def test_fit_line_on_noisy_points_matches_polyfit_and_hand_r2():
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    y = np.array([1.0, 2.9, 5.2, 6.8, 9.3])
    slope, intercept = np.polyfit(x, y, 1)
    fit = fit_line(torch.tensor(x), y.tolist())  # a tensor and a list are both accepted
    assert fit.slope == pytest.approx(slope, rel=1e-12)
    assert fit.intercept == pytest.approx(intercept, rel=1e-12)
    # by hand: slope = Sxy / Sxx = 20.5 / 10 = 2.05, intercept = 5.04 - 2.05 * 2 = 0.94
    assert fit.slope == pytest.approx(2.05) and fit.intercept == pytest.approx(0.94)
    residuals = y - (2.05 * x + 0.94)  # 0.06 -0.09 0.16 -0.29 0.16
    ss_res = float(residuals @ residuals)  # 0.147
    ss_tot = float(((y - y.mean()) ** 2).sum())  # 42.172
    assert ss_res == pytest.approx(0.147) and ss_tot == pytest.approx(42.172)
    assert fit.r2 == pytest.approx(1 - 0.147 / 42.172, rel=1e-12)
    assert fit_line([0, 1, 2], [0, 2, 1]).r2 == pytest.approx(0.25)  # r = 0.5


def test_fit_line_constant_y_has_nan_r2_and_zero_slope():
    fit = fit_line([1, 2, 3], [4, 4, 4])
    assert fit.slope == 0.0 and fit.intercept == 4.0 and math.isnan(fit.r2)


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        ([1.0], [2.0], "at least 2 points"),
        ([], [], "at least 2 points"),
        ([1.0, 2.0], [1.0], "same length"),
        ([1.0, math.nan], [1.0, 2.0], "non-finite"),
        ([1.0, 2.0], [1.0, math.inf], "non-finite"),
        ([3.0, 3.0, 3.0], [1.0, 2.0, 3.0], "all x are equal"),
        ([[1.0, 2.0]], [[1.0, 2.0]], "flat sequence"),
        (["a", "b"], [1.0, 2.0], "sequence of numbers"),
    ],
)
def test_fit_line_refuses_broken_input(x, y, message):
    with pytest.raises(ConfigError, match=message):
        fit_line(x, y)


def test_predict_refuses_non_finite_x():
    with pytest.raises(ConfigError, match="finite"):
        LinearFit(1.0, 0.0, 1.0, 2).predict(math.nan)


# ----------------------------------------------------------------------------- pareto
def test_pareto_dominated_points_are_left_out_and_order_is_by_x():
    points = {
        "a": (0.90, 0.10),
        "b": (0.80, 0.30),
        "c": (0.70, 0.20),  # dominated by b
        "d": (0.60, 0.40),
        "e": (0.80, 0.25),  # same x as b, lower y: dominated by b
        "f": (0.55, 0.40),  # same y as d, lower x: dominated by d
    }
    assert pareto_frontier(points) == ["d", "b", "a"]


def test_pareto_identical_points_are_both_on_the_frontier():
    points = {"y": (0.7, 0.3), "x": (0.7, 0.3), "z": (0.6, 0.2)}
    assert pareto_frontier(points) == ["x", "y"]


def test_pareto_single_point_and_collinear_points():
    assert pareto_frontier({"only": (0.5, 0.5)}) == ["only"]
    # on a rising line the last point dominates all others
    assert pareto_frontier({f"m{i}": (0.1 * i, 0.2 * i) for i in range(5)}) == ["m4"]
    # on a falling line (a trade-off) every point is on the frontier
    falling = {f"m{i}": (0.1 * i, 1.0 - 0.1 * i) for i in range(5)}
    assert pareto_frontier(falling) == ["m0", "m1", "m2", "m3", "m4"]


def test_pareto_refuses_broken_input():
    with pytest.raises(EmptyInputError):
        pareto_frontier({})
    with pytest.raises(ConfigError, match="finite"):
        pareto_frontier({"a": (0.5, math.nan)})
    with pytest.raises(ConfigError, match="finite"):
        pareto_frontier({"a": (math.inf, 0.5)})
    with pytest.raises(ConfigError, match="pair"):
        pareto_frontier({"a": (0.5,)})


# ----------------------------------------------------------------------------- scaling law
def synthetic_models() -> tuple[dict[str, float], dict[str, float]]:
    """Models whose distortion is exactly 0.3 · ln(error) + 2."""
    accuracy = {"r18": 0.70, "r50": 0.76, "vit": 0.81, "eff": 0.84, "mob": 0.65}
    distortion = {m: 0.3 * math.log(1 - a) + 2 for m, a in accuracy.items()}
    return distortion, accuracy


def test_scaling_law_recovers_the_synthetic_law():
    distortion, accuracy = synthetic_models()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is left out: no warning
        fit, points = scaling_law(distortion, accuracy)
    assert fit.slope == pytest.approx(0.3, abs=1e-12)
    assert fit.intercept == pytest.approx(2.0, abs=1e-12)
    assert fit.r2 == pytest.approx(1.0, abs=1e-12) and fit.n == 5
    assert list(points) == list(distortion)
    assert points["r50"] == pytest.approx((math.log(0.24), 0.3 * math.log(0.24) + 2))


def test_scaling_law_leaves_out_perfect_and_unbroken_models_with_a_warning():
    distortion, accuracy = synthetic_models()
    distortion |= {"perfect": 1.0, "unbroken": math.nan}
    accuracy |= {"perfect": 1.0, "unbroken": 0.5}
    with pytest.warns(UserWarning, match=r"perfect.*unbroken"):
        fit, points = scaling_law(distortion, accuracy)
    assert set(points) == {"r18", "r50", "vit", "eff", "mob"} and fit.n == 5
    assert fit.slope == pytest.approx(0.3, abs=1e-12)


@pytest.mark.parametrize(
    ("distortion", "accuracy", "error", "message"),
    [
        ({}, {}, EmptyInputError, "no models"),
        ({"a": 1.0, "b": 2.0}, {"a": 0.5, "c": 0.6}, ConfigError, "same models"),
        ({"a": 1.0, "b": 2.0}, {"a": 0.5, "b": 1.2}, ConfigError, r"\[0, 1\]"),
        ({"a": 1.0, "b": 2.0}, {"a": 0.5, "b": 80.0}, ConfigError, "percentages"),
        ({"a": 1.0, "b": 2.0}, {"a": 0.5, "b": math.nan}, ConfigError, "finite"),
        ({"a": 1.0, "b": math.inf}, {"a": 0.5, "b": 0.6}, ConfigError, "finite norm"),
        ({"a": 1.0, "b": -0.1}, {"a": 0.5, "b": 0.6}, ConfigError, "finite norm"),
        ({"a": 1.0, "b": 2.0}, {"a": 0.5, "b": 0.5}, ConfigError, "same clean error"),
        ({"a": 1.0}, {"a": 0.5}, ConfigError, "at least 2"),
    ],
)
def test_scaling_law_refuses_broken_input(distortion, accuracy, error, message):
    with pytest.raises(error, match=message):
        scaling_law(distortion, accuracy)


def test_scaling_law_refuses_when_too_few_models_remain():
    with pytest.warns(UserWarning, match="perfect"), pytest.raises(ConfigError, match="1 of 3"):
        scaling_law({"a": 1.0, "perfect": 2.0, "u": math.nan}, {"a": 0.5, "perfect": 1.0, "u": 0.6})


# ----------------------------------------------------------------------------- families
MODELS = ["r18", "r50", "vit"]
FAMILIES = {"r18": "resnet", "r50": "resnet", "vit": "transformer"}
MATRIX = [
    [0.05, 0.40, 0.70],  # crafted on r18
    [0.30, 0.02, 0.80],  # crafted on r50
    [0.60, 0.50, 0.01],  # crafted on vit
]


@pytest.mark.parametrize("kind", [list, np.array, torch.tensor])
def test_family_averages_on_a_hand_made_matrix(kind):
    averages = family_transfer_averages(kind(MATRIX), MODELS, MODELS, FAMILIES)
    # within: r18→r50 0.40, r50→r18 0.30; cross: r18→vit 0.70, r50→vit 0.80, vit→r18 0.60,
    # vit→r50 0.50; the white-box diagonal is left out
    assert averages["within"] == pytest.approx((0.40 + 0.30) / 2)
    assert averages["cross"] == pytest.approx((0.70 + 0.80 + 0.60 + 0.50) / 4)
    assert averages["within_pairs"] == 2 and averages["cross_pairs"] == 4


def test_family_averages_with_different_sources_and_targets_and_missing_kinds():
    # sources r18, vit; targets r50, r18: pairs r18→r50 (within), vit→r50, vit→r18 (cross)
    matrix = [[0.4, 0.1], [0.5, 0.6]]
    averages = family_transfer_averages(matrix, ["r18", "vit"], ["r50", "r18"], FAMILIES)
    assert averages == {
        "within": pytest.approx(0.4),
        "cross": pytest.approx(0.55),
        "within_pairs": 1,
        "cross_pairs": 2,
    }
    only_cross = family_transfer_averages([[0.3]], ["r18"], ["vit"], FAMILIES)
    assert only_cross["within"] is None and only_cross["within_pairs"] == 0
    assert only_cross["cross"] == pytest.approx(0.3)
    white_box = family_transfer_averages([[0.3]], ["r18"], ["r18"], FAMILIES)
    assert white_box == {"within": None, "cross": None, "within_pairs": 0, "cross_pairs": 0}


@pytest.mark.parametrize(
    ("matrix", "sources", "targets", "families", "error", "message"),
    [
        (MATRIX[:2], MODELS, MODELS, FAMILIES, ConfigError, "shape"),
        ([[0.1, 0.2]], ["r18"], MODELS, FAMILIES, ConfigError, "shape"),
        ([[math.nan]], ["r18"], ["vit"], FAMILIES, ConfigError, "non-finite"),
        ([[1.5]], ["r18"], ["vit"], FAMILIES, ConfigError, r"\[0, 1\]"),
        ([[0.1]], ["r18"], ["resnet152"], FAMILIES, ConfigError, "resnet152"),
        ([[0.1, 0.2]], ["r18"], ["vit", "vit"], FAMILIES, ConfigError, "more than once"),
        ([], [], MODELS, FAMILIES, EmptyInputError, "sources"),
        ([[0.1]], ["r18"], "vit", FAMILIES, ConfigError, "not the string"),
    ],
)
def test_family_averages_refuse_broken_input(matrix, sources, targets, families, error, message):
    with pytest.raises(error, match=message):
        family_transfer_averages(matrix, sources, targets, families)


# ----------------------------------------------------------------------------- figures
def png_size(path: Path) -> tuple[int, int]:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        return image.size


def test_pareto_figure_marks_the_frontier_and_states_the_ranges():
    points = {
        "resnet18": (69.8, 31.0),
        "resnet50": (76.1, 34.5),
        "wide_resnet50": (78.5, 33.0),
        "vit_b16": (81.1, 40.2),
        "deit_s": (79.8, 41.0),
        "mobilenet_v3": (67.7, 25.1),
        "efficientnet_b0": (77.7, 29.4),
        "convnext_t": (82.1, 36.3),
    }
    groups = {
        "resnet18": "ResNet",
        "resnet50": "ResNet",
        "wide_resnet50": "ResNet",
        "vit_b16": "ViT",
        "deit_s": "ViT",
        "mobilenet_v3": "mobile",
        "efficientnet_b0": "mobile",
        "convnext_t": "ConvNeXt",
    }
    frontier = pareto_frontier(points)
    assert frontier == ["deit_s", "vit_b16", "convnext_t"]
    fig = pareto_figure(
        points, frontier, "clean accuracy (%)", "PGD robust accuracy (%)", groups, "zoo study"
    )
    ax = fig.axes[0]
    stars = [c for c in ax.collections if c.get_gid() == "pareto-frontier"]
    assert len(stars) == 1 and len(stars[0].get_offsets()) == len(frontier)
    step = [line for line in ax.lines if line.get_gid() == "pareto-step"]
    assert len(step) == 1
    assert ax.get_xlabel().startswith("clean accuracy (%), axis ")
    assert ax.get_ylabel().startswith("PGD robust accuracy (%), axis ")
    low, high = ax.get_xlim()
    assert 60 < low < 67.7 and 82.1 < high <= 100  # zoomed to the data
    texts = {t.get_text() for t in ax.texts}
    assert set(points) <= texts  # every model is labelled
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == [
        "ResNet",
        "ViT",
        "mobile",
        "ConvNeXt",
        "Pareto frontier",
    ]
    fig.clf()
    REVIEW.mkdir(parents=True, exist_ok=True)
    path = save_pareto(
        points,
        REVIEW / "pareto.png",
        frontier,
        "clean accuracy (%)",
        "PGD robust accuracy (%)",
        groups,
        "zoo study: clean vs robust accuracy",
    )
    width, height = png_size(path)
    assert width > 500 and height > 400
    fractions = {"a": (0.9, 0.1), "b": (0.8, 0.3), "c": (0.7, 0.2), "twin": (0.8, 0.3)}
    fig = pareto_figure(fractions, pareto_frontier(fractions), "clean", "robust")
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert texts == {"a", "b = twin", "c"}  # identical points share one label
    assert fig.axes[0].get_xlim()[1] <= 1.0 and not fig.legends[0].get_title().get_text()
    fig.clf()
    path = save_pareto(
        fractions, REVIEW / "pareto_plain.png", ["b", "twin", "a"], "clean", "robust"
    )
    assert png_size(path)[0] > 400


def test_pareto_labels_do_not_overlap_or_push_accuracy_past_100():
    """The README main job's case: two models close together at 0 % robust accuracy and a
    frontier model near 100 % clean accuracy with a long name."""
    points = {
        "digits_resnet20_standard": (99.6, 6.4),
        "digits_resnet20_pgd_at": (98.8, 85.6),
        "digits_mixer_tiny_standard": (97.2, 0.0),
        "digits_mixer_tiny_mixup": (95.6, 0.0),
        "digits_mixer_tiny_pgd_at": (77.6, 53.6),
    }
    fig = pareto_figure(points, pareto_frontier(points), "clean (%)", "robust (%)")
    ax = fig.axes[0]
    assert ax.get_xlim()[1] <= 100
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    assert len(boxes) == len(points)
    for i, first in enumerate(boxes):
        for second in boxes[i + 1 :]:
            assert not first.overlaps(second)
    fig.clf()


def test_pareto_figure_refuses_broken_input():
    with pytest.raises(EmptyInputError):
        pareto_figure({}, [], "x", "y")
    with pytest.raises(ConfigError, match="without a point"):
        pareto_figure({"a": (0.1, 0.2)}, ["b"], "x", "y")
    with pytest.raises(ConfigError, match="without a group"):
        pareto_figure({"a": (0.1, 0.2), "b": (0.2, 0.1)}, ["a", "b"], "x", "y", {"a": "g"})
    with pytest.raises(ConfigError, match="not finite"):
        pareto_figure({"a": (0.1, math.nan)}, [], "x", "y")


def test_scaling_law_figure_has_a_panel_per_norm_with_the_fit_text():
    accuracy = {"r18": 0.70, "r50": 0.76, "vit": 0.81, "eff": 0.84, "mob": 0.65}
    rng = np.random.default_rng(0)
    noise = dict(zip(accuracy, rng.normal(0, 0.01, len(accuracy))))
    l2 = {m: 0.3 * math.log(1 - a) + 2 + noise[m] for m, a in accuracy.items()}
    linf = {m: (0.4 * math.log(1 - a) + 1.5 + noise[m]) / 255 for m, a in accuracy.items()}
    fits = {"l2": scaling_law(l2, accuracy), "linf": scaling_law(linf, accuracy)}
    fig = scaling_law_figure(fits)
    panels = [ax for ax in fig.axes if ax.get_xlabel().startswith("ln(")]
    assert len(panels) == 2  # L∞ first, then L2
    for ax, norm in zip(panels, ["linf", "l2"]):
        name = {"linf": "L∞", "l2": "L2"}[norm]
        fit = fits[norm][0]
        assert ax.get_xlabel().startswith("ln(classification error), axis ")
        assert ax.get_ylabel().startswith(f"mean minimal ε ({name}), axis ")
        (text,) = [t.get_text() for t in ax.texts if t.get_gid() == "scaling-fit"]
        assert text == (
            f"slope {fit.slope:.4g}, intercept {fit.intercept:.4g}, R² {fit.r2:.3f}, n 5"
        )
        assert {t.get_text() for t in ax.texts} >= set(accuracy)
        (line,) = ax.lines
        xs = [math.log(1 - a) for a in accuracy.values()]
        assert line.get_xdata() == pytest.approx([min(xs), max(xs)])
        assert line.get_ydata() == pytest.approx([fit.predict(min(xs)), fit.predict(max(xs))])
    fig.clf()
    REVIEW.mkdir(parents=True, exist_ok=True)
    path = save_scaling_law(fits, REVIEW / "scaling_law.png", "zoo study: Su et al. scaling law")
    width, height = png_size(path)
    assert width > 800 and height > 400
    one = {"l2": (fit_line([-1.0, -2.0], [1.0, 1.0]), {"a": (-1.0, 1.0), "b": (-2.0, 1.0)})}
    text = [t.get_text() for t in scaling_law_figure(one).axes[0].texts if t.get_gid()]
    assert text == ["slope 0, intercept 1, R² undefined (constant ε), n 2"]


def test_scaling_law_names_keep_the_error_axis_below_100_percent():
    """A falling law with long model names near the largest error (the digits zoo's case):
    the names go left there, so the ln-error axis ends at or below 0 (error 100 %), and no two
    names overlap."""
    points = {
        "digits_resnet20_trades": (-4.6, 0.151),
        "digits_mobilenetv2_050_standard": (-4.6, 0.070),
        "digits_mixer_tiny_pgd_at": (-1.5, 0.122),
        "digits_vit_tiny_pgd_at": (-1.35, 0.029),
        "digits_vit_tiny_mixup": (-1.5, 0.012),
        "digits_mixer_tiny_standard": (-2.8, 0.019),
    }
    fit = fit_line([x for x, _ in points.values()], [y for _, y in points.values()])
    assert fit.slope < 0
    fig = scaling_law_figure({"linf": (fit, points)})
    ax = fig.axes[0]
    assert ax.get_xlim()[1] <= 0.0
    renderer = fig.canvas.get_renderer()
    names = [t for t in ax.texts if t.get_text() in points]
    assert len(names) == len(points)
    boxes = [t.get_window_extent(renderer) for t in names]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    fig.clf()


def test_scaling_law_figure_refuses_broken_input():
    with pytest.raises(EmptyInputError):
        scaling_law_figure({})
    fit = LinearFit(1.0, 0.0, 1.0, 2)
    with pytest.raises(EmptyInputError):
        scaling_law_figure({"l2": (fit, {})})
    with pytest.raises(ConfigError, match="not finite"):
        scaling_law_figure({"l2": (fit, {"a": (math.inf, 1.0)})})
