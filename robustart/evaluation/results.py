"""What ``robustart benchmark`` produces: item results stored on disk as they finish, each
model's merged report, and the leaderboard, JSON, Markdown, CSV and plots of a run.

Stored results live under ``<output>/items/<weights checksum>/<item hash>.json``; the hash
covers the model (weights, spec, structure and source code), the item's settings (every default
of the attack included), the data, split, subset size, seed, chunk size and robustart's
version, and the file repeats that identity, so a result is only reused for exactly the
evaluation that produced it.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import html
import json
import math
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from robustart.errors import ConfigError
from robustart.evaluation.items import Item, to_json, unpack_bits
from robustart.evaluation.report import RobustnessReport
from robustart.evaluation.suite import metric_display_name, robust_metric, worst_case_metric
from robustart.metrics.robustness import minimal_eps_statistics
from robustart.utils import (
    atomic_write_json,
    atomic_write_text,
    format_eps,
    remove_stale_temporaries,
    writing_to,
)

__all__ = ["SCHEMA", "BenchmarkResult", "ItemStore", "ModelResult", "library_versions"]

#: Version of the layout of ``benchmark.json`` and of the stored item results.
SCHEMA = "robustart.benchmark/1"

#: The files :meth:`BenchmarkResult.save` writes beside its figures.
SAVED_FILES = ("benchmark.json", "leaderboard.csv", "leaderboard.md", "report.html")

#: The figures of :meth:`BenchmarkResult.save_figures`, by name.
FIGURE_FILES = {
    "curves": "robustness_curves.png",
    "heatmap": "corruption_heatmap.png",
    "system_noise": "system_noise.png",
}


class ItemStore:
    """Item results on disk: ``<root>/<model checksum>/<item hash>.json``, written atomically."""

    def __init__(self, root: Path | None) -> None:
        self.root = root

    @staticmethod
    def identity(
        item: Item, common: Mapping[str, Any], checksum: str, model: Mapping[str, str]
    ) -> dict[str, Any]:
        """Everything a stored result depends on: the item and its settings, the ``common``
        evaluation settings, the weights' ``checksum`` and the rest of the ``model``'s identity
        (:func:`~robustart.models.loading.model_identity`): equal weights behind another
        spec, structure or code never share results."""
        return {
            "item": item.key,
            "settings": item.settings,
            **common,
            "weights": checksum,
            "model": dict(model),
        }

    def path(self, identity: Mapping[str, Any]) -> Path | None:
        if self.root is None:
            return None
        text = json.dumps(identity, sort_keys=True, default=to_json)
        digest = hashlib.sha256(text.encode()).hexdigest()[:24]
        return self.root / identity["weights"][:16] / f"{digest}.json"

    def load(self, identity: Mapping[str, Any]) -> dict[str, Any] | None:
        path = self.path(identity)
        if path is None or not path.is_file():
            return None
        try:
            stored = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None  # a damaged file is recomputed
        identity = json.loads(json.dumps(identity, default=to_json))
        if stored.get("schema") != SCHEMA or stored.get("identity") != identity:
            return None
        return stored

    def save(self, identity: Mapping[str, Any], record: dict[str, Any]) -> None:
        path = self.path(identity)
        if path is None:
            return
        with writing_to(path):
            path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {"schema": SCHEMA, "identity": identity, **record})


# ----------------------------------------------------------------------------- results
@dataclass
class ModelResult:
    """One model's benchmark: where it came from and each item's result."""

    name: str
    spec: str
    checksum: str
    parameters: int
    items: dict[str, dict[str, Any]] = field(default_factory=dict)

    def item(self, key: str) -> dict[str, Any] | None:
        record = self.items.get(key)
        return None if record is None else record["result"]

    def report(self) -> RobustnessReport:
        """The :class:`RobustnessReport` over every suite item (attacks, corruptions, worst
        case across attacks of the same norm and budget)."""
        clean = self.item("clean")
        if clean is None:
            raise ConfigError(f"{self.name}: no clean result")
        merged = RobustnessReport.from_dict(clean["report"])
        for key, record in self.items.items():
            result = record["result"]
            if key == "clean" or "report" not in result:
                continue
            part = RobustnessReport.from_dict(result["report"])
            for section in dataclasses.fields(RobustnessReport):
                value = getattr(part, section.name)
                if section.name == "gradient_check":  # the worst item's fractions
                    for name, fraction in value.items():
                        merged.gradient_check[name] = max(
                            fraction, merged.gradient_check.get(name, fraction)
                        )
                elif isinstance(value, dict) and section.name != "worst_case":
                    getattr(merged, section.name).update(value)
            for label, values in result.get("minimal_eps", {}).items():
                statistics = merged.minimal_eps.get(label)
                if statistics is not None and "median_all" not in statistics:
                    # saved before the statistic existed: from the per-image budgets
                    budgets = torch.tensor([math.inf if v is None else v for v in values])
                    statistics.update(minimal_eps_statistics(budgets.double()))
        merged.worst_case = self.worst_case()
        return merged

    def sanity_warnings(self) -> list[str]:
        """The sanity checks of :meth:`RobustnessReport.sanity_warnings` on the merged report:
        across attacks (an iterative attack weaker than FGSM, the square attack beating the
        gradient-based ones at a budget), which no single item can see, and within each."""
        return self.report().sanity_warnings()

    def correct(self) -> dict[str, Tensor]:
        """Per-image correctness ``{metric key: (N,) bool}`` of every suite item."""
        out: dict[str, Tensor] = {}
        n = None
        for record in self.items.values():
            for key, bits in record["result"].get("correct", {}).items():
                n = n or int(record["result"]["report"]["num_images"])
                out[key] = unpack_bits(bits, n)
        return out

    def worst_case(self) -> dict[str, float]:
        """Worst-case robust accuracy per norm and budget: images correct under every attack
        of the benchmark with that norm and budget (where two or more attacks ran there)."""
        correct = self.correct()
        groups: dict[str, list[Tensor]] = {}
        for key, record in self.items.items():
            if not key.startswith("attack/"):
                continue
            report = record["result"]["report"]
            for label, settings in report.get("attack_settings", {}).items():
                norm = settings.get("norm", "linf")
                for eps in report["attacks"][label]:
                    metric = robust_metric(label, float(eps), norm)
                    name = worst_case_metric(float(eps), norm)
                    groups.setdefault(name, []).append(correct[metric])
        return {  # count / images, as the callback computes it (no float32 mean)
            name: int(torch.stack(vectors).all(dim=0).sum()) / len(vectors[0])
            for name, vectors in groups.items()
            if len(vectors) > 1
        }


#: Suffix of the leaderboard's minimal-ε columns (the median budget over all images, image
#: units: the smallest budget at which robust accuracy is at most 50 %).
MINIMAL_EPS_COLUMN = " median"


def _minimal_eps_cell(statistics: dict[str, Any], settings: dict[str, Any]) -> float | str | None:
    """A minimal-ε search's leaderboard cell: its median over all images (``median_all``),
    ``"> eps_max"`` when half the images or more survive the search's largest budget, ``None``
    (shown ``-``) for results saved before that statistic existed."""
    median = statistics.get("median_all")
    if median is None or math.isfinite(median):
        return median
    eps_max = settings.get("eps_max")
    if eps_max is None:
        return "> eps_max"
    return f"> {format_eps(float(eps_max), settings.get('norm', 'linf'))}"


@dataclass
class BenchmarkResult:
    """Every model's results, the settings that produced them and the notes of the run."""

    settings: dict[str, Any]
    models: dict[str, ModelResult]
    notes: list[str] = field(default_factory=list)
    #: ``"model/item"`` of the results read back from an earlier run rather than computed.
    reused: list[str] = field(default_factory=list)

    def sanity_warnings(self) -> list[str]:
        """Every model's sanity warnings (gradient masking, non-finite input gradients, ...)
        as ``"<model>: <warning>"``."""
        return [
            f"{name}: {warning}"
            for name, model in self.models.items()
            for warning in model.sanity_warnings()
        ]

    def leaderboard(self) -> Any:
        """One row per model: clean, each attack at each budget, worst case, corruption mean
        and mCE, minimal ε, system noise, certified accuracy at each ℓ2 radius
        (``certified @r=0.25``, randomized smoothing) and the headline of each on-disk set
        (percent), as a
        :class:`~robustart.evaluation.benchmarks.Table`."""
        from robustart.evaluation.benchmarks import Table

        rows: list[dict[str, Any]] = []
        for model in self.models.values():
            report = model.report()
            row: dict[str, Any] = {
                "model": model.name,
                "params (M)": model.parameters / 1e6,
                "images": report.num_images,
                "clean": 100 * report.clean,
            }
            for label, curve in report.attacks.items():
                norm = report.attack_settings.get(label, {}).get("norm", "linf")
                for eps, accuracy in curve.items():
                    row[f"{label} @{format_eps(eps, norm)}"] = 100 * accuracy
            for name, value in report.worst_case.items():
                row[metric_display_name(name)] = 100 * value
            if report.corruptions:
                summary = _corruption_summary(report)
                row["corruption mean"] = 100 * summary["mean_corruption_accuracy"]
                row["unnorm. mCE"] = summary["unnormalized_mce"]
                if summary.get("mce") is not None:
                    row["mCE"] = summary["mce"]
            for label, statistics in report.minimal_eps.items():
                row[f"minimal_eps/{label}{MINIMAL_EPS_COLUMN}"] = _minimal_eps_cell(
                    statistics, report.minimal_eps_settings.get(label, {})
                )
            noise = model.item("system_noise")
            if noise is not None:
                row["system noise mean"] = 100 * noise["mean"]
                row["system noise std"] = 100 * noise["std"]
            certification = model.item("certification")
            if certification is not None:  # randomized smoothing, per ℓ2 radius
                for radius, value in certification["certified_accuracy"].items():
                    row[f"certified @r={radius}"] = 100 * value
            for key, record in model.items.items():
                if key.startswith("shift/"):
                    row.update(_shift_headline(key.removeprefix("shift/"), record["result"]))
            rows.append(row)
        headers = list(dict.fromkeys(h for row in rows for h in row))
        decimals = [
            0
            if h in ("model", "images")
            else 2
            if h == "params (M)"
            else 4
            if h.endswith(MINIMAL_EPS_COLUMN)  # a budget in [0, 1] image units, not a percentage
            else 1
            for h in headers
        ]
        return Table(headers, [[row.get(h) for h in headers] for row in rows], decimals)

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``benchmark.json``: schema, versions, settings, every item result (with
        its settings and time) and the leaderboard."""
        table = self.leaderboard()
        return {
            "schema": SCHEMA,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "versions": library_versions(),
            "settings": self.settings,
            "notes": self.notes,
            "warnings": self.sanity_warnings(),
            "models": {
                name: {
                    "spec": m.spec,
                    "weights_sha256": m.checksum,
                    "parameters": m.parameters,
                    "metrics": m.report().metrics(),
                    "warnings": m.sanity_warnings(),
                    "items": m.items,
                }
                for name, m in self.models.items()
            },
            "leaderboard": table.to_dict(),
        }

    def save(self, output: str | os.PathLike) -> dict[str, Path]:
        """Write ``benchmark.json``, ``leaderboard.csv``, the figures (robustness curves,
        corruption heat map, system-noise chart) and the report that shows the leaderboard,
        the sanity warnings and notes with the figures: ``leaderboard.md`` and the
        self-contained ``report.html``; returns their paths.

        Temporary files that an interrupted earlier save left beside these files are removed,
        and so are figures of an earlier run in ``output`` that these results no longer
        draw."""
        output = Path(output)
        output.mkdir(parents=True, exist_ok=True)
        for name in (*SAVED_FILES, *FIGURE_FILES.values()):
            remove_stale_temporaries(output / name)
        table = self.leaderboard()
        paths = {
            "json": atomic_write_json(output / "benchmark.json", self.to_dict()),
            "csv": atomic_write_text(output / "leaderboard.csv", table.csv()),
        }
        figures = self.save_figures(output)
        paths.update({name: path for name, (path, _) in figures.items()})
        intro = f"Accuracies in percent. Settings: `{json.dumps(self.settings, default=to_json)}`."
        lists = {
            "Warnings (sanity checks: possible gradient masking or a weak attack)": (
                self.sanity_warnings()
            ),
            "Notes": self.notes,
        }
        lines = [f"# robustart benchmark: {self._title()}", "", intro, "", table.markdown()]
        for title, entries in lists.items():
            if entries:
                lines += ["", f"{title}:", "", *(f"- {entry}" for entry in entries)]
        for path, caption in figures.values():
            lines += ["", f"![{caption}]({path.name})", "", f"*{caption}*"]
        paths["markdown"] = atomic_write_text(output / "leaderboard.md", "\n".join(lines) + "\n")
        from robustart.reporting import html_figure, html_page, html_table

        blocks = [f"<p>{html.escape(intro)}</p>", html_table(table.headers, table.formatted())]
        for title, entries in lists.items():
            if entries:
                items = "".join(f"<li>{html.escape(entry)}</li>" for entry in entries)
                blocks.append(f"<p>{html.escape(title)}:</p><ul>{items}</ul>")
        blocks += [html_figure(path, caption) for path, caption in figures.values()]
        page = html_page(f"robustart benchmark: {self._title()}", blocks)
        paths["html"] = atomic_write_text(output / "report.html", page)
        return paths

    def save_figures(self, output: Path) -> dict[str, tuple[Path, str]]:
        """Draw the figures of the models' results into ``output``: ``{name: (PNG, caption)}``
        for those the results allow (curves with attacks, heat map with corruptions, bars
        with system noise). A figure of :data:`FIGURE_FILES` that these results do not draw is
        removed from ``output`` (it would show an earlier run's results)."""
        from robustart.plots import plot_robustness_curves, save_accuracy_heatmap, save_grouped_bars

        reports = {name: m.report() for name, m in self.models.items()}
        title = self._title()
        figures: dict[str, tuple[Path, str]] = {}
        if any(r.attacks or r.corruptions for r in reports.values()):
            figures["curves"] = (
                plot_robustness_curves(reports, output / FIGURE_FILES["curves"], title=title),
                "Accuracy (%) vs ε of each attack (L∞ ε in units of 1/255; ε = 0 is the clean "
                "accuracy) and mean accuracy vs corruption severity, per model.",
            )
        if any(r.corruptions for r in reports.values()):
            figures["heatmap"] = (
                save_accuracy_heatmap(
                    reports, output / FIGURE_FILES["heatmap"], title=f"{title}: accuracy (%)"
                ),
                "Accuracy (%) per corruption (rows, by category) and severity (columns), per "
                "model; the colour scale spans the values shown.",
            )
        noise = {
            name: {v: 100 * a for v, a in m.item("system_noise")["accuracy"].items()}
            for name, m in self.models.items()
            if m.item("system_noise") is not None
        }
        if noise:
            figures["system_noise"] = (
                save_grouped_bars(
                    noise,
                    output / FIGURE_FILES["system_noise"],
                    "accuracy (%)",
                    title=f"{title}: system noise (resize round trips)",
                    zoom=True,
                    ceiling=100.0,
                ),
                "Accuracy (%) after resizing the images down or up and back with each "
                "interpolation (system noise), per model; the axis is zoomed to the values.",
            )
        for name, file in FIGURE_FILES.items():
            if name not in figures:
                (output / file).unlink(missing_ok=True)
        return figures

    def _title(self) -> str:
        s = self.settings
        images = s.get("num_images") or "all"
        return f"suite {s.get('suite')} on {s.get('data')} {s.get('split')} ({images} images)"


def _corruption_summary(report: RobustnessReport) -> dict[str, Any]:
    from robustart.metrics.corruption import summarize_report

    return summarize_report(report)


def _shift_headline(name: str, result: Mapping[str, Any]) -> dict[str, float | None]:
    """The headline numbers of an on-disk benchmark's result (percent)."""
    if "corruptions" in result:
        values = [a for curve in result["corruptions"].values() for a in curve.values()]
        return {f"{name} mean": 100 * sum(values) / len(values)} if values else {}
    if "auroc" in result:
        return {f"{name} AUROC": 100 * result["auroc"]}
    if "perturbations" in result:
        flips = [v["flip_probability"] for v in result["perturbations"].values()]
        return {f"{name} flip prob.": 100 * sum(flips) / len(flips)} if flips else {}
    if "mean" in result and "std" in result:
        return {f"{name} mean": 100 * result["mean"], f"{name} std": 100 * result["std"]}
    if "accuracy" in result:
        return {name: 100 * result["accuracy"]}
    return {}


def library_versions() -> dict[str, str]:
    """Versions of Python, robustart and the libraries its numbers depend on."""
    import importlib.metadata

    import robustart

    versions = {"python": platform.python_version(), "robustart": robustart.__version__}
    for package in ("torch", "torchvision", "timm", "lightning", "kornia", "numpy", "torchmetrics"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions
