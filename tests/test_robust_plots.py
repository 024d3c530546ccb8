"""Plots: valid PNGs, arrays for W&B, clear errors, and one style (zoomed axes that state
their range, legends outside the data, distinct run markers, category dividers, predictions)."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from robustart.corruptions import CORRUPTIONS
from robustart.errors import ConfigError, InputRangeError, UnknownNameError
from robustart.evaluation.report import RobustnessReport
from robustart.plots import (
    accuracy_heatmap_figure,
    corruption_gallery_figure,
    corruption_order,
    figure_to_array,
    save_accuracy_heatmap,
    save_corruption_gallery,
)


def png_size(path) -> tuple[int, int]:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        return image.size


def report(clean: float, curves: dict[str, dict[int, float]]) -> RobustnessReport:
    return RobustnessReport(num_images=8, clean=clean, corruptions=curves)


def test_corruption_order_is_canonical_then_alphabetical():
    assert corruption_order(["zeta", "contrast", "gaussian_noise", "gaussian_blur", "alpha"]) == [
        "gaussian_noise",
        "contrast",
        "gaussian_blur",
        "alpha",
        "zeta",
    ]


def test_gallery_with_every_registered_corruption(tmp_path):
    images = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    path = save_corruption_gallery(images, tmp_path / "gallery.png", max_images=2)
    width, height = png_size(path)
    rows = len(CORRUPTIONS)
    # 6 columns of 2-image strips, one row per registered corruption
    assert width > 600 and height > 60 * rows and width > height * 6 / rows
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_gallery_cells_show_the_corruption_and_grayscale_works():
    gray = torch.full((1, 1, 16, 16), 0.5)
    fig = corruption_gallery_figure(gray, corruptions=["contrast", "brightness"], severities=[5])
    axes = fig.axes  # the clean images once, then one row per corruption
    assert len(axes) == 3 and axes[0].get_ylabel() == "clean"
    assert axes[1].get_title() == "severity 5" and axes[1].get_ylabel() == "contrast"
    assert axes[2].get_ylabel() == "brightness"
    brightened = axes[2].get_images()[0].get_array()
    assert brightened.shape == (16, 16, 3) and float(brightened.mean()) > 0.6  # brighter than 0.5
    array = figure_to_array(fig)
    assert array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3


def test_gallery_bad_input():
    with pytest.raises(InputRangeError, match=r"\[0, 1\]"):
        corruption_gallery_figure(torch.rand(2, 3, 8, 8) * 255)
    with pytest.raises(ConfigError, match="at least one image"):
        corruption_gallery_figure(torch.rand(0, 3, 8, 8))
    with pytest.raises(UnknownNameError, match="contrast"):
        corruption_gallery_figure(torch.rand(1, 3, 8, 8), corruptions=["contrst"])


def test_heatmap_single_and_side_by_side(tmp_path):
    base = report(0.9, {n: {s: 0.9 - 0.1 * s for s in range(1, 6)} for n in ("fog", "contrast")})
    other = report(0.8, {"contrast": {1: 0.7, 3: 0.5}, "jpeg_compression": {1: 0.6}})
    path = save_accuracy_heatmap({"standard": base, "pgd": other}, tmp_path / "heat.png", "runs")
    width, height = png_size(path)
    assert width > 500 and height > 150
    fig = accuracy_heatmap_figure(base)
    ax = fig.axes[0]
    grid = ax.get_images()[0].get_array()
    # rows: fog (weather) before contrast (digital); columns: severities 1..5 and the mean
    assert [t.get_text() for t in ax.get_yticklabels()] == ["fog", "contrast"]
    assert grid.shape == (2, 6)
    assert grid[0, 0] == pytest.approx(80.0) and grid[0, 5] == pytest.approx(60.0)
    texts = {t.get_text() for t in ax.texts}
    assert {"80", "40", "60"} <= texts
    assert figure_to_array(fig).shape[2] == 3
    fig2 = accuracy_heatmap_figure({"a": base, "b": other})
    grid_b = fig2.axes[1].get_images()[0].get_array()
    assert grid_b.shape == (3, 6)  # fog, contrast, jpeg_compression × 1..5 + mean
    assert np.ma.is_masked(grid_b[0, 0])  # run b has no fog: blank cell
    assert np.ma.is_masked(grid_b[1, 1]) and grid_b[1, 0] == pytest.approx(70.0)
    # the mean column averages the severities every measured row has (jpeg_compression: only
    # 1), in both panels: contrast's 0.7 at severity 1, not the mean of 0.7 and 0.5 beside
    # fog's mean over 1..5, which would compare easier severities with harder ones
    assert grid_b[1, 5] == pytest.approx(70.0) and grid_b[2, 5] == pytest.approx(60.0)
    grid_a = fig2.axes[0].get_images()[0].get_array()
    assert grid_a[0, 5] == pytest.approx(80.0) and np.ma.is_masked(grid_a[2, 5])
    assert fig2.axes[0].get_xticklabels()[-1].get_text() == "mean\n(sev 1)"


def test_heatmap_empty_report_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no corruption accuracies"):
        save_accuracy_heatmap(report(0.9, {}), tmp_path / "x.png")
    with pytest.raises(ConfigError, match="run2 has no corruption accuracies"):
        accuracy_heatmap_figure({"run1": report(0.9, {"fog": {1: 0.5}}), "run2": report(0.9, {})})
    with pytest.raises(ConfigError, match="no reports"):
        accuracy_heatmap_figure({})
    assert not (tmp_path / "x.png").exists()


def test_robustness_curves_still_write_a_png(tmp_path):
    from robustart.plots import plot_robustness_curves

    r = RobustnessReport(
        num_images=8,
        clean=0.9,
        attacks={"pgd_linf": {2 / 255: 0.7, 8 / 255: 0.3}},
        attack_settings={"pgd_linf": {"norm": "linf"}},
        corruptions={"fog": {1: 0.8, 3: 0.6}},
    )
    width, height = png_size(plot_robustness_curves({"run": r}, tmp_path / "curves.png"))
    assert width > 800 and height > 300


# ============================================================================= one style
from matplotlib.colors import to_hex  # noqa: E402
from torch import nn  # noqa: E402

from robustart import plots  # noqa: E402


def full_report(clean=0.99, shift=0.0, l2=True, worst_case=True) -> RobustnessReport:
    """Accuracies in 80–99 %: two L∞ attacks (and one L2), 4 corruptions, one worst case."""
    attacks = {
        "pgd10_linf": {2 / 255: 0.93 - shift, 8 / 255: 0.86 - shift},
        "apgd_ce100_linf": {2 / 255: 0.92 - shift, 8 / 255: 0.85 - shift},
    }
    settings = {label: {"norm": "linf"} for label in attacks}
    if l2:
        attacks["pgd10_l2"] = {0.25: 0.95 - shift, 0.5: 0.91 - shift}
        settings["pgd10_l2"] = {"norm": "l2"}
    names = ("gaussian_noise", "fog", "contrast", "jpeg_compression")
    corruptions = {
        n: {s: clean - shift - 0.01 * s * (i + 1) for s in (1, 3, 5)} for i, n in enumerate(names)
    }
    return RobustnessReport(
        num_images=64,
        clean=clean,
        attacks=attacks,
        attack_settings=settings,
        corruptions=corruptions,
        worst_case={"robust/worst_case_linf/eps=8_255": 0.84 - shift} if worst_case else {},
    )


def data_axes(fig):
    """Axes holding lines (not colour bars, not legends)."""
    return [ax for ax in fig.axes if ax.get_lines() or ax.get_images()]


def assert_legend_outside(fig, legend):
    fig.canvas.draw()
    box = legend.get_window_extent()
    for ax in data_axes(fig):
        assert not box.overlaps(ax.get_window_extent()), ax.get_title()


def assert_zoomed(ax, values, margin=10.0):
    """y axis covers the data, ends at most ``margin`` points beyond it, and says its range."""
    low, high = ax.get_ylim()
    assert min(values) - margin <= low <= min(values) and max(values) <= high <= 100
    assert high - low < 60  # not the old fixed 0–100
    assert f"axis {plots._range_text((low, high))}" in ax.get_ylabel()


def test_zoomed_limits_cover_the_data_with_a_minimum_span():
    low, high = plots._zoomed_limits([86.0, 99.0])
    assert 80 <= low < 86 and high == 100
    low, high = plots._zoomed_limits([97.0, 99.0], pad=0.03)
    assert high - low >= 5 and low <= 97 and high >= 99 and high <= 100
    assert plots._zoomed_limits([99.9, 100.0]) == (95.0, 100.0)  # clipped, 5-point span kept
    assert plots._zoomed_limits([0.2, 0.4])[0] == 0.0
    assert plots._zoomed_limits([math.nan]) == (0.0, 100.0)
    low, high = plots._zoomed_limits([3.1, 4.7], pad=0.15, ceiling=None, min_span=0.2)
    assert 2 < low < 3.1 and 4.7 < high < 6
    assert plots._range_text((62.0, 100.0)) == "62–100"


def test_robustness_curves_one_run_both_norms():
    report = full_report()
    fig = plots.robustness_curves_figure({"resnet20": report}, title="resnet20, epoch 7")
    assert fig.get_suptitle() == "resnet20, epoch 7"
    linf, l2, severity = data_axes(fig)
    assert linf.get_xlabel() == "ε (×1/255)" and "L2" in l2.get_xlabel()
    assert sorted(linf.get_lines()[0].get_xdata()) == pytest.approx([0, 2, 8])  # units of 1/255
    assert list(l2.get_lines()[0].get_xdata()) == pytest.approx([0, 0.25, 0.5])
    assert len(linf.get_lines()) == 2 and len(l2.get_lines()) == 1  # one unit per axes
    assert_zoomed(linf, [85, 99])
    assert_zoomed(l2, [91, 99])
    assert "4 corruptions" in severity.get_title() and severity.get_xlabel().startswith("severity")
    assert_zoomed(severity, [99 - 5 * 2.5, 99])  # severity 5: 99 − 5·mean(1, 2, 3, 4)
    # one colour per attack
    colours = [to_hex(line.get_color()) for line in linf.get_lines()]
    assert len(set(colours)) == 2
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [
        "pgd10_linf",
        "apgd_ce100_linf",
        "pgd10_l2",
        "corruption mean",
    ]
    assert_legend_outside(fig, legend)


def test_robustness_curves_identical_runs_stay_distinguishable(tmp_path):
    report = full_report(l2=False)
    fig = plots.robustness_curves_figure(
        {"a": report, "b": report, "c": full_report(0.97, 0.05, l2=False)}
    )
    linf, _ = data_axes(fig)
    lines = linf.get_lines()  # per run: pgd10, apgd
    assert len(lines) == 6
    styles = {(line.get_marker(), line.get_linestyle(), line.get_markersize()) for line in lines}
    assert len(styles) == 3  # a marker, line style and size per run
    assert to_hex(lines[0].get_color()) == to_hex(lines[2].get_color())  # colour = attack
    assert lines[0].get_markerfacecolor() != lines[2].get_markerfacecolor()  # hollow vs filled
    (legend,) = fig.legends
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts[-3:] == ["run: a", "run: b", "run: c"] and len(texts) == 2 + 1 + 3
    assert_legend_outside(fig, legend)
    assert_zoomed(linf, [80, 99])
    path = plots.plot_robustness_curves({"a": report, "b": report}, tmp_path / "c.png", title="t")
    assert png_size(path)[0] > 600


def test_robustness_curves_without_attacks_or_corruptions_still_render():
    fig = plots.robustness_curves_figure(RobustnessReport(num_images=4, clean=0.5))
    assert figure_to_array(fig).shape[2] == 3


def history(epochs, shift=0.0, **kwargs):
    return [(e, full_report(0.9 + 0.02 * e, shift + 0.1 - 0.02 * e, **kwargs)) for e in epochs]


def test_robustness_over_epochs_one_run(tmp_path):
    fig = plots.robustness_over_epochs_figure(history([0, 1, 2]), title="resnet20 over epochs")
    assert fig.get_suptitle() == "resnet20 over epochs"
    (ax,) = data_axes(fig)
    (legend,) = fig.legends
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts[0] == "clean" and "pgd10_linf ε=8/255" in texts and "pgd10_l2 ε=0.5" in texts
    assert "corruption mean (4 corruptions)" in texts and "worst case linf/eps=8_255" in texts
    assert len(texts) == 1 + 6 + 1 + 1 == len(ax.get_lines())
    assert list(ax.get_lines()[0].get_xdata()) == [0, 1, 2]
    assert all(float(t).is_integer() for t in ax.get_xticks())
    clean = ax.get_lines()[0]
    assert list(clean.get_ydata()) == pytest.approx([90, 92, 94]) and clean.get_marker() == "o"
    assert_zoomed(ax, [70, 94], margin=12)
    assert_legend_outside(fig, legend)
    path = plots.save_robustness_over_epochs(history([3]), tmp_path / "e.png", title="one")
    assert png_size(path)[1] > 300


def test_robustness_over_epochs_single_evaluation_and_two_runs():
    fig = plots.robustness_over_epochs_figure(history([4]))
    (ax,) = data_axes(fig)
    assert list(ax.get_xticks()) == [4] and ax.get_xlim()[0] < 4 < ax.get_xlim()[1]
    assert all(line.get_marker() == "o" for line in ax.get_lines())  # drawn as points
    runs = {"a": history([0, 1, 2]), "b": history([0, 2], 0.05, worst_case=False)}
    fig = plots.robustness_over_epochs_figure(runs)
    (ax,) = data_axes(fig)
    (legend,) = fig.legends
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts[-2:] == ["run: a", "run: b"] and len(texts) == 9 + 2
    markers = {line.get_marker() for line in ax.get_lines()}
    assert len(markers) == 2
    assert_legend_outside(fig, legend)
    with pytest.raises(ConfigError, match="no evaluation"):
        plots.robustness_over_epochs_figure([])
    with pytest.raises(ConfigError, match="epoch: int"):
        plots.robustness_over_epochs_figure([("x", full_report())])


def test_heatmap_categories_dividers_mean_label_and_zoomed_colours():
    curves = {
        "gaussian_noise": {1: 0.99, 3: 0.97, 5: 0.95},
        "shot_noise": {1: 0.98, 3: 0.96, 5: 0.94},
        "fog": {1: 0.97, 3: 0.93, 5: 0.90},
        "contrast": {1: 0.96, 3: 0.92, 5: 0.86},
        "my_corruption": {1: 0.95, 3: 0.90, 5: 0.88},
    }
    fig = accuracy_heatmap_figure(report(0.99, curves), "resnet20, epoch 7")
    assert fig.get_suptitle() == "resnet20, epoch 7"
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["1", "3", "5", "mean\n(sev 1,3,5)"]
    # groups noise | weather | digital | other: 3 horizontal dividers + the mean divider
    horizontal = [line for line in ax.get_lines() if len(set(line.get_ydata())) == 1]
    assert len(ax.get_lines()) == 4 and len(horizontal) == 3
    low, high = ax.get_images()[0].get_clim()
    assert 80 <= low <= 86 and 99 <= high <= 100 and high - low >= 5
    colorbar_label = fig.axes[-1].get_ylabel()
    assert f"scale {plots._range_text((low, high))}" in colorbar_label
    texts = {t.get_text(): t for t in ax.texts}
    assert texts["86"].get_color() == "white" and texts["99"].get_color() == "black"
    side = ax.child_axes[0] if ax.child_axes else None
    assert side is not None
    categories = [t.get_text() for t in side.get_yticklabels()]
    assert categories == [
        "noise",
        "weather",
        "digital",
        "other",
    ]
    fig = accuracy_heatmap_figure(report(0.99, curves), category_labels=False)
    assert not fig.axes[0].child_axes


def test_heatmap_several_runs_share_one_zoomed_scale():
    base = report(0.99, {n: {s: 0.99 - 0.01 * s for s in (1, 2, 3, 4, 5)} for n in ("fog", "snow")})
    other = report(0.97, {"fog": {1: 0.96, 5: 0.9}, "contrast": {1: 0.95}})
    fig = accuracy_heatmap_figure({"a": base, "b": other})
    images = [ax.get_images()[0] for ax in fig.axes[:2]]
    assert images[0].get_clim() == images[1].get_clim()
    low, high = images[0].get_clim()
    assert 85 <= low <= 90 and high >= 98
    # contrast is measured at severity 1 only: the mean column is over severity 1 everywhere
    assert fig.axes[0].get_xticklabels()[-1].get_text() == "mean\n(sev 1)"
    full = accuracy_heatmap_figure(base)
    assert full.axes[0].get_xticklabels()[-1].get_text() == "mean\n(sev 1–5)"


def test_draw_accuracy_grid_zooms_unless_told():
    plt = plots._pyplot()
    fig, ax = plt.subplots()
    grid = np.array([[97.0, 99.0], [np.nan, 98.0]])
    image = plots.draw_accuracy_grid(ax, grid)
    low, high = image.get_clim()
    assert high - low >= 5 and low < 97 and 99 <= high <= 100
    assert plots.draw_accuracy_grid(ax, grid, vmin=0, vmax=100).get_clim() == (0, 100)
    plt.close(fig)


def test_transfer_heatmap_uses_the_same_zoom():
    from robustart.evaluation.transfer import TransferResult

    result = TransferResult(
        sources=["a", "b"],
        targets=["a", "b"],
        matrix=torch.tensor([[0.45, 0.6], [0.55, 0.5]]),
        clean=torch.tensor([0.9, 0.88]),
        num_images=10,
    )
    fig = plots.transfer_heatmap_figure(result, "transfer, epoch 3")
    low, high = fig.axes[0].get_images()[0].get_clim()
    assert 40 <= low < 45 and 90 <= high <= 95
    assert fig.get_suptitle() == "transfer, epoch 3"
    assert "scale" in fig.axes[-1].get_ylabel()


class ConstantModel(nn.Module):
    """Predicts class 3 for every image; records its mode and grad mode when called."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
        nn.init.zeros_(self.net[1].weight)
        with torch.no_grad():
            self.net[1].bias.copy_(torch.eye(10)[3])
        self.calls = []

    def forward(self, x):
        self.calls.append((self.training, torch.is_grad_enabled()))
        return self.net(x)


def gallery_rows(fig):
    return len({round(ax.get_position().y0, 4) for ax in fig.axes})


def test_gallery_with_a_model_writes_coloured_predictions(digits):
    images, _ = digits
    model = ConstantModel().train()
    names = [f"class {i}" for i in range(10)]
    fig = corruption_gallery_figure(
        images[:3],
        corruptions=["fog", "contrast"],
        severities=[1, 5],
        model=model,
        labels=torch.tensor([3, 5, 3]),
        class_names=names,
        title="resnet20: predictions",
    )
    assert fig.get_suptitle() == "resnet20: predictions"
    assert any("green: correct, red: wrong" in t.get_text() for t in fig.texts)
    assert gallery_rows(fig) == 1 + 2 and len(fig.axes) == 1 + 2 * 2
    assert [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()] == ["clean", "fog", "contrast"]
    assert model.training and all(mode == (True, False) for mode in model.calls)
    assert len(model.calls) == 1 + 4
    for ax in fig.axes:
        predictions = [t for t in ax.texts if t.get_text() == "class 3"]
        assert len(predictions) == 3
        assert [to_hex(t.get_color()) for t in predictions] == [
            to_hex(plots.CORRECT_COLOUR),
            to_hex(plots.WRONG_COLOUR),
            to_hex(plots.CORRECT_COLOUR),
        ]
    clean_labels = [t.get_text() for t in fig.axes[0].texts if t.get_text().startswith("label")]
    assert clean_labels == ["label: class 3", "label: class 5", "label: class 3"]


def test_gallery_without_labels_or_model():
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    fig = corruption_gallery_figure(images, ["fog"], severities=[1, 2, 3], model=ConstantModel())
    assert all(to_hex(t.get_color()) == "#000000" for ax in fig.axes for t in ax.texts)
    assert {t.get_text() for ax in fig.axes for t in ax.texts} == {"3"}
    assert fig.get_suptitle().startswith("corruptions at severities 1–3")
    fig = corruption_gallery_figure(images, ["fog"], severities=[1, 2, 3])
    assert gallery_rows(fig) == 2 and not any(ax.texts for ax in fig.axes)
    with pytest.raises(ConfigError, match="labels"):
        corruption_gallery_figure(images, ["fog"], labels=torch.tensor([1]))
    with pytest.raises(ConfigError, match="logits"):
        corruption_gallery_figure(images, ["fog"], model=lambda x: x.mean())


def test_bar_chart_zoom_is_a_dot_plot_and_bars_start_at_zero():
    values = {"standard": {"a": 90.0, "b": 91.5, "c": 89.2}, "pgd": {"a": 86.0, "b": 88.0}}
    fig = plots.grouped_bar_figure(values, "accuracy (%)", "system noise", zoom=True)
    ax = fig.axes[0]
    assert not ax.patches and not ax.containers  # no bars on a truncated axis
    points = [line for line in ax.get_lines() if line.get_marker() not in (None, "None", "")]
    assert len(points) == 2 and points[0].get_marker() != points[1].get_marker()
    low, high = ax.get_xlim()
    assert 80 <= low <= 86 and 91.5 < high <= 95
    assert f"axis {plots._range_text((low, high))}" in ax.get_xlabel()
    assert {"90.0", "86.0", "88.0"} <= {t.get_text() for t in ax.texts}
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["standard", "pgd"]
    assert_legend_outside(fig, legend)
    assert fig.get_suptitle() == "system noise"
    fig = plots.grouped_bar_figure({"s": {"x": 3.1}, "p": {"x": 4.7}}, "flip (%)", zoom=False)
    ax = fig.axes[0]
    assert ax.get_xlim()[0] == 0 and len(ax.patches) == 2
    assert_legend_outside(fig, fig.legends[0])
    with pytest.raises(ConfigError, match="no values"):
        plots.grouped_bar_figure({}, "x")
