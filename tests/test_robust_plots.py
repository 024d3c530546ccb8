"""Corruption gallery and accuracy heat map: valid PNGs, arrays for W&B, clear errors."""

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
    axes = fig.axes
    assert len(axes) == 4 and axes[0].get_title() == "clean" and axes[1].get_title() == "severity 5"
    assert axes[2].get_ylabel() == "brightness"
    brightened = axes[3].get_images()[0].get_array()
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
    assert grid_b[1, 5] == pytest.approx(60.0)  # contrast mean of 0.7 and 0.5


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
