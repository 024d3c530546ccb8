"""Pictures of robustness: accuracy vs ε and severity, accuracy over epochs, a corruption
gallery with predictions, an accuracy heat map, a transfer-attack heat map and grouped bars.

Every picture has a ``*_figure`` function returning a matplotlib ``Figure`` (Agg backend) and a
``save_*``/``plot_*`` function writing it as a PNG atomically. :func:`figure_to_array` turns a
figure into an RGB array, e.g. for ``wandb.Image(figure_to_array(fig))``.

One style throughout: the caller's title is the figure's suptitle; value axes and colour
scales are zoomed to the data and say which range they show (``accuracy (%), axis 62–100``);
colour tells quantities (attacks, series) apart, marker and line style tell runs apart; legends
sit outside the axes, below or to the right, never over the data.
"""

from __future__ import annotations

import itertools
import math
import os
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from robustart.corruptions import CORRUPTION_CATEGORIES, CORRUPTIONS, SEVERITIES, create_corruption
from robustart.errors import ConfigError, EmptyInputError
from robustart.utils import atomic_output, check_images, format_eps, make_generator, stable_seed

if TYPE_CHECKING:  # plots draw results; they do not import the evaluation at run time
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.image import AxesImage
    from matplotlib.legend import Legend

    from robustart.evaluation.report import RobustnessReport
    from robustart.evaluation.transfer import TransferResult
    from robustart.metrics.study import LinearFit

# ----------------------------------------------------------------------------- style
#: Font sizes (points) of every figure: suptitle, panel title, axis label, tick labels,
#: legend, values written in cells or beside points.
FONT = {"suptitle": 11.0, "title": 9.5, "label": 9.0, "tick": 8.0, "legend": 8.0, "value": 7.0}
#: Opacity of grid lines.
GRID_ALPHA = 0.3
#: Colours of quantities (attacks, series, runs in bar charts), in order; no grey, which marks
#: run entries in legends, and no black, which is the clean accuracy.
COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#17becf",
    "#1b9e77",
    "#d95f02",
    "#7570b3",
    "#e7298a",
    "#66a61e",
    "#e6ab02",
    "#a6761d",
)
#: Colour of the clean accuracy in line plots.
CLEAN_COLOUR = "black"
#: Colour of run entries in legends (runs are told apart by marker and line style).
RUN_LEGEND_COLOUR = "0.35"
#: Gallery prediction colours: correct, wrong, no label given.
CORRECT_COLOUR = "#1a7f1a"
WRONG_COLOUR = "#d0101a"
UNKNOWN_COLOUR = "black"
#: Markers and line styles of runs, cycled independently (4 × 8 combinations).
RUN_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
RUN_LINESTYLES = ("-", "--", ":", "-.")
#: Colour map of the accuracy heat maps (perceptual, sequential).
HEATMAP_CMAP = "viridis"
#: Background of heat-map cells without a value.
MISSING_COLOUR = "0.88"
#: Names of norms on axes.
NORM_NAMES = {"linf": "L∞", "l2": "L2", "l1": "L1"}


def _pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _new_figure(
    figsize: tuple[float, float], nrows: int = 1, ncols: int = 1, **kwargs: Any
) -> tuple[Figure, np.ndarray]:
    """A figure with constrained layout and a (nrows, ncols) array of axes."""
    return _pyplot().subplots(
        nrows, ncols, figsize=figsize, squeeze=False, layout="constrained", **kwargs
    )


def _style_axes(
    ax: Axes,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    grid: str | None = "both",
    frame: bool = False,
) -> None:
    """Give ``ax`` the shared look: font sizes, a faint grid on ``grid`` ("x", "y", "both" or
    None) and, unless ``frame``, no top and right spines."""
    if title:
        ax.set_title(title, fontsize=FONT["title"])
    if xlabel:
        ax.set_xlabel(xlabel, fontsize=FONT["label"])
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=FONT["label"])
    ax.tick_params(labelsize=FONT["tick"])
    if grid:
        ax.grid(axis=grid, alpha=GRID_ALPHA)
        ax.set_axisbelow(True)
    if not frame:
        ax.spines[["top", "right"]].set_visible(False)


def _suptitle(fig: Figure, title: str) -> None:
    """Show the caller's ``title`` (model, checkpoint, epoch, ...) as the figure's suptitle,
    wrapped to the figure's width so that a long title is never cut off."""
    if title:
        import textwrap

        # about 0.6 em per character: characters that fit the width at this font size
        width = max(20, int(fig.get_figwidth() * 72 / (0.6 * FONT["suptitle"])))
        fig.suptitle(textwrap.fill(title, width), fontsize=FONT["suptitle"])


def _colour(index: int) -> str:
    """The ``index``-th colour of :data:`COLOURS` (cycled)."""
    return COLOURS[index % len(COLOURS)]


def _run_style(index: int, num_runs: int) -> dict[str, Any]:
    """Marker and line keywords of run ``index`` of ``num_runs`` for ``Axes.plot``.

    One run: small filled circles and solid lines. Several runs: a different marker and line
    style each; even runs large hollow (white-filled) markers, odd runs smaller filled ones, so
    that equal points of several runs stay visible one inside the other.
    """
    if num_runs <= 1:
        return {"marker": "o", "linestyle": "-", "markersize": 5.0, "linewidth": 1.6}
    hollow = index % 2 == 0
    return {
        "marker": RUN_MARKERS[index % len(RUN_MARKERS)],
        "linestyle": RUN_LINESTYLES[index % len(RUN_LINESTYLES)],
        "markersize": max(3.0, (10.0 if hollow else 4.5) - 0.8 * (index // 2)),
        "markerfacecolor": "white" if hollow else None,
        "markeredgewidth": 1.3,
        "linewidth": 1.4,
    }


def _zoomed_limits(
    values: Iterable[float],
    pad: float = 0.06,
    floor: float | None = 0.0,
    ceiling: float | None = 100.0,
    min_span: float = 5.0,
) -> tuple[float, float]:
    """Axis or colour limits zoomed to the data.

    The finite ``values`` get a margin of ``pad`` × span on both sides, the span being at
    least ``min_span`` (widened around the middle); the limits are rounded outwards to a
    readable step (a fifth of the span's power of ten, whole numbers for spans of 3 or more)
    and clipped to [``floor``, ``ceiling``] (None: unbounded), shifting the other side to keep
    ``min_span`` where possible.

    Args:
        values: Numbers (e.g. accuracies in percent, in [0, 100]); NaN and None are ignored.
        pad: Margin on each side as a fraction of the span, ≥ 0.
        floor: Lowest allowed limit, or None.
        ceiling: Highest allowed limit, or None.
        min_span: Smallest distance between the limits, ≥ 0.

    Returns:
        ``(low, high)`` with ``low < high``; ``(floor, ceiling)`` (or (0, 1)) without finite
        values.
    """
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        low = 0.0 if floor is None else floor
        high = low + 1.0 if ceiling is None else ceiling
        return low, high
    low, high = min(finite), max(finite)
    span = max(high - low, min_span, 1e-9 * max(1.0, abs(high)))
    middle = (low + high) / 2
    low, high = min(low, middle - span / 2), max(high, middle + span / 2)
    low, high = low - pad * span, high + pad * span
    step = 10.0 ** math.floor(math.log10(span)) / 5
    step = max(step, 1.0) if span >= 3 else step  # whole numbers where they do
    low, high = math.floor(low / step) * step, math.ceil(high / step) * step
    if floor is not None and low < floor:
        low, high = floor, max(high, min(floor + min_span, high + (floor - low)))
    if ceiling is not None and high > ceiling:
        high, low = ceiling, min(low, max(ceiling - min_span, low - (high - ceiling)))
        if floor is not None:
            low = max(low, floor)
    return float(low), float(high)


def _number(value: float) -> str:
    """A limit as short text: ``62``, ``93.5``, ``0.25``."""
    return f"{round(value, 6):.6g}"


def _range_text(limits: tuple[float, float]) -> str:
    """``(62, 100)`` → ``"62–100"``."""
    return f"{_number(limits[0])}–{_number(limits[1])}"


def _zoom_y(ax: Axes, values: Iterable[float], what: str = "accuracy (%)") -> tuple[float, float]:
    """Zoom ``ax``'s y axis to accuracies in percent and state the range in its label."""
    limits = _zoomed_limits(values)
    ax.set_ylim(*limits)
    ax.set_ylabel(f"{what}, axis {_range_text(limits)}", fontsize=FONT["label"])
    return limits


def _legend_outside(
    fig: Figure,
    handles: Sequence[Any],
    labels: Sequence[str],
    where: str = "below",
    title: str | None = None,
) -> Legend | None:
    """A figure legend outside every axes (constrained layout makes room for it).

    Args:
        fig: A figure with constrained layout.
        handles: Legend handles (artists).
        labels: Their texts.
        where: ``"below"`` (centred under the axes, as many columns as fit the width) or
            ``"right"`` (one column, top right).
        title: Legend title.

    Returns:
        The legend, or None without handles.
    """
    if not handles:
        return None
    if where == "below":
        longest = max(len(label) for label in labels)
        column = 0.75 + 0.07 * longest * FONT["legend"] / 8  # inches per legend column
        ncols = max(1, min(len(handles), int(fig.get_figwidth() // column)))
        loc = "outside lower center"
    else:
        ncols, loc = 1, "outside right upper"
    return fig.legend(
        handles,
        labels,
        loc=loc,
        ncols=ncols,
        fontsize=FONT["legend"],
        title=title,
        title_fontsize=FONT["legend"],
        frameon=False,
    )


def _series_legend(
    fig: Figure, series: Mapping[str, str], runs: Sequence[str], where: str = "below"
) -> Legend | None:
    """The legend of line plots where colour is a quantity and marker/line style a run.

    One run: one entry per series (its colour with the run's marker). Several runs: one entry
    per series (colour, plain line), then one per run (grey, with its marker and line style).

    Args:
        fig: The figure.
        series: ``{series label: colour}`` in legend order.
        runs: Run names in order (their index gives the style, as in :func:`_run_style`).
        where: See :func:`_legend_outside`.
    """
    from matplotlib.lines import Line2D

    many = len(runs) > 1
    single = {} if many else _run_style(0, 1)
    handles = [Line2D([], [], color=c, **(single or {"linewidth": 2.0})) for c in series.values()]
    labels = list(series)
    if many:
        handles += [
            Line2D([], [], color=RUN_LEGEND_COLOUR, **_run_style(k, len(runs)))
            for k in range(len(runs))
        ]
        labels += [f"run: {run}" for run in runs]
    title = "colour: quantity; marker and line: run" if many else None
    return _legend_outside(fig, handles, labels, where=where, title=title)


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


def _corruption_groups(names: Sequence[str]) -> list[tuple[str, list[str]]]:
    """``names`` (in :func:`corruption_order`) split into ``(category, names)`` runs of
    :data:`~robustart.corruptions.CORRUPTION_CATEGORIES`; names in no category form a last
    group ``"other"``."""
    category_of = {n: c for c, group in CORRUPTION_CATEGORIES.items() for n in group}
    groups: list[tuple[str, list[str]]] = []
    for name in names:
        category = category_of.get(name, "other")
        if groups and groups[-1][0] == category:
            groups[-1][1].append(name)
        else:
            groups.append((category, [name]))
    return groups


def _describe_corruptions(names: Iterable[str]) -> str:
    """``"15 corruptions (noise 3, blur 4, weather 4, digital 4)"``, or the names when few."""
    ordered = corruption_order(names)
    if len(ordered) <= 3:
        return f"{len(ordered)} corruption{'s' * (len(ordered) != 1)} ({', '.join(ordered)})"
    groups = ", ".join(f"{c} {len(g)}" for c, g in _corruption_groups(ordered))
    return f"{len(ordered)} corruptions ({groups})"


def _severity_text(severities: Iterable[int]) -> str:
    """``[1, 2, 3, 4, 5]`` → ``"1–5"``; ``[1, 3, 5]`` → ``"1,3,5"``."""
    values = sorted(set(severities))
    if len(values) >= 3 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}–{values[-1]}"
    return ",".join(str(s) for s in values)


# ----------------------------------------------------------------------------- inputs
def _report_runs(
    reports: RobustnessReport | Mapping[str, RobustnessReport], what: str
) -> dict[str, RobustnessReport]:
    """``{run name: report}`` from one report (run name ``""``) or a mapping; ConfigError for
    none."""
    runs = dict(reports) if isinstance(reports, Mapping) else {"": reports}
    if not runs:
        raise ConfigError(f"no reports given for the {what}")
    return runs


def _attack_norm(report: RobustnessReport, label: str) -> str:
    """The norm of attack ``label`` (``"linf"`` when the settings do not say)."""
    return str(report.attack_settings.get(label, {}).get("norm", "linf"))


def _percent(value: float | None) -> float:
    """A fraction in [0, 1] (or None) as percent (NaN for None)."""
    return math.nan if value is None else 100.0 * float(value)


# ----------------------------------------------------------------------------- curves
def _plot_points(
    ax: Axes, points: Iterable[tuple[float, float]], colour: Any, style: Mapping[str, Any]
) -> list[float]:
    """Draw ``(x, accuracy %)`` points as one line (NaN accuracies left out) in ``colour``
    with a run's ``style``; returns the drawn accuracies (for the zoom)."""
    kept = [(x, y) for x, y in points if not math.isnan(y)]
    ax.plot([x for x, _ in kept], [y for _, y in kept], color=colour, **style)
    return [y for _, y in kept]


def _norm_order(norm: str) -> tuple[int, str]:
    """Sort key of norms: L∞, L2, L1, then others by name."""
    known = list(NORM_NAMES)
    return (known.index(norm), norm) if norm in known else (len(known), norm)


def robustness_curves_figure(
    reports: RobustnessReport | Mapping[str, RobustnessReport], title: str = ""
) -> Figure:
    """Accuracy vs ε (one panel per attack norm) and mean accuracy vs corruption severity.

    Curves start at ε = 0 and severity 0 with the clean accuracy of the same images. One
    colour per attack, one marker and line style per run; L∞ budgets in units of 1/255. Every
    accuracy axis is zoomed to its data and says which range it shows.

    Args:
        reports: One report or ``{run name: report}`` (e.g. ``robustart compare``'s runs);
            accuracies are fractions in [0, 1], drawn in percent.
        title: The figure's suptitle (model, checkpoint, epoch, subset, ...).

    Raises:
        ConfigError: for no reports.
    """
    runs = _report_runs(reports, "robustness curves")
    names = list(runs)
    norms = sorted(
        {_attack_norm(r, label) for r in runs.values() for label in r.attacks}, key=_norm_order
    )
    corrupted = {n: r for n, r in runs.items() if any(r.corruptions.values())}
    attacks = list(dict.fromkeys(label for r in runs.values() for label in r.attacks))
    series = {label: _colour(i) for i, label in enumerate(attacks)}
    mean_label = "corruption mean"
    if corrupted:
        series[mean_label] = _colour(len(attacks))
    panels = len(norms) + bool(corrupted)
    fig, axes = _new_figure((0.8 + 4.6 * max(panels, 1), 4.6), 1, max(panels, 1))
    for ax, norm in zip(axes[0], norms):
        values, ticks = [], set()
        for k, report in enumerate(runs.values()):
            for label, curve in report.attacks.items():
                if _attack_norm(report, label) != norm:
                    continue
                scale = 255.0 if norm == "linf" else 1.0
                points = [(0.0, _percent(report.clean))] + [
                    (scale * e, _percent(a)) for e, a in sorted(curve.items())
                ]
                ticks.update(x for x, _ in points)
                values += _plot_points(ax, points, series[label], _run_style(k, len(runs)))
        unit = "ε (×1/255)" if norm == "linf" else f"ε ({NORM_NAMES.get(norm, norm)} norm)"
        _style_axes(ax, f"{NORM_NAMES.get(norm, norm)} attacks: accuracy vs ε", unit)
        if len(ticks) <= 8:
            ax.set_xticks(sorted(ticks))
        _zoom_y(ax, values)
    if corrupted:
        ax = axes[0, len(norms)]
        values, used, ticks = [], set(), {0}
        for k, run in enumerate(names):
            report = runs[run]
            if run not in corrupted:
                continue
            curves = [c for c in report.corruptions.values() if c]
            used.update(n for n, c in report.corruptions.items() if c)
            severities = sorted({s for c in curves for s in c})
            means = [float(np.mean([100 * c[s] for c in curves if s in c])) for s in severities]
            ticks.update(severities)
            points = [(0, _percent(report.clean)), *zip(severities, means)]
            values += _plot_points(ax, points, series[mean_label], _run_style(k, len(runs)))
        ax.set_xticks(sorted(ticks))
        heading = f"accuracy vs severity, mean over {_describe_corruptions(used)}"
        _style_axes(ax, textwrap.fill(heading, 52), "severity (0 = clean)")
        _zoom_y(ax, values)
    if not panels:
        ax = axes[0, 0]
        ax.text(0.5, 0.5, "no attacks or corruptions evaluated", ha="center", va="center")
        ax.set_axis_off()
    _series_legend(fig, series, names)
    _suptitle(fig, title)
    return fig


def plot_robustness_curves(
    reports: RobustnessReport | Mapping[str, RobustnessReport],
    path: str | os.PathLike,
    title: str = "",
) -> Path:
    """Save :func:`robustness_curves_figure` (accuracy vs ε per norm and vs corruption
    severity) as a PNG atomically.

    Args:
        reports: ``{run name: report}`` (or one report); one line per run and attack.
        path: Output PNG.
        title: The figure's suptitle.
    """
    return save_figure(robustness_curves_figure(reports, title), path)


# ----------------------------------------------------------------------------- over epochs
def _history_runs(
    history: Sequence[tuple[int, RobustnessReport]]
    | Mapping[str, Sequence[tuple[int, RobustnessReport]]],
) -> dict[str, list[tuple[int, RobustnessReport]]]:
    """``{run name: [(epoch, report), ...] sorted by epoch}``; ConfigError for no evaluation
    or a malformed entry."""
    runs = dict(history) if isinstance(history, Mapping) else {"": history}
    out = {}
    for run, entries in runs.items():
        entries = list(entries)
        for entry in entries:
            if (
                not isinstance(entry, tuple)
                or len(entry) != 2
                or isinstance(entry[0], bool)
                or not isinstance(entry[0], int)
            ):
                raise ConfigError(
                    f"robustness history entries must be (epoch: int, report) pairs, got {entry!r}"
                )
        out[run] = sorted(entries, key=lambda entry: entry[0])
    if not any(out.values()):
        raise ConfigError("the robustness history has no evaluation to draw")
    return out


def _worst_case_label(key: str) -> str:
    """``robust/worst_case_linf/eps=8_255`` → ``worst case linf/eps=8_255`` (the key is an
    opaque label: only a leading ``robust/`` and the part up to ``worst_case_`` are cut)."""
    name = key.removeprefix("robust/")
    if "worst_case_" in name:
        name = name.split("worst_case_", 1)[1]
    return f"worst case {name}"


def _epoch_series(report: RobustnessReport) -> dict[str, tuple[str, float]]:
    """``{series label: (colour group, accuracy (%))}`` of one evaluation: clean, each attack
    at each ε (``pgd10_linf ε=8/255``, grouped by attack), the corruption mean and the
    worst-case entries (groups of their own)."""
    values = {"clean": ("clean", _percent(report.clean))}
    for label, curve in report.attacks.items():
        for eps, acc in sorted(curve.items()):
            name = f"{label} ε={format_eps(eps, _attack_norm(report, label))}"
            values[name] = (label, _percent(acc))
    if report.corruption_mean() is not None:
        count = sum(1 for c in report.corruptions.values() if c)
        name = f"corruption mean ({count} corruptions)"
        values[name] = (name, _percent(report.corruption_mean()))
    for key, acc in report.worst_case.items():
        values[_worst_case_label(key)] = (_worst_case_label(key), _percent(acc))
    return values


def _shade(colour: str, amount: float) -> tuple[float, float, float]:
    """``colour`` mixed with white; ``amount`` in [0, 1] (0: unchanged, 1: white)."""
    from matplotlib.colors import to_rgb

    return tuple(c + (1.0 - c) * amount for c in to_rgb(colour))  # type: ignore[return-value]


def _group_colours(groups: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """``{series label: colour}``: one colour per group (the clean accuracy black), its
    members from light to full colour (e.g. an attack's ε, smallest lightest)."""
    colours: dict[str, Any] = {}
    index = 0
    for group, members in groups.items():
        base = CLEAN_COLOUR if group == "clean" else _colour(index)
        index += group != "clean"
        for j, label in enumerate(members):
            colours[label] = _shade(base, 0.55 * (len(members) - 1 - j) / max(len(members) - 1, 1))
    return colours


def robustness_over_epochs_figure(
    history: Sequence[tuple[int, RobustnessReport]]
    | Mapping[str, Sequence[tuple[int, RobustnessReport]]],
    title: str = "",
) -> Figure:
    """Accuracy (%) over the epochs: clean, every attack at every ε, the corruption mean and
    the worst-case accuracies, one colour per series and one marker/line style per run.

    Args:
        history: ``[(epoch, report), ...]`` of one run, or ``{run name: [(epoch, report),
            ...]}`` of several; epochs are integers, reports' accuracies fractions in [0, 1].
            Entries are drawn in epoch order; a single evaluation is drawn as points.
        title: The figure's suptitle.

    Raises:
        ConfigError: for an empty history or entries that are not (epoch, report) pairs.
    """
    from matplotlib.ticker import MaxNLocator

    runs = _history_runs(history)
    tables = {
        run: [(epoch, _epoch_series(report)) for epoch, report in entries]
        for run, entries in runs.items()
    }
    groups: dict[str, list[str]] = {}
    for rows in tables.values():
        for _, row in rows:
            for label, (group, _) in row.items():
                members = groups.setdefault(group, [])
                if label not in members:
                    members.append(label)
    series = _group_colours(groups)
    labels = list(series)
    fig, axes = _new_figure((7.6, 4.6))
    ax = axes[0, 0]
    values, epochs = [], set()
    for k, rows in enumerate(tables.values()):
        epochs.update(epoch for epoch, _ in rows)
        for label in labels:
            points = [(epoch, row[label][1]) for epoch, row in rows if label in row]
            if any(not math.isnan(y) for _, y in points):
                values += _plot_points(ax, points, series[label], _run_style(k, len(tables)))
    _style_axes(ax, "" if title else "accuracy over epochs", "epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if len(epochs) == 1:
        epoch = next(iter(epochs))
        ax.set_xlim(epoch - 0.5, epoch + 0.5)
        ax.set_xticks([epoch])
    _zoom_y(ax, values)
    _series_legend(fig, series, list(tables))
    _suptitle(fig, title)
    return fig


def save_robustness_over_epochs(
    history: Sequence[tuple[int, RobustnessReport]]
    | Mapping[str, Sequence[tuple[int, RobustnessReport]]],
    path: str | os.PathLike,
    title: str = "",
) -> Path:
    """Write :func:`robustness_over_epochs_figure` as a PNG atomically."""
    return save_figure(robustness_over_epochs_figure(history, title), path)


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


def _predict(model: Callable[[Tensor], Tensor], images: Tensor) -> list[int]:
    """Predicted classes of ``images`` (N, C, H, W) under ``torch.no_grad()``, in the model's
    current mode; ConfigError unless the model returns (N, K) logits."""
    with torch.no_grad():
        logits = model(images)
    if not isinstance(logits, Tensor) or logits.ndim != 2 or len(logits) != len(images):
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ConfigError(
            f"the gallery's model must return (N, K) logits for {len(images)} images, got {shape}"
        )
    return [int(p) for p in logits.argmax(dim=1).cpu()]


def _class_text(index: int, class_names: Sequence[str] | None) -> str:
    """A class index as its name (when known) or number."""
    if class_names is not None and 0 <= index < len(class_names):
        return str(class_names[index])
    return str(index)


def _annotate_strip(
    ax: Axes,
    texts: Sequence[str],
    colours: Sequence[str],
    image_width: int,
    gap: int,
    fontsize: float,
    above: bool = False,
) -> None:
    """Write one text per image of a strip drawn on ``ax``, centred under (or over) it."""
    for i, (text, colour) in enumerate(zip(texts, colours)):
        ax.annotate(
            text,
            xy=(i * (image_width + gap) + (image_width - 1) / 2, 1.0 if above else 0.0),
            xycoords=("data", "axes fraction"),
            xytext=(0, 2 if above else -2),
            textcoords="offset points",
            ha="center",
            va="bottom" if above else "top",
            fontsize=fontsize,
            color=colour,
            annotation_clip=False,
        )


def corruption_gallery_figure(
    images: Tensor,
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] = SEVERITIES,
    seed: int = 0,
    max_images: int = 3,
    cell_inches: float = 1.2,
    *,
    title: str = "",
    model: Callable[[Tensor], Tensor] | None = None,
    labels: Tensor | None = None,
    class_names: Sequence[str] | None = None,
) -> Figure:
    """Example images: the clean images once (first row), then one row per corruption and
    one column per severity, each cell holding the same (up to ``max_images``) images side by
    side. With a model, each image's predicted class is written under it: green when it equals
    the label, red when not, black without labels; the labels are written over the clean
    images.

    Args:
        images: Float images (N, C, H, W) in [0, 1] (C = 1 or 3), on the model's device.
        corruptions: Names (default: every registered corruption, in the customary order).
        severities: Columns.
        seed: Seed of the corruptions' randomness (each cell gets its own stable seed).
        max_images: Images shown per cell.
        cell_inches: Height of a cell in inches.
        title: The figure's suptitle (default: ``"corruptions at severities 1–5"``); with a
            model, a line under it explains the colours.
        model: Images (N, C, H, W) in [0, 1] → logits (N, K); called under
            ``torch.no_grad()`` in whatever mode the caller left it.
        labels: True classes (N,) of ``images``.
        class_names: Names of the classes (index → name) for the written classes.

    Raises:
        InputRangeError: for images that are not float NCHW in [0, 1].
        ConfigError: for no images, no corruptions or severities, unknown names, labels that
            do not match the images, or a model that does not return (N, K) logits.
    """
    check_images(images)
    if len(images) == 0:
        raise EmptyInputError("the corruption gallery needs at least one image, got 0")
    if isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 1:
        raise ConfigError(f"max_images must be an integer >= 1, got {max_images!r}")
    names = corruption_order(CORRUPTIONS.names()) if corruptions is None else list(corruptions)
    if not names:
        raise ConfigError("the corruption gallery needs at least one corruption")
    severities = list(severities)
    if not severities:
        raise ConfigError("the corruption gallery needs at least one severity")
    shown = images[:max_images]
    truth = None
    if labels is not None:
        if not isinstance(labels, Tensor) or labels.ndim != 1 or len(labels) < len(shown):
            raise ConfigError(
                f"labels must be a 1-D tensor with one class per image ({len(shown)} shown), "
                f"got {getattr(labels, 'shape', type(labels).__name__)}"
            )
        truth = [int(v) for v in labels[: len(shown)].cpu()]
    corrupted = {
        (name, severity): create_corruption(name)(
            shown, severity, generator=make_generator(stable_seed("gallery", seed, name, severity))
        )
        for name in names
        for severity in severities
    }
    cells: dict[Any, Tensor] = {"clean": shown, **corrupted}
    predictions = {} if model is None else {k: _predict(model, x) for k, x in cells.items()}

    gap = 2
    clean = _image_strip(shown, gap)
    height, width = clean.shape[:2]
    image_width = shown.shape[-1]
    cell_width = cell_inches * width / height
    text = 0.22 if model is not None else 0.0  # below each cell: the predicted classes
    truth_row = 0.22 if truth is not None else 0.0  # over the clean images: the labels
    # the gallery is saved at 80 dpi: its text is a little larger than elsewhere
    label_size, cell_size = FONT["label"] + 1, min(FONT["label"], 7.5 * cell_inches)
    left = 0.35 + 0.075 * max(len(n) for n in [*names, "clean"]) * label_size / 9
    right, column_gap, row_gap, header = 0.2, 0.12, 0.1, 0.3
    head = 0.55 + (0.3 if model is not None else 0.0)  # title (and the colour key)
    fig_width = left + len(severities) * (cell_width + column_gap) - column_gap + right
    rows = [truth_row + cell_inches + text + 0.2] + [cell_inches + text + row_gap] * len(names)
    fig_height = head + sum(rows) + header + 0.1
    plt = _pyplot()
    fig = plt.figure(figsize=(fig_width, fig_height))

    def cell_axes(row_top: float, column: int) -> Axes:
        x = left + column * (cell_width + column_gap)
        y = fig_height - row_top - cell_inches
        return fig.add_axes(
            (x / fig_width, y / fig_height, cell_width / fig_width, cell_inches / fig_height)
        )

    def draw(ax: Axes, key: Any) -> None:
        ax.imshow(_image_strip(cells[key], gap), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        if key in predictions:
            classes = predictions[key]
            colours = [
                UNKNOWN_COLOUR if truth is None else CORRECT_COLOUR if p == t else WRONG_COLOUR
                for p, t in zip(classes, truth or classes)
            ]
            texts = [_class_text(p, class_names) for p in classes]
            _annotate_strip(ax, texts, colours, image_width, gap, cell_size)

    top = head + truth_row
    ax = cell_axes(top, 0)
    draw(ax, "clean")
    ax.set_ylabel("clean", rotation=0, ha="right", va="center", fontsize=label_size)
    if truth is not None:
        texts = [f"label: {_class_text(t, class_names)}" for t in truth]
        colours = [UNKNOWN_COLOUR] * len(texts)
        _annotate_strip(ax, texts, colours, image_width, gap, cell_size, above=True)
    top += rows[0] - truth_row + header
    for row, name in enumerate(names, start=1):
        for column, severity in enumerate(severities):
            ax = cell_axes(top, column)
            draw(ax, (name, severity))
            if row == 1:
                ax.set_title(f"severity {severity}", fontsize=label_size + 1)
            if column == 0:
                ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=label_size)
        top += rows[row]
    title = title or f"corruptions at severities {_severity_text(severities)}"
    fig.suptitle(title, fontsize=FONT["suptitle"] + 2, y=1 - 0.12 / fig_height, va="top")
    if model is not None:
        key = " (green: correct, red: wrong)" if truth is not None else ""
        fig.text(
            0.5,
            1 - 0.5 / fig_height,
            f"predicted class under each image{key}",
            ha="center",
            va="top",
            fontsize=label_size,
        )
    return fig


def save_corruption_gallery(images: Tensor, path: str | os.PathLike, **kwargs: Any) -> Path:
    """Write :func:`corruption_gallery_figure` (same keyword arguments) as a PNG atomically."""
    return save_figure(corruption_gallery_figure(images, **kwargs), path, dpi=80)


# ----------------------------------------------------------------------------- heat maps
def _text_colour(rgba: Sequence[float]) -> str:
    """Black or white, whichever reads better on a cell of colour ``rgba`` (relative
    luminance of the sRGB colour, channels in [0, 1])."""
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgba[:3]]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return "black" if luminance > 0.18 else "white"


def draw_accuracy_grid(
    ax: Axes,
    grid: np.ndarray,
    decimals: int = 0,
    fontsize: float = 7,
    *,
    vmin: float | None = None,
    vmax: float | None = None,
) -> AxesImage:
    """Draw a grid of accuracies (%) on ``ax`` with a perceptual sequential colour scale and
    each value written in its cell (black or white by the cell's luminance); NaN cells stay
    blank. Shared by the corruption and transfer heat maps.

    Args:
        ax: A matplotlib Axes.
        grid: (rows, columns) accuracies in percent, in [0, 100]; NaN for missing cells.
        decimals: Decimals of the written values.
        fontsize: Font size of the written values.
        vmin: Accuracy (%) at the bottom of the colour scale; None: zoomed to the data (a
            little below the smallest value, at least a 5-point span, see
            :func:`_zoomed_limits`).
        vmax: Accuracy (%) at the top of the colour scale; None: zoomed to the data.

    Returns:
        The ``AxesImage``; ``image.get_clim()`` gives the colour scale (for a colour bar).
    """
    grid = np.asarray(grid, dtype=float)
    low, high = _zoomed_limits(grid.ravel(), pad=0.03)
    image = ax.imshow(
        np.ma.masked_invalid(grid),
        cmap=HEATMAP_CMAP,
        vmin=low if vmin is None else vmin,
        vmax=high if vmax is None else vmax,
        aspect="auto",
    )
    for (i, j), value in np.ndenumerate(grid):
        if not math.isnan(value):
            ax.text(
                j,
                i,
                f"{value:.{decimals}f}",
                ha="center",
                va="center",
                fontsize=fontsize,
                color=_text_colour(image.cmap(image.norm(value))),
            )
    return image


def _accuracy_colorbar(fig: Figure, image: AxesImage, axes: Any) -> None:
    """A colour bar beside ``axes`` whose label states the colour scale's range."""
    bar = fig.colorbar(image, ax=axes, shrink=0.9)
    bar.set_label(f"accuracy (%), scale {_range_text(image.get_clim())}", fontsize=FONT["label"])
    bar.ax.tick_params(labelsize=FONT["tick"])


def _grid_decimals(limits: tuple[float, float]) -> int:
    """Decimals of written accuracies: 1 when the colour scale spans 10 points or less."""
    return 1 if limits[1] - limits[0] <= 10 else 0


def accuracy_heatmap_figure(
    reports: RobustnessReport | Mapping[str, RobustnessReport],
    title: str = "",
    *,
    category_labels: bool = True,
) -> Figure:
    """Heat map of accuracy (%) per corruption (rows, grouped by category with thin dividers)
    × severity (columns), plus a mean column after a divider.

    The colour scale is shared by every panel and zoomed to the data (stated on the colour
    bar), so 97 and 99 % look different.

    Args:
        reports: One report, or ``{run name: report}`` drawn side by side. Missing pairs are
            left grey; the mean column averages the severities that every measured row of
            every panel has (named in its header; grey when there are none); a NaN clean
            accuracy reads
            "clean not measured".
        title: The figure's suptitle.
        category_labels: Name the corruption categories right of the last panel.

    Raises:
        ConfigError: if there is no report or a report has no corruption accuracies.
    """
    runs = _report_runs(reports, "accuracy heat map")
    empty = [name or "the report" for name, r in runs.items() if not any(r.corruptions.values())]
    if empty:
        raise ConfigError(
            f"{', '.join(empty)} has no corruption accuracies to draw; evaluate corruptions "
            "first (e.g. `corruptions: all` in the robustness suite)"
        )
    names = corruption_order({n for r in runs.values() for n, c in r.corruptions.items() if c})
    groups = _corruption_groups(names)
    severities = sorted({s for r in runs.values() for c in r.corruptions.values() for s in c})
    # The mean column averages the same severities in every row and panel (those all of them
    # have), so that its cells compare; a row measured at fewer severities would otherwise
    # average easier or harder ones than its neighbours.
    common = sorted(
        set(severities).intersection(
            *(set(c) for r in runs.values() for c in r.corruptions.values() if c)
        )
    )
    grids = {}
    for run, report in runs.items():
        grid = np.full((len(names), len(severities) + 1), np.nan)
        for i, name in enumerate(names):
            curve = report.corruptions.get(name, {})
            for j, severity in enumerate(severities):
                if severity in curve:
                    grid[i, j] = 100 * curve[severity]
            if common and curve:
                grid[i, -1] = 100 * sum(curve[s] for s in common) / len(common)
        grids[run] = grid
    limits = _zoomed_limits(np.concatenate([g.ravel() for g in grids.values()]), pad=0.03)
    mean_label = f"mean\n(sev {_severity_text(common)})" if common else "mean\n(no common sev)"
    columns = [str(s) for s in severities] + [mean_label]
    width = 0.6 + 0.5 * len(columns)
    longest = max(len(n) for n in names)
    fig, axes = _new_figure(
        (
            width * len(runs) + 0.08 * longest + (0.8 if category_labels else 0) + 1.4,
            1.9 + 0.3 * len(names) + (0.3 if title else 0),
        ),
        1,
        len(runs),
        sharey=True,
    )
    image = None
    for ax, (run, grid) in zip(axes[0], grids.items()):
        image = draw_accuracy_grid(
            ax,
            grid,
            decimals=_grid_decimals(limits),
            fontsize=FONT["value"],
            vmin=limits[0],
            vmax=limits[1],
        )
        ax.set_xticks(range(len(columns)), columns)
        ax.set_yticks(range(len(names)), names)
        incomplete = np.isnan(grid[:, :-1]).any()
        xlabel = "severity" + ("\n(grey: not measured)" if incomplete else "")
        ax.set_facecolor(MISSING_COLOUR)
        clean = runs[run].clean
        clean = "clean not measured" if math.isnan(clean) else f"clean {100 * clean:.1f}%"
        _style_axes(ax, f"{run}: {clean}" if run else clean, xlabel, grid=None, frame=True)
        ax.axvline(len(severities) - 0.5, color="white", linewidth=3)
        boundary = -0.5
        for _, group in groups[:-1]:
            boundary += len(group)
            ax.axhline(boundary, color="white", linewidth=1.5)
    if category_labels:
        ax = axes[0, -1]
        side = ax.secondary_yaxis("right")
        starts = np.cumsum([0] + [len(g) for _, g in groups])
        side.set_yticks(
            [(a + b - 1) / 2 for a, b in itertools.pairwise(starts)], [c for c, _ in groups]
        )
        side.tick_params(length=0, labelsize=FONT["tick"], labelcolor="0.3")
        side.spines["right"].set_visible(False)
    _accuracy_colorbar(fig, image, list(axes[0]))
    _suptitle(fig, title)
    return fig


def save_accuracy_heatmap(
    reports: RobustnessReport | Mapping[str, RobustnessReport],
    path: str | os.PathLike,
    title: str = "",
    *,
    category_labels: bool = True,
) -> Path:
    """Write :func:`accuracy_heatmap_figure` as a PNG atomically."""
    return save_figure(
        accuracy_heatmap_figure(reports, title, category_labels=category_labels), path
    )


def transfer_heatmap_figure(result: TransferResult, title: str = "") -> Figure:
    """Heat map of a transfer-attack matrix (accuracy %, colour scale zoomed to the data): a
    clean row, then one row per source model; the white-box cells (source = target) are
    outlined.

    Args:
        result: A :class:`~robustart.evaluation.transfer.TransferResult` (accuracies in
            [0, 1]).
        title: The figure's suptitle (default: the number of images).
    """
    plt = _pyplot()
    sources, targets = result.sources, result.targets
    fig, axes = _new_figure((2.6 + 0.9 * len(targets), 1.8 + 0.55 * (len(sources) + 1)))
    ax = axes[0, 0]
    grid = 100.0 * np.concatenate([result.clean[None].numpy(), result.matrix.numpy()])
    image = draw_accuracy_grid(ax, grid, decimals=1, fontsize=FONT["tick"])
    for row, source in enumerate(sources, start=1):
        if source in targets:
            column = targets.index(source)
            ax.add_patch(
                plt.Rectangle(
                    (column - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.5
                )
            )
    ax.axhline(0.5, color="white", linewidth=3)
    ax.set_xticks(range(len(targets)), targets, rotation=30, ha="right")
    ax.set_yticks(range(len(sources) + 1), ["clean", *sources])
    _style_axes(ax, "", "evaluated on (target)", "crafted on (source)", grid=None, frame=True)
    _accuracy_colorbar(fig, image, ax)
    _suptitle(fig, title or f"transfer ({result.num_images} images); white-box outlined in red")
    return fig


def save_transfer_heatmap(result: TransferResult, path: str | os.PathLike, title: str = "") -> Path:
    """Write :func:`transfer_heatmap_figure` as a PNG atomically."""
    return save_figure(transfer_heatmap_figure(result, title), path)


# ----------------------------------------------------------------------------- bar chart
def grouped_bar_figure(
    values: Mapping[str, Mapping[str, float]],
    xlabel: str,
    title: str = "",
    zoom: bool = False,
    ceiling: float | None = None,
) -> Figure:
    """One value per category (rows, top to bottom) and run: horizontal bars from 0, or with
    ``zoom`` a dot plot on an axis zoomed to the values; every value is written beside its bar
    or point, runs get their own colour (and marker).

    Args:
        values: ``{run name: {category: value}}``; categories in first-seen order, missing
            ones left out.
        xlabel: Label of the value axis (e.g. ``"accuracy (%)"``).
        title: The figure's suptitle.
        zoom: Draw points (with a thin line from the axis start) on an axis zoomed to the
            values, for values that differ little (system-noise accuracies); the axis label
            states the range. Bars would exaggerate differences on such an axis, so they are
            only drawn from 0.
        ceiling: The largest value the axis may show (100 for accuracies in percent); the
            values at the ceiling are still written beside their points.

    Raises:
        ConfigError: if there are no values.
    """
    categories = list(dict.fromkeys(c for row in values.values() for c in row))
    numbers = [v for row in values.values() for v in row.values() if not math.isnan(v)]
    if not categories or not numbers:
        raise ConfigError("no values to draw in the bar chart")
    runs = list(values)
    height = 0.8 / len(runs)
    figure_height = min(40.0, 1.4 + (0.1 + 0.14 * len(runs)) * len(categories))
    fig, axes = _new_figure((7.0, figure_height + (0.3 + 0.2 * len(runs) if any(runs) else 0)))
    ax = axes[0, 0]
    low, high = min(numbers), max(numbers)
    if zoom:
        floor = 0.0 if low >= 0 else None
        limits = _zoomed_limits(
            numbers,
            pad=0.15,
            floor=floor,
            ceiling=ceiling,
            min_span=0.05 * max(map(abs, numbers)),
        )
        xlabel = f"{xlabel}; axis {_range_text(limits)} (zoomed, not from 0)"
    else:
        limits = (min(0.0, low * 1.15), high * 1.15 if high > 0 else 1.0)
    handles = []
    for k, run in enumerate(runs):
        ys = np.arange(len(categories)) + (k - (len(runs) - 1) / 2) * height
        xs = np.array([values[run].get(c, math.nan) for c in categories], dtype=float)
        colour = _colour(k)
        if zoom:
            ax.hlines(ys, limits[0], xs, color=colour, linewidth=0.8, alpha=0.5)
            style = _run_style(k, len(runs))
            style["linestyle"] = "none"
            (handle,) = ax.plot(xs, ys, color=colour, clip_on=False, **style)
            for x, y in zip(xs, ys):
                if not math.isnan(x):
                    ax.annotate(
                        f"{x:.1f}",
                        (x, y),
                        xytext=(style["markersize"] / 2 + 3, 0),
                        textcoords="offset points",
                        va="center",
                        fontsize=FONT["value"] - 1,
                        annotation_clip=False,
                    )
        else:
            handle = ax.barh(ys, xs, height=height * 0.95, color=colour)
            ax.bar_label(handle, fmt="%.1f", fontsize=FONT["value"] - 1, padding=2)
        handles.append(handle)
    ax.set_xlim(*limits)
    ax.set_ylim(len(categories) - 0.5, -0.5)
    ax.set_yticks(range(len(categories)), categories)
    _style_axes(ax, "", xlabel, grid="x")
    if any(runs):
        _legend_outside(fig, handles, runs, where="below")
    _suptitle(fig, title)
    return fig


def save_grouped_bars(
    values: Mapping[str, Mapping[str, float]],
    path: str | os.PathLike,
    xlabel: str,
    title: str = "",
    zoom: bool = False,
    ceiling: float | None = None,
) -> Path:
    """Write :func:`grouped_bar_figure` as a PNG atomically."""
    return save_figure(grouped_bar_figure(values, xlabel, title, zoom, ceiling), path)


# ----------------------------------------------------------------------------- study
#: Marker size (points²) of models in the study scatter plots, and of Pareto-frontier stars.
STUDY_MARKER_SIZE = 36.0
FRONTIER_MARKER_SIZE = 190.0


def _study_points(points: Mapping[str, Any], what: str) -> dict[str, tuple[float, float]]:
    """``{name: (x, y)}`` as floats; EmptyInputError for none, ConfigError for a value that is
    not a pair of finite numbers."""
    if not points:
        raise EmptyInputError(f"no points to draw in the {what}")
    out = {}
    for name, value in points.items():
        try:
            x, y = (float(v) for v in value)
        except (TypeError, ValueError) as error:
            raise ConfigError(
                f"point {name!r} of the {what} must be a pair of numbers, got {value!r}"
            ) from error
        if not (math.isfinite(x) and math.isfinite(y)):
            raise ConfigError(f"point {name!r} of the {what} is not finite: ({x}, {y})")
        out[name] = (x, y)
    return out


def _label_points(
    ax: Axes, points: Mapping[str, tuple[float, float]], left: Iterable[str] = ()
) -> list[Any]:
    """Write each point's name in small text above it, to the right, or to the left for the
    names in ``left`` (identical points get one label, ``"a = b"``); returns the annotations
    (for :func:`_make_room`)."""
    left = set(left)
    at: dict[tuple[float, float], list[str]] = {}  # identical points share one label
    for name, point in points.items():
        at.setdefault(point, []).append(name)
    texts = []
    for (x, y), names in at.items():
        name = names[0]
        texts.append(
            ax.annotate(
                " = ".join(map(str, names)),
                (x, y),
                xytext=(-6 if name in left else 6, 5),
                textcoords="offset points",
                ha="right" if name in left else "left",
                va="bottom",
                fontsize=FONT["value"],
                color="0.2",
                zorder=5,
            )
        )
    return texts


def _separate_labels(fig: Figure, texts: Sequence[Any]) -> None:
    """Raise point labels (annotations offset in points) until no two overlap: from the
    lowest anchor up, a label that overlaps one already placed moves above it."""
    renderer = fig.canvas.get_renderer()
    placed: list[Any] = []
    for text in sorted(texts, key=lambda t: (t.xy[1], t.xy[0])):
        for _ in range(len(texts)):
            box = text.get_window_extent(renderer)
            clash = [b for b in placed if box.overlaps(b)]
            if not clash:
                break
            rise = max(b.y1 for b in clash) - box.y0 + 1.0  # pixels
            dx, dy = text.xyann
            text.xyann = (dx, dy + rise * 72.0 / fig.dpi)  # offsets are in points
        placed.append(text.get_window_extent(renderer))


def _make_room(fig: Figure, ax: Axes, texts: Sequence[Any]) -> None:
    """Separate overlapping point labels (:func:`_separate_labels`), then widen ``ax``'s x
    limits and raise its upper y limit until every text (annotations of data points, drawn at
    a fixed offset in points) lies inside the axes."""
    if not texts:
        return
    fig.canvas.draw()  # lays the figure out: the axes' and texts' sizes in pixels
    _separate_labels(fig, texts)
    renderer = fig.canvas.get_renderer()
    box = ax.get_window_extent(renderer)
    needs = []  # (anchor x, anchor y, left, right, top) with the extents as axes fractions
    for text in texts:
        extent = text.get_window_extent(renderer)
        ax_x, ax_y = ax.transData.transform(text.xy)
        needs.append(
            (
                *text.xy,
                max(0.0, (ax_x - extent.x0) / box.width),
                max(0.0, (extent.x1 - ax_x) / box.width),
                max(0.0, (extent.y1 - ax_y) / box.height),
            )
        )
    (low, high), (bottom, top) = ax.get_xlim(), ax.get_ylim()
    for _ in range(4):  # the fractions are of the new span: converge by repetition
        for x, y, left, right, up in needs:
            if right < 0.9:
                high = max(high, low + (x - low) / (1 - right))
            if left < 0.9:
                low = min(low, high - (high - x) / (1 - left))
            if up < 0.9:
                top = max(top, bottom + (y - bottom) / (1 - up))
    if (low, high) != ax.get_xlim():
        ax.set_xlim(*_zoomed_limits([low, high], pad=0.0, floor=None, ceiling=None, min_span=0))
    if top != ax.get_ylim()[1]:
        ax.set_ylim(*_zoomed_limits([bottom, top], pad=0.0, floor=None, ceiling=None, min_span=0))


def _score_limits(values: Sequence[float], pad: float = 0.1) -> tuple[float, float]:
    """Zoomed limits of a score axis: not below 0 for scores ≥ 0, not above 1 for fractions
    or 100 for percentages, a span of at least 4 % of the largest magnitude."""
    low, high = min(values), max(values)
    floor = 0.0 if low >= 0 else None
    ceiling = None
    if low >= 0:
        ceiling = 1.0 if high <= 1 else 100.0 if high <= 100 else None
    min_span = max(0.04 * max(abs(low), abs(high)), 1e-6)
    return _zoomed_limits(values, pad=pad, floor=floor, ceiling=ceiling, min_span=min_span)


def pareto_figure(
    points: Mapping[str, tuple[float, float]],
    frontier: Sequence[str],
    xlabel: str,
    ylabel: str,
    groups: Mapping[str, str] | None = None,
    title: str = "",
) -> Figure:
    """Scatter of models on two scores to be maximised, with their Pareto frontier.

    One point per model, labelled with its name and coloured by its group (e.g. architecture
    family); the frontier's models are drawn as large black-edged stars joined by a dashed
    step line (the boundary of the region they dominate). Both axes are zoomed to the data
    and their labels state the range shown.

    Args:
        points: ``{model: (x score, y score)}``, finite numbers (e.g. clean and robust
            accuracy, fractions in [0, 1] or percentages in [0, 100]).
        frontier: The frontier's model names (e.g.
            :func:`~robustart.metrics.study.pareto_frontier` of ``points``), each in
            ``points``.
        xlabel: What the x score is (the axis label adds the range shown).
        ylabel: What the y score is.
        groups: ``{model: group}`` for every model (colour per group, legend right), or None
            (one colour).
        title: The figure's suptitle.

    Raises:
        EmptyInputError: for no points.
        ConfigError: for a non-finite point, a frontier model not in ``points`` or a model
            without a group.

    Example:
        >>> fig = pareto_figure({"a": (0.9, 0.1), "b": (0.7, 0.3)}, ["a", "b"], "clean", "robust")
        >>> [ax.get_xlabel() for ax in fig.axes]
        ['clean, axis 0.66–0.94']
    """
    data = _study_points(points, "Pareto plot")
    unknown = [str(n) for n in frontier if n not in data]
    if unknown:
        raise ConfigError(f"frontier models without a point: {', '.join(unknown)}")
    if groups is not None:
        missing = [str(n) for n in data if n not in groups]
        if missing:
            raise ConfigError(f"models without a group in the Pareto plot: {', '.join(missing)}")
        group_of = {n: str(groups[n]) for n in data}
    else:
        group_of = {n: "" for n in data}
    colour_of = {g: _colour(i) for i, g in enumerate(dict.fromkeys(group_of.values()))}
    on_frontier = set(frontier)
    fig, axes = _new_figure((7.6 if groups else 6.6, 5.4 + (0.3 if title else 0)))
    ax = axes[0, 0]
    for group, colour in colour_of.items():
        names = [n for n in data if group_of[n] == group and n not in on_frontier]
        if names:
            ax.scatter(
                [data[n][0] for n in names],
                [data[n][1] for n in names],
                s=STUDY_MARKER_SIZE,
                color=colour,
                edgecolor="white",
                linewidth=0.6,
                zorder=3,
                clip_on=False,
            )
    ordered = sorted(dict.fromkeys(frontier), key=lambda n: (data[n][0], -data[n][1], str(n)))
    ax.step(
        [data[n][0] for n in ordered],
        [data[n][1] for n in ordered],
        where="pre",
        color="0.3",
        linestyle="--",
        linewidth=1.2,
        zorder=2,
        gid="pareto-step",
    )
    ax.scatter(
        [data[n][0] for n in ordered],
        [data[n][1] for n in ordered],
        s=FRONTIER_MARKER_SIZE,
        marker="*",
        color=[colour_of[group_of[n]] for n in ordered],
        edgecolor="black",
        linewidth=0.9,
        zorder=4,
        clip_on=False,
        gid="pareto-frontier",
    )
    xlimits = _score_limits([x for x, _ in data.values()], pad=0.12)
    ylimits = _score_limits([y for _, y in data.values()], pad=0.12)
    ax.set_xlim(*xlimits)
    ax.set_ylim(*ylimits)
    # names of the models right of the middle up left, so that no name widens a score axis
    # beyond its range (e.g. past 100 %); of the others up right
    middle = sum(xlimits) / 2
    left = [n for n in data if data[n][0] > middle]
    _style_axes(
        ax,
        f"{len(ordered)} of {len(data)} models on the Pareto frontier (★, higher is better)",
        f"{xlabel}, axis {_range_text(xlimits)}",
        f"{ylabel}, axis {_range_text(ylimits)}",
    )
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=c, marker="o", linestyle="none", markersize=6)
        for g, c in colour_of.items()
        if groups is not None
    ]
    labels = list(colour_of) if groups is not None else []
    frontier_colour = RUN_LEGEND_COLOUR if groups is not None else _colour(0)
    handles.append(
        Line2D(
            [],
            [],
            color="0.3",
            linestyle="--",
            marker="*",
            markersize=12,
            markerfacecolor=frontier_colour,
            markeredgecolor="black",
        )
    )
    labels.append("Pareto frontier")
    _legend_outside(
        fig, handles, labels, where="right" if groups is not None else "below", title=None
    )
    _suptitle(fig, title)
    _make_room(fig, ax, _label_points(ax, data, left))
    ax.set_xlabel(f"{xlabel}, axis {_range_text(ax.get_xlim())}", fontsize=FONT["label"])
    ax.set_ylabel(f"{ylabel}, axis {_range_text(ax.get_ylim())}", fontsize=FONT["label"])
    return fig


def save_pareto(
    points: Mapping[str, tuple[float, float]],
    path: str | os.PathLike,
    frontier: Sequence[str],
    xlabel: str,
    ylabel: str,
    groups: Mapping[str, str] | None = None,
    title: str = "",
) -> Path:
    """Write :func:`pareto_figure` as a PNG atomically."""
    return save_figure(pareto_figure(points, frontier, xlabel, ylabel, groups, title), path)


def _fit_text(fit: LinearFit) -> str:
    """``"slope 0.3, intercept 2, R² 0.987, n 5"`` (R² "undefined" for constant ε)."""
    r2 = "undefined (constant ε)" if math.isnan(fit.r2) else f"{fit.r2:.3f}"
    return f"slope {fit.slope:.4g}, intercept {fit.intercept:.4g}, R² {r2}, n {fit.n}"


def scaling_law_figure(
    fits: Mapping[str, tuple[LinearFit, Mapping[str, tuple[float, float]]]], title: str = ""
) -> Figure:
    """Su et al.'s (2018) scaling law: mean minimal distortion vs ln(classification error).

    One panel per norm (L∞, L2, L1, then others): the models' points labelled with their
    names, the least-squares line over the points' x range, and the fit's slope, intercept,
    R² and number of models written in the panel. The top axis gives the classification error
    in percent; both value axes are zoomed to the data and state their range.

    Args:
        fits: ``{norm: (fit, {model: (ln error, mean minimal ε)})}``, e.g. ``{"l2":
            scaling_law(...)}``; ln errors ≤ 0 and distortions ≥ 0, finite.
        title: The figure's suptitle (default: names the law).

    Raises:
        EmptyInputError: for no norm, or a norm without points.
        ConfigError: for a non-finite point.

    Example:
        >>> from robustart.metrics.study import fit_line
        >>> points = {"a": (-2.0, 1.4), "b": (-1.0, 1.7)}
        >>> fig = scaling_law_figure({"l2": (fit_line([-2, -1], [1.4, 1.7]), points)})
        >>> fig.axes[0].get_xlabel()
        'ln(classification error), axis -2.2–-0.8'
    """
    if not fits:
        raise EmptyInputError("no fits to draw in the scaling-law figure")
    norms = sorted(fits, key=_norm_order)
    fig, axes = _new_figure((0.6 + 5.0 * len(norms), 5.0 + (0.3 if title else 0)), 1, len(norms))
    labelled = []
    for k, (ax, norm) in enumerate(zip(axes[0], norms)):
        fit, raw = fits[norm]
        name = NORM_NAMES.get(norm, norm)
        data = _study_points(raw, f"{name} scaling-law panel")
        colour = _colour(k)
        xs = np.array([x for x, _ in data.values()])
        ys = np.array([y for _, y in data.values()])
        ax.scatter(xs, ys, s=STUDY_MARKER_SIZE, color=colour, zorder=3, clip_on=False)
        line_x = np.array([xs.min(), xs.max()])
        line_y = fit.slope * line_x + fit.intercept
        ax.plot(line_x, line_y, color=colour, linewidth=1.5, linestyle="--", zorder=2)
        xlimits = _zoomed_limits(xs, pad=0.1, floor=None, ceiling=0.0, min_span=0.2)
        low, high = _zoomed_limits(
            np.concatenate([ys, line_y]),
            pad=0.1,
            floor=0.0 if ys.min() >= 0 else None,
            ceiling=None,
            min_span=max(0.05 * float(np.abs(ys).max()), 1e-6),
        )
        ylimits = (low, high + 0.2 * (high - low))  # room for the fit's text
        ax.set_xlim(*xlimits)
        ax.set_ylim(*ylimits)
        # names above the line (up left of the points for a rising line, up right for a falling
        # one, but up left right of the middle, so that no name widens the axis past error
        # 100 %); the fit's text where that leaves room
        rising = fit.slope >= 0
        middle = sum(xlimits) / 2
        left = [n for n, (x, _) in data.items() if rising or x > middle]
        labelled.append((ax, _label_points(ax, data, left)))
        ax.text(
            0.03 if rising else 0.97,
            0.97,
            _fit_text(fit),
            transform=ax.transAxes,
            ha="left" if rising else "right",
            va="top",
            fontsize=FONT["value"] + 0.5,
            bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "edgecolor": "0.75"},
            gid="scaling-fit",
        )
        top = ax.secondary_xaxis(
            "top",
            functions=(
                lambda x: 100.0 * np.exp(x),
                lambda e: np.log(np.clip(e, 1e-12, None) / 100.0),
            ),
        )
        top.set_xlabel("classification error (%)", fontsize=FONT["label"])
        top.tick_params(labelsize=FONT["tick"])
        _style_axes(
            ax,
            f"{name}: minimal distortion vs classification error",
            "ln(classification error)",
            f"mean minimal ε ({name})",
        )
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=RUN_LEGEND_COLOUR, marker="o", linestyle="none", markersize=6),
        Line2D([], [], color=RUN_LEGEND_COLOUR, linestyle="--", linewidth=1.5),
    ]
    labels = ["model", "least squares: ε = slope · ln(error) + intercept"]
    _legend_outside(fig, handles, labels, where="below")
    _suptitle(fig, title or "minimal adversarial distortion vs ln(classification error)")
    for ax, texts in labelled:
        _make_room(fig, ax, texts)
        ax.set_xlabel(f"{ax.get_xlabel()}, axis {_range_text(ax.get_xlim())}")
        ax.set_ylabel(f"{ax.get_ylabel()}, axis {_range_text(ax.get_ylim())}")
    return fig


def save_scaling_law(
    fits: Mapping[str, tuple[LinearFit, Mapping[str, tuple[float, float]]]],
    path: str | os.PathLike,
    title: str = "",
) -> Path:
    """Write :func:`scaling_law_figure` as a PNG atomically."""
    return save_figure(scaling_law_figure(fits, title), path)
