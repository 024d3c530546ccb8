"""Per-sample best points and the restart cascade shared by every attack.

Attacks that restart (PGD, APGD, Square, FAB-T), that run several members in turn (the
AutoAttack ensemble) or that search over budgets (the minimal-ε search) all follow the same
pattern: keep each sample's best point so far, and run every further stage only on the samples
that are still pending. This module is the one home of that pattern:

* :class:`BestTracker` keeps the *strongest* point per sample (a point that fools the model
  beats one that does not; among equals the higher loss wins), for fixed-budget attacks;
* :class:`ClosestTracker` keeps the *closest* misclassified point per sample and its distance,
  for minimal-distortion attacks (FAB-T, C&W, DeepFool), and returns it only within a budget;
* :func:`cascade` runs stages (restarts, ensemble members, budgets) on the samples still
  pending before each stage.

Images are float (N, C, H, W) in [0, 1]; per-sample values are (N,).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import torch
from torch import Tensor

from robustart.attacks.threat import per_sample

Stage = TypeVar("Stage")


def cascade(
    stages: Iterable[Stage], pending: Callable[[], Tensor]
) -> Iterator[tuple[Stage, Tensor]]:
    """Yield every stage with the samples still pending before it; stop once none is.

    ``pending`` is called before each stage, so a stage that breaks samples (updates a tracker)
    removes them from the next one.

    Args:
        stages: Restarts, ensemble members, budgets, ... in the order they run.
        pending: Returns a bool mask (N,): the samples a stage still has to attack.

    Yields:
        ``(stage, index)``: the stage and the indices (M,) int64, ascending, of the pending
        samples (M ≥ 1).

    Example:
        >>> broken = torch.tensor([False, True, False])
        >>> for restart, index in cascade(range(3), lambda: ~broken):
        ...     broken[index[0]] = True  # each restart breaks the first pending sample
        ...     print(restart, index.tolist())
        0 [0, 2]
        1 [2]
    """
    for stage in stages:
        index = pending().nonzero().squeeze(1)
        if index.numel() == 0:
            return
        yield stage, index


class BestTracker:
    """Keeps, per sample, the strongest adversarial point seen so far.

    A point that fools the model beats one that does not; among equals the higher loss wins.
    Updates use ``torch.where`` and ``index_copy_`` rather than boolean indexing, so they need
    no host-device synchronisation.

    Args:
        images: The clean images (N, C, H, W) in [0, 1]: every sample's starting point, not
            fooled and with loss −∞.

    Attributes:
        images: Best point per sample (N, C, H, W).
        fooled: (N,) bool, the best point fools the model.
        loss: (N,) loss of the best point (−∞ until one is scored).
    """

    def __init__(self, images: Tensor) -> None:
        self.images = images.clone()
        self.fooled = torch.zeros(images.shape[0], dtype=torch.bool, device=images.device)
        self.loss = torch.full((images.shape[0],), float("-inf"), device=images.device)

    def pending(self) -> Tensor:
        """(N,) bool: the samples no point has fooled yet (what a restart still attacks)."""
        return ~self.fooled

    def update(
        self, candidates: Tensor, loss: Tensor, fooled: Tensor, index: Tensor | None = None
    ) -> None:
        """Offer scored candidate points.

        Args:
            candidates: (M, C, H, W) points for the samples ``index`` (or all N samples).
            loss: (M,) their loss.
            fooled: (M,) bool, they fool the model.
            index: (M,) int64 sample indices; ``None`` for all samples (M = N).
        """
        if index is None:
            better = (fooled & ~self.fooled) | ((fooled == self.fooled) & (loss > self.loss))
            take = per_sample(better, candidates).bool()
            self.images = torch.where(take, candidates, self.images)
            self.loss = torch.where(better, loss, self.loss)
            self.fooled = self.fooled | fooled
            return
        old_fooled, old_loss = self.fooled[index], self.loss[index]
        better = (fooled & ~old_fooled) | ((fooled == old_fooled) & (loss > old_loss))
        kept = torch.where(per_sample(better, candidates).bool(), candidates, self.images[index])
        self.images.index_copy_(0, index, kept)
        self.loss.index_copy_(0, index, torch.where(better, loss, old_loss))
        self.fooled.index_copy_(0, index, old_fooled | fooled)

    def offer_unscored(self, candidates: Tensor, index: Tensor | None = None) -> None:
        """Give ``candidates`` to every sample (of ``index``) that nothing has fooled yet,
        without scoring them: a last iterate that is kept without its forward pass.

        Robust accuracy is the same as if the candidates had been scored (a sample that is not
        fooled keeps a point that fools the model if and only if the candidate does), but the
        tracker no longer knows whether these samples are fooled: call it only after the last
        scored update.

        Args:
            candidates: (M, C, H, W) points for the samples ``index`` (or all N samples).
            index: (M,) int64 sample indices; ``None`` for all samples.
        """
        if index is None:
            keep = per_sample(self.fooled, candidates).bool()
            self.images = torch.where(keep, self.images, candidates)
            return
        keep = per_sample(self.fooled[index], candidates).bool()
        self.images.index_copy_(0, index, torch.where(keep, self.images[index], candidates))

    def subset(self, index: Tensor) -> SubsetTracker:
        """A view of this tracker restricted to the samples ``index`` (M,)."""
        return SubsetTracker(self, index)


class SubsetTracker:
    """A view of a :class:`BestTracker` restricted to the samples ``index``: one restart on
    the pending samples offers its points with the subset's own (M,) numbering.

    Args:
        tracker: The tracker of all N samples.
        index: (M,) int64 indices of the samples of this view.
    """

    def __init__(self, tracker: BestTracker, index: Tensor) -> None:
        self.tracker = tracker
        self.index = index

    def update(self, candidates: Tensor, loss: Tensor, fooled: Tensor) -> None:
        """See :meth:`BestTracker.update`; all arguments have M rows."""
        self.tracker.update(candidates, loss, fooled, self.index)

    def offer_unscored(self, candidates: Tensor) -> None:
        """See :meth:`BestTracker.offer_unscored`; ``candidates`` has M rows."""
        self.tracker.offer_unscored(candidates, self.index)

    def all_fooled(self) -> Tensor:
        """0-dim bool tensor: every sample of the view is fooled (no synchronisation)."""
        return self.tracker.fooled[self.index].all()


class ClosestTracker:
    """Keeps, per sample, the closest misclassified point seen so far and its distance.

    Args:
        images: The clean images (N, C, H, W) in [0, 1]: every sample's point until a
            misclassified one is offered.
        distance: Initial distances (N,); ``None`` gives ``inf`` (nothing found yet).

    Attributes:
        images: Closest misclassified point per sample (N, C, H, W) (the clean image where
            none was found).
        distance: (N,) its distance to the clean image (``inf`` where none was found).
    """

    def __init__(self, images: Tensor, distance: Tensor | None = None) -> None:
        self.images = images.clone()
        if distance is None:
            distance = torch.full((images.shape[0],), math.inf, device=images.device)
        self.distance = distance

    def update(
        self, candidates: Tensor, distance: Tensor, fooled: Tensor, index: Tensor | None = None
    ) -> Tensor:
        """Keep the candidates that fool the model and are closer than the best so far.

        Args:
            candidates: (M, C, H, W) points for the samples ``index`` (or all N samples).
            distance: (M,) their distances to the clean images.
            fooled: (M,) bool, they fool the model.
            index: (M,) int64 sample indices; ``None`` for all samples (M = N).

        Returns:
            (M,) bool: the candidates that were kept.
        """
        if index is None:
            closer = fooled & (distance < self.distance)
            self.images[closer] = candidates[closer]
            self.distance.copy_(torch.where(closer, distance, self.distance))
            return closer
        closer = fooled & (distance < self.distance[index])
        self.images[index[closer]] = candidates[closer]
        self.distance[index] = torch.where(closer, distance, self.distance[index])
        return closer

    def within(self, eps: Tensor, clean: Tensor) -> Tensor:
        """The closest points found whose distance is at most the budget, the clean images
        elsewhere (also where nothing was found, even under an unbounded budget).

        Args:
            eps: Budgets (N,), ``inf`` for unbounded.
            clean: The clean images (N, C, H, W).

        Returns:
            (N, C, H, W) images in [0, 1].
        """
        found = torch.isfinite(self.distance) & (self.distance <= eps)
        return torch.where(per_sample(found, clean).bool(), self.images, clean)
