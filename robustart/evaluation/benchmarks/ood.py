"""Out-of-distribution detection (ImageNet-O): how well the anomaly score −max softmax tells
its images from in-distribution ImageNet validation images (AUROC, AUPR).

Example:
    >>> from robustart.data import ImageNetO, ImageNetOInDistribution
    >>> out_data = ImageNetO("data/imagenet-o")  # doctest: +SKIP
    >>> evaluate_ood(model, ImageNetOInDistribution("data/val"), out_data,
    ...              output_transform=out_data.subset.restrict)  # doctest: +SKIP
    {'aupr': 0.17, 'auroc': 0.56}
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from robustart.data.shift import SHIFT_DATASETS
from robustart.errors import ConfigError
from robustart.evaluation.benchmarks.base import (
    IMAGENET_MODELS,
    Benchmark,
    Evaluator,
    Result,
    ShiftSettings,
    Table,
    num_batches,
    percent,
    register,
)
from robustart.evaluation.benchmarks.natural_shift import (
    missing_classes_option,
    partial_copy_caption,
    partial_copy_classes,
)
from robustart.evaluation.loop import OutputTransform, iterate_logits, limit_dataset
from robustart.metrics.ood import max_softmax_anomaly_score, ood_detection_scores
from robustart.utils import Progress, fixed_total

__all__ = ["OODBenchmark", "anomaly_scores", "evaluate_ood"]


def anomaly_scores(
    model: nn.Module,
    dataset: Dataset,
    batch_size: int = 128,
    device: torch.device | str | None = None,
    num_workers: int = 0,
    output_transform: OutputTransform | None = None,
    progress: Progress | None = None,
) -> Tensor:
    """``−max softmax`` of every image of ``dataset``: a CPU tensor (N,) with values in
    [−1, −1/K) (higher: more anomalous).

    Args:
        model: Images in [0, 1] → logits (N, K).
        dataset: Items ``(image, label)`` (labels are ignored) or bare images.
        batch_size: Images per forward pass.
        device: Where the model runs (default: the device of its parameters).
        num_workers: DataLoader workers.
        output_transform: Applied to the logits before the softmax.
        progress: A progress bar advanced once per batch.
    """
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

    Args:
        model: Images in [0, 1] → logits (N, K).
        in_dataset: In-distribution items (negatives).
        out_dataset: Out-of-distribution items (positives).
        batch_size: Images per forward pass.
        device: Where the model runs (default: the device of its parameters).
        num_workers: DataLoader workers.
        output_transform: Applied to the logits before the softmax.
        progress: A bar advanced once per batch of either dataset.

    Returns:
        ``{"aupr": in [0, 1], "auroc": in [0, 1]}`` (chance AUROC 0.5).
    """
    in_scores = anomaly_scores(
        model, in_dataset, batch_size, device, num_workers, output_transform, progress
    )
    out_scores = anomaly_scores(
        model, out_dataset, batch_size, device, num_workers, output_transform, progress
    )
    return ood_detection_scores(in_scores, out_scores)


class OODBenchmark(Benchmark):
    """ImageNet-O: detecting its images among ImageNet validation images of the same 200
    classes by the anomaly score −max softmax (AUROC, AUPR). The datasets are those registered
    as ``<name>`` and ``<name>-in-distribution`` in :data:`robustart.data.SHIFT_DATASETS`."""

    options = frozenset({"clean_root", "allow_missing_classes"})
    clean_layout = "<wnid>/*.JPEG (ImageNet val; required: the in-distribution images)"

    def prepare(self, settings: ShiftSettings) -> Evaluator:
        if settings.clean_root is None:
            raise ConfigError(
                f"{self.name} needs --clean-root: the ImageNet validation folder "
                "(<wnid>/*.JPEG); its images of ImageNet-O's 200 classes are the "
                "in-distribution data"
            )
        option = missing_classes_option(settings)
        out_data = SHIFT_DATASETS.get(self.name)(settings.root, **option)
        in_data = SHIFT_DATASETS.get(f"{self.name}-in-distribution")(settings.clean_root, **option)
        classes = partial_copy_classes(out_data, settings)
        in_subset = limit_dataset(in_data, settings.num_images)
        out_subset = limit_dataset(out_data, settings.num_images)
        total = num_batches(in_subset, settings.batch_size) + num_batches(
            out_subset, settings.batch_size
        )

        def evaluate(model: nn.Module, progress: Progress | None) -> Result:
            progress = fixed_total(progress, total)
            scores = evaluate_ood(
                model,
                in_subset,
                out_subset,
                settings.batch_size,
                settings.device,
                settings.num_workers,
                output_transform=out_data.subset.restrict,  # type: ignore[attr-defined]
                progress=progress,
            )
            sizes = {"num_in": len(in_subset), "num_out": len(out_subset)}  # type: ignore[arg-type]
            return {**scores, **sizes, **classes}

        return evaluate

    def table(self, results: Mapping[str, Result], baseline: str | None) -> Table:
        rows = [
            [name, r["num_in"], r["num_out"], percent(r["auroc"]), percent(r["aupr"])]
            for name, r in results.items()
        ]
        return Table(["model", "in-dist. images", "OOD images", "AUROC", "AUPR"], rows)

    def caption(self, results: Mapping[str, Result], baseline: str | None) -> str:
        return (
            f"{self.title}: AUROC and AUPR (%) of detecting its images among ImageNet val "
            "images of the same 200 classes by −max softmax over those classes (higher is "
            "better; chance AUROC 50)." + partial_copy_caption(results)
        )


register(
    OODBenchmark(
        name="imagenet-o",
        title="ImageNet-O",
        summary="AUROC / AUPR of detecting out-of-distribution images (needs --clean-root)",
        layout="<wnid>/*.jpg (200 class folders)",
        source="https://github.com/hendrycks/natural-adv-examples",
        models=IMAGENET_MODELS,
    )
)
