"""Pictures of robustness: accuracy-vs-ε curves and accuracy-vs-severity curves."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from robustart.evaluation.report import RobustnessReport
from robustart.utils import atomic_output


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
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

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
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)
