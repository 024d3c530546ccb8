"""Pictures of robustness: accuracy curves, a corruption gallery, an accuracy heat map, a
transfer-attack heat map and grouped bar charts.

Every picture has a ``*_figure`` function returning a matplotlib ``Figure`` (Agg backend) and a
``save_*``/``plot_*`` function writing it as a PNG atomically. :func:`figure_to_array` turns a
figure into an RGB array, e.g. for ``wandb.Image(figure_to_array(fig))``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import Tensor

from robustart.corruptions import CORRUPTION_CATEGORIES, CORRUPTIONS, SEVERITIES, create_corruption
from robustart.errors import ConfigError, EmptyInputError
from robustart.utils import atomic_output, check_images, make_generator, stable_seed

if TYPE_CHECKING:  # plots draw results; they do not import the evaluation at run time
    from matplotlib.figure import Figure

    from robustart.evaluation.report import RobustnessReport
    from robustart.evaluation.transfer import TransferResult


def _pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG atomically and close it."""
    try:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        _pyplot().close(fig)
    return Path(path)


def figure_to_array(fig: Figure, dpi: int | None = None, close: bool = True) -> np.ndarray:
    """Render ``fig`` to a uint8 RGB array (H, W, 3), e.g. for ``wandb.Image``.

    Args:
        fig: A matplotlib figure.
        dpi: Rendering resolution (default: the figure's).
        close: Close the figure afterwards (frees its memory).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if dpi is not None:
        fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    array = np.asarray(canvas.buffer_rgba())[:, :, :3].copy()
    if close:
        _pyplot().close(fig)
    return array


def corruption_order(names: Iterable[str]) -> list[str]:
    """``names`` in the customary order: the 15 benchmark corruptions by category, the 4
    extra ones, then any others alphabetically."""
    canonical = [n for group in CORRUPTION_CATEGORIES.values() for n in group]
    names = set(names)
    return [n for n in canonical if n in names] + sorted(names - set(canonical))


def plot_robustness_curves(
    reports: Mapping[str, RobustnessReport], path: str | os.PathLike, title: str = ""
) -> Path:
    """Save a PNG with accuracy vs ε (per attack) and mean accuracy vs corruption severity.

    Args:
        reports: ``{run name: report}``; one line per run (and attack).
        path: Output PNG (written atomically).
        title: Figure title.

    Curves start at ε = 0 and severity 0 with the clean accuracy of the same images.
    """
    plt = _pyplot()
    has_corruptions = any(r.corruptions for r in reports.values())
    ncols = 2 if has_corruptions else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6 * ncols, 4.2), squeeze=False)
    ax = axes[0, 0]
    for run, report in reports.items():
        for label, curve in report.attacks.items():
            norm = report.attack_settings.get(label, {}).get("norm", "linf")
            eps = [0.0, *curve]
            acc = [100 * report.clean, *(100 * a for a in curve.values())]
            xs = [e * 255 for e in eps] if norm == "linf" else eps
            name = label if len(reports) == 1 else f"{run}: {label}"
            ax.plot(xs, acc, marker="o", label=name)
    norms = {s.get("norm", "linf") for r in reports.values() for s in r.attack_settings.values()}
    ax.set_xlabel("ε (×1/255)" if norms == {"linf"} else "ε")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.set_title("accuracy vs ε")
    ax.grid(alpha=0.3)
    if any(r.attacks for r in reports.values()):
        ax.legend(fontsize=8)
    if has_corruptions:
        ax = axes[0, 1]
        for run, report in reports.items():
            if not report.corruptions:
                continue
            severities = sorted({s for c in report.corruptions.values() for s in c})
            means = [
                100
                * sum(c[s] for c in report.corruptions.values() if s in c)
                / sum(1 for c in report.corruptions.values() if s in c)
                for s in severities
            ]
            ax.plot(
                [0, *severities],
                [100 * report.clean, *means],
                marker="o",
                label=f"{run} (mean of {len(report.corruptions)} corruptions)",
            )
        ax.set_xlabel("severity (0 = clean)")
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(-2, 102)
        ax.set_title("accuracy vs corruption severity")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


# ----------------------------------------------------------------------------- gallery
def _image_strip(images: Tensor, gap: int = 2) -> np.ndarray:
    """(N, C, H, W) in [0, 1] → one RGB array (H, N·W + (N−1)·gap, 3) with white gaps."""
    pictures = images.detach().float().cpu().clamp(0, 1)
    if pictures.shape[1] == 1:
        pictures = pictures.expand(-1, 3, -1, -1)
    pictures = pictures[:, :3].permute(0, 2, 3, 1).numpy()
    n, h, w, _ = pictures.shape
    strip = np.ones((h, n * w + (n - 1) * gap, 3), dtype=np.float32)
    for i, picture in enumerate(pictures):
        strip[:, i * (w + gap) : i * (w + gap) + w] = picture
    return strip


def corruption_gallery_figure(
    images: Tensor,
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] = SEVERITIES,
    seed: int = 0,
    max_images: int = 3,
    cell_inches: float = 1.2,
) -> Figure:
    """A grid of example images: one row per corruption, one column per severity.

    The first column shows the clean images; each cell holds the same (up to ``max_images``)
    images side by side.

    Args:
        images: Float images (N, C, H, W) in [0, 1] (C = 1 or 3).
        corruptions: Names (default: every registered corruption, in the customary order).
        severities: Columns after "clean".
        seed: Seed of the corruptions' randomness (each cell gets its own stable seed).
        max_images: Images shown per cell.
        cell_inches: Height of a cell in inches.

    Raises:
        InputRangeError: for images that are not float NCHW in [0, 1].
        ConfigError: for no images, no corruptions or unknown names.
    """
    check_images(images)
    if len(images) == 0:
        raise EmptyInputError("the corruption gallery needs at least one image, got 0")
    if isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 1:
        raise ConfigError(f"max_images must be an integer >= 1, got {max_images!r}")
    names = corruption_order(CORRUPTIONS.names()) if corruptions is None else list(corruptions)
    if not names:
        raise ConfigError("the corruption gallery needs at least one corruption")
    shown = images[:max_images]
    corrupted = {
        (name, severity): create_corruption(name)(
            shown, severity, generator=make_generator(stable_seed("gallery", seed, name, severity))
        )
        for name in names
        for severity in severities
    }
    clean = _image_strip(shown)
    aspect = clean.shape[1] / clean.shape[0]
    plt = _pyplot()
    cols = 1 + len(severities)
    fig, axes = plt.subplots(
        len(names),
        cols,
        figsize=(1.2 + cols * cell_inches * aspect, 0.6 + len(names) * cell_inches),
        squeeze=False,
    )
    for row, name in enumerate(names):
        cells = [clean, *(_image_strip(corrupted[(name, s)]) for s in severities)]
        for col, cell in enumerate(cells):
            ax = axes[row, col]
            ax.imshow(cell, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title("clean" if col == 0 else f"severity {severities[col - 1]}", fontsize=9)
        axes[row, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    fig.tight_layout()
    return fig


def save_corruption_gallery(images: Tensor, path: str | os.PathLike, **kwargs) -> Path:
    """Write :func:`corruption_gallery_figure` (same keyword arguments) as a PNG atomically."""
    return save_figure(corruption_gallery_figure(images, **kwargs), path, dpi=80)


# ----------------------------------------------------------------------------- heat map
def _as_runs(
    reports: RobustnessReport | Mapping[str, RobustnessReport],
) -> dict[str, RobustnessReport]:
    runs = dict(reports) if isinstance(reports, Mapping) else {"": reports}
    if not runs:
        raise ConfigError("no reports given for the accuracy heat map")
    empty = [name or "the report" for name, r in runs.items() if not any(r.corruptions.values())]
    if empty:
        raise ConfigError(
            f"{', '.join(empty)} has no corruption accuracies to draw; evaluate corruptions "
            "first (e.g. `corruptions: all` in the robustness suite)"
        )
    return runs


def draw_accuracy_grid(ax: Any, grid: np.ndarray, decimals: int = 0, fontsize: int = 7) -> Any:
    """Draw a grid of accuracies (%) on ``ax`` with a fixed 0–100 colour scale and each value
    written in its cell; NaN cells stay blank. Shared by the corruption and transfer heat maps.

    Args:
        ax: A matplotlib Axes.
        grid: (rows, columns) accuracies in percent; NaN for missing cells.
        decimals: Decimals of the written values.
        fontsize: Font size of the written values.

    Returns:
        The ``AxesImage`` (for a colour bar).
    """
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", vmin=0, vmax=100, aspect="auto")
    for (i, j), value in np.ndenumerate(grid):
        if not math.isnan(value):
            color = "black" if value > 60 else "white"
            ax.text(
                j,
                i,
                f"{value:.{decimals}f}",
                ha="center",
                va="center",
                fontsize=fontsize,
                color=color,
            )
    return image


def accuracy_heatmap_figure(
    reports: RobustnessReport | Mapping[str, RobustnessReport], title: str = ""
) -> Figure:
    """Heat map of accuracy (%) per corruption (rows) × severity (columns), plus a mean column.

    Args:
        reports: One report, or ``{run name: report}`` drawn side by side with a shared colour
            scale (0–100 %). Missing pairs are left blank; a NaN clean accuracy reads "clean
            not measured".
        title: Figure title.

    Raises:
        ConfigError: if there is no report or a report has no corruption accuracies.
    """
    runs = _as_runs(reports)
    names = corruption_order({n for r in runs.values() for n, c in r.corruptions.items() if c})
    severities = sorted({s for r in runs.values() for c in r.corruptions.values() for s in c})
    columns = [str(s) for s in severities] + ["mean"]
    plt = _pyplot()
    width = 1.6 + 0.55 * len(columns)
    fig, axes = plt.subplots(
        1,
        len(runs),
        figsize=(width * len(runs) + 1.2, 1.2 + 0.32 * len(names)),
        squeeze=False,
        sharey=True,
        layout="constrained",
    )
    image = None
    for ax, (run, report) in zip(axes[0], runs.items()):
        grid = np.full((len(names), len(columns)), np.nan)
        for i, name in enumerate(names):
            curve = report.corruptions.get(name, {})
            for j, severity in enumerate(severities):
                if severity in curve:
                    grid[i, j] = 100 * curve[severity]
            if curve:
                grid[i, -1] = 100 * sum(curve.values()) / len(curve)
        image = draw_accuracy_grid(ax, grid, decimals=0, fontsize=7)
        ax.set_xticks(range(len(columns)), columns)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_xlabel("severity")
        ax.axvline(len(severities) - 0.5, color="white", linewidth=2)
        label = f"{run}: " if run else ""
        clean = (
            "clean not measured" if math.isnan(report.clean) else f"clean {100 * report.clean:.1f}%"
        )
        ax.set_title(f"{label}{clean}", fontsize=9)
    fig.colorbar(image, ax=list(axes[0]), label="accuracy (%)", shrink=0.9)
    if title:
        fig.suptitle(title)
    return fig


def save_accuracy_heatmap(
    reports: RobustnessReport | Mapping[str, RobustnessReport],
    path: str | os.PathLike,
    title: str = "",
) -> Path:
    """Write :func:`accuracy_heatmap_figure` as a PNG atomically."""
    return save_figure(accuracy_heatmap_figure(reports, title), path)


# ----------------------------------------------------------------------------- bar chart
def grouped_bar_figure(
    values: Mapping[str, Mapping[str, float]],
    xlabel: str,
    title: str = "",
    zoom: bool = False,
) -> Figure:
    """Horizontal bars of one value per category (rows, top to bottom), one bar per run in each
    row, with the values written at the bar ends.

    Args:
        values: ``{run name: {category: value}}``; categories in first-seen order, missing
            ones left out.
        xlabel: Label of the value axis (e.g. ``"accuracy (%)"``).
        title: Figure title.
        zoom: Start the axis near the smallest value instead of 0, for values that differ
            little (system-noise accuracies); the axis label says where it starts.

    Raises:
        ConfigError: if there are no values.
    """
    categories = list(dict.fromkeys(c for row in values.values() for c in row))
    numbers = [v for row in values.values() for v in row.values() if not math.isnan(v)]
    if not categories or not numbers:
        raise ConfigError("no values to draw in the bar chart")
    plt = _pyplot()
    runs = list(values)
    height = 0.8 / len(runs)
    fig, ax = plt.subplots(
        figsize=(7.0, min(40.0, 1.2 + (0.08 + 0.13 * len(runs)) * len(categories))),
        layout="constrained",
    )
    for k, run in enumerate(runs):
        ys = [i + (k - (len(runs) - 1) / 2) * height for i in range(len(categories))]
        widths = [values[run].get(c, math.nan) for c in categories]
        bars = ax.barh(ys, widths, height=height * 0.95, label=run or None)
        ax.bar_label(bars, fmt="%.1f", fontsize=6, padding=2)
    low, high = min(numbers), max(numbers)
    if zoom:
        margin = max(0.5, 0.1 * (high - low))
        ax.set_xlim(max(0.0, low - 3 * margin), high + 3 * margin)
        xlabel = f"{xlabel}; axis starts at {ax.get_xlim()[0]:.1f}"
    else:
        ax.set_xlim(0, high * 1.15 if high > 0 else 1)
    ax.set_yticks(range(len(categories)), categories, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    if any(runs):
        ax.legend(fontsize=7, loc="lower right")
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def save_grouped_bars(
    values: Mapping[str, Mapping[str, float]],
    path: str | os.PathLike,
    xlabel: str,
    title: str = "",
    zoom: bool = False,
) -> Path:
    """Write :func:`grouped_bar_figure` as a PNG atomically."""
    return save_figure(grouped_bar_figure(values, xlabel, title, zoom), path)


# ----------------------------------------------------------------------------- transfer
def transfer_heatmap_figure(result: TransferResult, title: str = "") -> Figure:
    """Heat map of a transfer-attack matrix (accuracy %, 0–100 colour scale): a clean row, then
    one row per source model; the white-box cells (source = target) are outlined.

    Args:
        result: A :class:`~robustart.evaluation.transfer.TransferResult`.
        title: Figure title (default: the number of images).
    """
    plt = _pyplot()
    sources, targets = result.sources, result.targets
    fig, ax = plt.subplots(
        figsize=(2.2 + 0.9 * len(targets), 1.4 + 0.55 * (len(sources) + 1)), layout="constrained"
    )
    grid = 100.0 * np.concatenate([result.clean[None].numpy(), result.matrix.numpy()])
    image = draw_accuracy_grid(ax, grid, decimals=1, fontsize=8)
    for row, source in enumerate(sources, start=1):
        if source in targets:
            column = targets.index(source)
            ax.add_patch(
                plt.Rectangle(
                    (column - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.5
                )
            )
    ax.axhline(0.5, color="white", linewidth=2)
    ax.set_xticks(range(len(targets)), targets, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(sources) + 1), ["clean", *sources], fontsize=8)
    ax.set_xlabel("evaluated on (target)")
    ax.set_ylabel("crafted on (source)")
    fig.colorbar(image, ax=ax, label="accuracy (%)", shrink=0.9)
    ax.set_title(title or f"transfer ({result.num_images} images); white-box outlined", fontsize=9)
    return fig


def save_transfer_heatmap(result: TransferResult, path: str | os.PathLike, title: str = "") -> Path:
    """Write :func:`transfer_heatmap_figure` as a PNG atomically."""
    return save_figure(transfer_heatmap_figure(result, title), path)
