"""Transfer attacks: craft adversarial examples on a source model, evaluate them on targets.

Su et al. (ECCV 2018) report the full source × target matrix of accuracies. The diagonal is the
white-box robust accuracy; off-diagonal entries measure how well the examples transfer. A
black-box (transferred) attack that beats the white-box one on the same model is a sign of
gradient masking.

``robustart transfer`` (:mod:`robustart.cli.transfer`) runs it on checkpoints and zoo models;
:func:`robustart.plots.save_transfer_heatmap` draws the matrix.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from robustart.attacks import Attack
from robustart.attacks.base import Model, checked_input_gradient
from robustart.errors import ConfigError, EmptyInputError
from robustart.evaluation.loop import batch_logits
from robustart.utils import (
    Progress,
    check_images,
    check_labels,
    check_not_probabilities,
    fixed_total,
    make_generator,
    preserve_mode,
    track_progress,
)

__all__ = ["TransferResult", "evaluate_transfer", "transfer_matrix"]


# ----------------------------------------------------------------------------- evaluation
@dataclass
class TransferResult:
    """Accuracies of every target model on the adversarial examples of every source model.

    Attributes:
        sources: Names of the models the examples were crafted on (S).
        targets: Names of the models evaluated (T).
        matrix: (S, T) accuracies in [0, 1]; ``matrix[s, t]`` is the accuracy of target ``t``
            on the examples crafted on source ``s``.
        clean: (T,) clean accuracies of the targets on the same images.
        num_images: Number of images.
        attack: The attack's settings (name, norm, ε, iterations, ...).
        seed: Seed of the attack's random generator.
    """

    sources: list[str]
    targets: list[str]
    matrix: Tensor
    clean: Tensor
    num_images: int
    attack: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    def white_box(self) -> dict[str, float]:
        """``{model: white-box accuracy}`` for models that are both a source and a target."""
        return {
            name: float(self.matrix[i, self.targets.index(name)])
            for i, name in enumerate(self.sources)
            if name in self.targets
        }

    def table(self) -> tuple[list[str], list[list[Any]]]:
        """Headers and rows (percentages): a clean row, then one row per source."""
        headers = ["crafted on \\ evaluated on", *self.targets]
        rows: list[list[Any]] = [["clean", *(100.0 * float(v) for v in self.clean)]]
        for i, source in enumerate(self.sources):
            rows.append([source, *(100.0 * float(v) for v in self.matrix[i])])
        return headers, rows

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (accuracies as fractions)."""
        return {
            "sources": list(self.sources),
            "targets": list(self.targets),
            "matrix": [[float(v) for v in row] for row in self.matrix],
            "clean": [float(v) for v in self.clean],
            "white_box": self.white_box(),
            "num_images": self.num_images,
            "attack": self.attack,
            "seed": self.seed,
        }


@torch.no_grad()
def _correct(model: Model, images: Tensor, labels: Tensor, what: str) -> Tensor:
    """(N,) bool: the model's top-1 prediction equals the label.

    Raises:
        NonFiniteError: NaN or infinite logits (``what`` names the model and the images).
        InputRangeError: labels outside the model's classes.
    """
    logits = batch_logits(model, images, what)
    check_labels(labels, images.shape[0], logits.shape[-1])
    return logits.argmax(dim=1) == labels


def evaluate_transfer(
    sources: Mapping[str, Model],
    images: Tensor,
    labels: Tensor,
    attack: Attack,
    *,
    targets: Mapping[str, Model] | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> TransferResult:
    """Craft examples on every source model and evaluate them on every target model.

    For each source a fresh generator seeded with ``seed`` drives the attack's random starts,
    consumed batch after batch. With one batch (``batch_size=None``) the examples of a source
    are therefore exactly ``attack(model, images, labels, generator=make_generator(seed))``,
    and the diagonal equals the white-box robust accuracy obtained that way.

    Args:
        sources: ``{name: model}`` to craft examples on; models map images (N, C, H, W) in
            [0, 1] to logits (N, K) and live on the images' device.
        images: Clean images (N, C, H, W) in [0, 1].
        labels: Labels (N,) int64.
        attack: The attack (its own ε and norm are used).
        targets: ``{name: model}`` to evaluate; ``None`` uses ``sources`` (a square matrix).
        seed: Seed of the attack's random generator.
        batch_size: Images per attack call (``None``: all at once).
        progress: A progress bar (e.g. ``tqdm``) advanced after each attacked batch; its total
            is set to sources × batches.

    Returns:
        A :class:`TransferResult` with the (S, T) matrix and the targets' clean accuracies.
    """
    check_images(images)
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ConfigError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
    check_labels(labels, images.shape[0])
    targets = sources if targets is None else targets
    if not sources or not targets:
        raise ConfigError("transfer evaluation needs at least one source and one target model")
    n = images.shape[0]
    if n == 0:
        raise EmptyInputError("transfer evaluation got 0 images: there is no accuracy to report")
    step = max(n, 1) if batch_size is None else int(batch_size)
    if step < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    target_models = list(targets.items())
    correct = torch.zeros(len(sources), len(targets), dtype=torch.float64)
    clean = torch.zeros(len(targets), dtype=torch.float64)
    for start in range(0, n, step):
        x, y = images[start : start + step], labels[start : start + step]
        for t, (target_name, target) in enumerate(target_models):
            what = f"model {target_name!r} on the clean images"
            clean[t] += _correct(target, x, y, what).sum().item()
    starts = range(0, n, step)
    progress = fixed_total(progress, len(sources) * len(starts))
    for s, (source_name, source) in enumerate(sources.items()):
        generator = make_generator(seed, images.device)
        for start in track_progress(starts, progress):
            x, y = images[start : start + step], labels[start : start + step]
            if start == 0:  # attacks need logits and finite gradients: refuse before crafting
                what = f"model {source_name!r} on the clean images"
                check_not_probabilities(batch_logits(source, x, what), f"the outputs of {what}")
                if attack.name != "square":
                    modes = preserve_mode(source, False) if isinstance(source, nn.Module) else None
                    with modes or contextlib.nullcontext():
                        checked_input_gradient(source, x, y, what)
            adversarial = attack(source, x, y, generator=generator)
            for t, (target_name, target) in enumerate(target_models):
                what = f"model {target_name!r} on the examples crafted on {source_name!r}"
                correct[s, t] += _correct(target, adversarial, y, what).sum().item()
    total = n
    return TransferResult(
        sources=list(sources),
        targets=list(targets),
        matrix=(correct / total).float(),
        clean=(clean / total).float(),
        num_images=n,
        attack=dict(attack.config),
        seed=seed,
    )


def transfer_matrix(
    models: Mapping[str, Model],
    images: Tensor,
    labels: Tensor,
    attack: Attack,
    *,
    targets: Mapping[str, Model] | None = None,
    seed: int = 0,
    batch_size: int | None = None,
) -> Tensor:
    """The (S, T) matrix of accuracies of :func:`evaluate_transfer`.

    ``matrix[s, t]`` is the accuracy of target ``t`` on examples crafted on source ``s``; rows
    follow ``models`` and columns ``targets`` (default: ``models``), in insertion order.

    Example:
        >>> from robustart.attacks import create_attack
        >>> attack = create_attack("pgd", eps="8/255", steps=10)
        >>> matrix = transfer_matrix({"a": model_a, "b": model_b}, x, y, attack)  # doctest: +SKIP
        >>> matrix.shape  # doctest: +SKIP
        torch.Size([2, 2])
    """
    return evaluate_transfer(
        models, images, labels, attack, targets=targets, seed=seed, batch_size=batch_size
    ).matrix
