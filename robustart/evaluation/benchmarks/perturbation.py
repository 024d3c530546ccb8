"""Perturbation stability (-P: CIFAR-10-P, ImageNet-P): how often a model's prediction flips
along sequences of gradually perturbed frames (flip probability) and how far its top-5
ranking moves (top-5 distance); mFR and mT5D relative to a baseline model.

Example:
    >>> from robustart.data import CIFAR10P
    >>> data = CIFAR10P("data/CIFAR-10-P", "rotate")  # doctest: +SKIP
    >>> evaluate_perturbation_sequences(model, data, noise=data.noise)  # doctest: +SKIP
    {'flip_probability': 0.021, 'top5_distance': 0.034}
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from robustart.data.shift import SHIFT_DATASETS
from robustart.errors import ConfigError, DatasetNotFoundError, EmptyInputError
from robustart.evaluation.benchmarks.base import (
    CIFAR10_MODELS,
    HENDRYCKS_SOURCE,
    IMAGENET_MODELS,
    Benchmark,
    Evaluator,
    Result,
    ShiftSettings,
    Table,
    mean,
    num_batches,
    percent,
    register,
)
from robustart.evaluation.loop import iterate_logits, limit_dataset
from robustart.metrics.perturbation import (
    FlipProbability,
    Top5Distance,
    mean_flip_rate,
    mean_top5_distance_rate,
    normalize_by_baseline,
)
from robustart.utils import Progress, fixed_total

__all__ = ["PerturbationBenchmark", "evaluate_perturbation_sequences"]


def evaluate_perturbation_sequences(
    model: nn.Module,
    dataset: Dataset,
    noise: bool,
    batch_size: int = 8,
    device: torch.device | str | None = None,
    num_workers: int = 0,
    progress: Progress | None = None,
) -> dict[str, float]:
    """Flip probability and mean top-5 distance over sequences of frames.

    Args:
        model: Images (N, C, H, W) in [0, 1] → logits (N, K).
        dataset: Items are frames (F, C, H, W) in [0, 1] (e.g. :class:`~robustart.data.CIFAR10P`;
            its ``noise`` attribute gives the pairing).
        noise: Compare frames with frame 0 (noise perturbations) instead of consecutively.
        batch_size: Sequences per batch (the model sees ``batch_size · F`` images).
        device: Where the model runs (default: the device of its parameters).
        num_workers: DataLoader workers.
        progress: A progress bar advanced once per batch (e.g. ``tqdm``).

    Returns:
        ``{"flip_probability": in [0, 1], "top5_distance": >= 0}``; divide by a baseline
        model's values on the same sequences with :func:`robustart.metrics.normalize_by_baseline`.

    Raises:
        EmptyInputError: the dataset has no sequences.
        NonFiniteError: NaN or infinite logits.
    """
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise EmptyInputError("the perturbation dataset has no sequences to evaluate")
    flips, distances = FlipProbability(noise=noise), Top5Distance(noise=noise)
    for logits, _ in iterate_logits(
        model, dataset, batch_size, device, num_workers, progress=progress
    ):
        logits = logits.cpu()  # (B, F, K)
        flips.update(logits)
        distances.update(logits)
    return {
        "flip_probability": float(flips.compute()),
        "top5_distance": float(distances.compute()),
    }


class PerturbationBenchmark(Benchmark):
    """Perturbation sequences (-P): flip probability and top-5 distance; mFR and mT5D
    relative to a baseline model.

    Its sequences are read by the dataset class registered under the benchmark's name in
    :data:`robustart.data.SHIFT_DATASETS`: ``dataset(root, perturbation)`` has ``frames`` and
    ``noise``; ``dataset.perturbations(root)`` lists what ``root`` holds.
    """

    options = frozenset({"subsets", "baseline"})
    plot_file = "flip_probability.png"

    def prepare(self, settings: ShiftSettings) -> Evaluator:
        dataset: Any = SHIFT_DATASETS.get(self.name)
        found = dataset.perturbations(settings.root)
        names = found if settings.subsets in (None, ["all"]) else list(settings.subsets)
        if not names:
            raise DatasetNotFoundError(
                f"{self.title}: no perturbation files under {settings.root}; expected "
                f"{self.layout}. Get the data from {self.source}."
            )
        runs = []  # (name, sequences, noise pairing, sequences per batch)
        for name in names:
            data = dataset(settings.root, name)
            sequences = limit_dataset(data, settings.num_images)
            runs.append((name, sequences, data.noise, max(1, settings.batch_size // data.frames)))
        total = sum(num_batches(sequences, size) for _, sequences, _, size in runs)
        count = max(len(sequences) for _, sequences, _, _ in runs)  # type: ignore[arg-type]

        def evaluate(model: nn.Module, progress: Progress | None) -> Result:
            progress = fixed_total(progress, total)
            per = {
                name: evaluate_perturbation_sequences(
                    model,
                    sequences,
                    noise,
                    batch_size=size,
                    device=settings.device,
                    num_workers=settings.num_workers,
                    progress=progress,
                )
                for name, sequences, noise, size in runs
            }
            return {
                "num_sequences": count,
                "perturbations": per,
                "mean_flip_probability": mean(v["flip_probability"] for v in per.values()),
                "mean_top5_distance": mean(v["top5_distance"] for v in per.values()),
            }

        return evaluate

    def summarize(self, results: dict[str, Result], baseline: str | None) -> list[str]:
        if baseline is None:
            return []
        warnings = []
        base = results[baseline]["perturbations"]
        base_fp = {p: v["flip_probability"] for p, v in base.items()}
        base_t5 = {p: v["top5_distance"] for p, v in base.items()}
        for name, result in results.items():
            fp = {p: v["flip_probability"] for p, v in result["perturbations"].items()}
            t5 = {p: v["top5_distance"] for p, v in result["perturbations"].items()}
            for key, values, reference, rate in (
                ("flip_rate", fp, base_fp, mean_flip_rate),
                ("top5_distance_rate", t5, base_t5, mean_top5_distance_rate),
            ):
                try:
                    result[f"mean_{key}"] = rate(values, reference)
                    result[key] = {
                        p: 100 * v for p, v in normalize_by_baseline(values, reference).items()
                    }
                except ConfigError as err:
                    warnings.append(f"{name}: no {key.replace('_', ' ')}: {err}")
                    result[f"mean_{key}"], result[key] = None, {}
        return warnings

    def table(self, results: Mapping[str, Result], baseline: str | None) -> Table:
        headers = ["model", "sequences", "mean FP", "mean T5D"]
        decimals = [0, 0, 2, 3]
        if baseline is not None:
            headers += ["mFR", "mT5D"]
            decimals += [1, 1]
        rows = []
        for name, r in results.items():
            row = [
                name,
                r["num_sequences"],
                percent(r["mean_flip_probability"]),
                r["mean_top5_distance"],
            ]
            if baseline is not None:
                row += [r["mean_flip_rate"], r["mean_top5_distance_rate"]]
            rows.append(row)
        return Table(headers, rows, decimals)

    def details(self, results: Mapping[str, Result], baseline: str | None) -> Table:
        headers = ["model", "perturbation", "FP", "T5D"]
        decimals = [0, 0, 2, 3]
        if baseline is not None:
            headers += ["FR", "T5D rate"]
            decimals += [1, 1]
        rows = []
        for name, r in results.items():
            for p, v in r["perturbations"].items():
                row = [name, p, percent(v["flip_probability"]), v["top5_distance"]]
                if baseline is not None:
                    row += [r["flip_rate"].get(p), r["top5_distance_rate"].get(p)]
                rows.append(row)
        return Table(headers, rows, decimals)

    def caption(self, results: Mapping[str, Result], baseline: str | None) -> str:
        first = next(iter(results.values()))
        text = (
            f"{self.title}: flip probability FP (%) and top-5 distance T5D over "
            f"{first['num_sequences']} sequences of each of {len(first['perturbations'])} "
            "perturbations (lower is more stable)"
        )
        if baseline is not None:
            text += f"; mFR and mT5D (%) relative to {baseline} (100 = as stable as {baseline})"
        return text + "."

    def plot(self, results: Mapping[str, Result], path: Path) -> Path:
        from robustart.plots import save_grouped_bars

        values = {
            name: {p: 100 * v["flip_probability"] for p, v in r["perturbations"].items()}
            for name, r in results.items()
        }
        return save_grouped_bars(
            values, path, "flip probability (%)", title=f"{self.title}: flip probability"
        )


for _name, _title, _summary, _layout, _models in (
    (
        "cifar10-p",
        "CIFAR-10-P",
        "flip probability and top-5 distance per perturbation (mFR, mT5D with --baseline MODEL)",
        "<perturbation>.npy (uint8 (N, frames, 32, 32, 3))",
        CIFAR10_MODELS,
    ),
    (
        "imagenet-p",
        "ImageNet-P",
        "flip probability and top-5 distance per perturbation (mFR, mT5D with "
        "--baseline MODEL); decodes the videos with PyAV (pip install av)",
        "<perturbation>/<wnid>/*.mp4 (frames fed as decoded, 224 px in the release)",
        IMAGENET_MODELS,
    ),
):
    register(
        PerturbationBenchmark(
            name=_name,
            title=_title,
            summary=_summary,
            layout=_layout,
            source=HENDRYCKS_SOURCE,
            models=_models,
        )
    )
