"""Evaluate a model on the datasets kept on disk: shift sets, corruption files, ImageNet-O,
perturbation sequences.

These loops run on one device (no DistributedSampler padding, so numbers are exact) and return
plain numbers or a :class:`~robustart.evaluation.report.RobustnessReport`, which
:func:`robustart.metrics.summarize_report` turns into mCE & co.

Example:
    >>> report, ece = evaluate_corruption_files(
    ...     model, "cifar10_c", "data/CIFAR-10-C", clean_accuracy=0.95)  # doctest: +SKIP
    >>> summarize_report(report)["mce"]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from robustart.corruptions.base import BENCHMARK_CORRUPTIONS, SEVERITIES, check_severity
from robustart.data.shift import create_shift_dataset
from robustart.errors import EmptyInputError
from robustart.evaluation.loop import (
    OutputTransform,
    evenly_spaced_indices,
    iterate_logits,
    limit_dataset,
    model_device,
)
from robustart.evaluation.report import RobustnessReport
from robustart.metrics.calibration import CalibrationError
from robustart.metrics.ood import max_softmax_anomaly_score, ood_detection_scores
from robustart.metrics.perturbation import FlipProbability, Top5Distance
from robustart.utils import (
    Progress,
    check_finite_logits,
    check_labels,
    preserve_mode,
    track_progress,
)

__all__ = ["evenly_spaced_indices", "iterate_logits", "limit_dataset"]


def evaluate_classification(
    model: nn.Module,
    dataset: Dataset,
    batch_size: int = 128,
    device: torch.device | str | None = None,
    num_workers: int = 0,
    output_transform: OutputTransform | None = None,
    n_bins: int = 15,
    progress: Progress | None = None,
) -> dict[str, float]:
    """Top-1 accuracy and expected calibration error on ``dataset``.

    Args:
        model: Images (N, 3, H, W) in [0, 1] → logits.
        dataset: Items ``(image, label)``, e.g. :class:`~robustart.data.ImageNetA`.
        output_transform: Applied to the logits first, e.g. ``dataset.subset.restrict`` to score
            a 1000-class model on a 200-class subset.
        n_bins: ECE bins.
        progress: A progress bar advanced once per batch (e.g. ``tqdm``).

    Returns:
        ``{"accuracy": ..., "ece": ..., "num_images": ...}``.

    Raises:
        EmptyInputError: the dataset has no images.
        NonFiniteError: NaN or infinite logits.
        InputRangeError: labels outside the classes of the (transformed) logits, e.g.
            ImageNet-1k labels scored against a 200-class restriction.
    """
    correct, total = 0, 0
    ece = CalibrationError(n_bins=n_bins)
    for logits, labels in iterate_logits(
        model, dataset, batch_size, device, num_workers, output_transform, progress
    ):
        check_labels(labels, len(logits), logits.shape[-1], "the dataset's labels")
        correct += int((logits.argmax(dim=1) == labels).sum())
        total += len(labels)
        ece.update(logits.cpu(), labels.cpu())
    if total == 0:
        raise EmptyInputError(
            "the dataset to evaluate has no images: there is no accuracy to report"
        )
    return {"accuracy": correct / total, "ece": float(ece.compute()), "num_images": total}


def evaluate_corruption_files(
    model: nn.Module,
    dataset: str,
    root: str,
    clean_accuracy: float,
    corruptions: Sequence[str] = BENCHMARK_CORRUPTIONS,
    severities: Sequence[int] = SEVERITIES,
    batch_size: int = 128,
    device: torch.device | str | None = None,
    num_workers: int = 0,
    output_transform: OutputTransform | None = None,
    limit: int | None = None,
    progress: Progress | None = None,
) -> tuple[RobustnessReport, dict[str, dict[int, float]]]:
    """Accuracy (and ECE) on every corruption × severity of a pre-generated corruption set.

    Args:
        model: Images → logits.
        dataset: Registered name: ``"cifar10_c"``, ``"cifar100_c"`` or ``"imagenet_c"``.
        root: Folder of the extracted dataset.
        clean_accuracy: Clean accuracy of the model on the uncorrupted test set (stored in the
            report; relative mCE needs it).
        corruptions: Names to evaluate (default: the 15 benchmark corruptions).
        severities: Severities to evaluate.
        limit: Evaluate only this many images of each corruption × severity, evenly spaced
            (:func:`limit_dataset`; the same positions in every subset), for quick runs.
        progress: A progress bar advanced once per batch (e.g. ``tqdm``).

    Returns:
        ``(report, ece)``: a :class:`RobustnessReport` with ``corruptions[name][severity]``
        accuracies, and ``{name: {severity: ECE}}``.
    """
    for severity in severities:
        check_severity(severity)
    report = RobustnessReport(num_images=0, clean=float(clean_accuracy))
    calibration: dict[str, dict[int, float]] = {}
    for name in corruptions:
        for severity in severities:
            data = create_shift_dataset(dataset, root, corruption=name, severity=severity)
            scores = evaluate_classification(
                model,
                limit_dataset(data, limit),
                batch_size,
                device,
                num_workers,
                output_transform,
                progress=progress,
            )
            report.corruptions.setdefault(name, {})[severity] = scores["accuracy"]
            calibration.setdefault(name, {})[severity] = scores["ece"]
            report.num_images = int(scores["num_images"])
    return report, calibration


def anomaly_scores(
    model: nn.Module,
    dataset: Dataset,
    batch_size: int = 128,
    device: torch.device | str | None = None,
    num_workers: int = 0,
    output_transform: OutputTransform | None = None,
    progress: Progress | None = None,
) -> Tensor:
    """``−max softmax`` of every image of ``dataset`` (CPU tensor (N,))."""
    scores = [
        max_softmax_anomaly_score(logits).cpu()
        for logits, _ in iterate_logits(
            model, dataset, batch_size, device, num_workers, output_transform, progress
        )
    ]
    return torch.cat(scores) if scores else torch.empty(0)


def evaluate_ood(
    model: nn.Module,
    in_dataset: Dataset,
    out_dataset: Dataset,
    batch_size: int = 128,
    device: torch.device | str | None = None,
    num_workers: int = 0,
    output_transform: OutputTransform | None = None,
    progress: Progress | None = None,
) -> dict[str, float]:
    """AUPR and AUROC of detecting ``out_dataset`` images among ``in_dataset`` images.

    For ImageNet-O as in its reference evaluation: ``in_dataset =
    ImageNetOInDistribution(val_root)``, ``out_dataset = ImageNetO(root)`` and
    ``output_transform = out_dataset.subset.restrict`` (softmax over the 200 classes).
    ``progress``: a bar advanced once per batch.
    """
    in_scores = anomaly_scores(
        model, in_dataset, batch_size, device, num_workers, output_transform, progress
    )
    out_scores = anomaly_scores(
        model, out_dataset, batch_size, device, num_workers, output_transform, progress
    )
    return ood_detection_scores(in_scores, out_scores)


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
        model: Images → logits.
        dataset: Items are frames (F, C, H, W) in [0, 1] (e.g. :class:`~robustart.data.CIFAR10P`;
            its ``noise`` attribute gives the pairing).
        noise: Compare frames with frame 0 (noise perturbations) instead of consecutively.
        batch_size: Sequences per batch (the model sees ``batch_size · F`` images).
        progress: A progress bar advanced once per batch (e.g. ``tqdm``).

    Returns:
        ``{"flip_probability": ..., "top5_distance": ...}``; divide by a baseline model's values
        on the same sequences with :func:`robustart.metrics.normalize_by_baseline`.
    """
    device = model_device(model, device)
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise EmptyInputError("the perturbation dataset has no sequences to evaluate")
    flips, distances = FlipProbability(noise=noise), Top5Distance(noise=noise)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    with preserve_mode(model, train=False), torch.inference_mode():
        for frames in track_progress(loader, progress):
            n, f = frames.shape[:2]
            logits = model(frames.flatten(0, 1).to(device)).view(n, f, -1).cpu()
            check_finite_logits(logits)
            flips.update(logits)
            distances.update(logits)
    return {
        "flip_probability": float(flips.compute()),
        "top5_distance": float(distances.compute()),
    }
