"""Run a :class:`RobustnessSuite` over an evaluation subset, on one device or under DDP.

The subset is cut into fixed-size chunks (global batch indices, see
:mod:`robustart.evaluation.loop`). Each process evaluates the
chunks ``rank, rank + world_size, ...``; randomness is seeded per chunk; the metric states
(torchmetrics) are summed across processes, and per-image values (perturbation norms, minimal
budgets) are gathered. The result is therefore identical on one device and on any number of DDP
processes, and there is no DistributedSampler padding to distort it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable

import torch
from torch import nn
from tqdm.auto import tqdm

from robustart.errors import ConfigError
from robustart.evaluation.loop import Chunk
from robustart.evaluation.report import RobustnessReport
from robustart.evaluation.suite import BatchResult, RobustnessSuite
from robustart.metrics import GradientHealth, MinimalEpsilons, PerturbationNorms, RobustnessCounts
from robustart.utils import check_images


def evaluate_robustness(
    model: nn.Module,
    chunks: Iterable[Chunk],
    suite: RobustnessSuite,
    device: torch.device | str,
    seed: int = 0,
    progress: bool = False,
    num_chunks: int | None = None,
    on_batch: Callable[[int, BatchResult], None] | None = None,
) -> RobustnessReport:
    """Evaluate ``model`` on every test of ``suite``.

    Works inside Lightning's ``inference_mode`` validation loop: autograd is re-enabled here
    for the attacks. The model's train/eval flags and parameter gradients are left as found.
    Under DDP (``torch.distributed`` initialised) the metric states are summed over processes
    when computed, so every process returns the report of all images.

    Args:
        model: Classifier on images in [0, 1].
        chunks: ``(chunk_id, images, labels)`` for this process (see :func:`iterate_chunks`).
        suite: The tests to run.
        device: Where to evaluate.
        seed: Seed of all random tests.
        progress: Show a progress bar.
        num_chunks: Number of chunks (for the progress bar's total).
        on_batch: Called with ``(chunk_id, result)`` after each chunk, e.g. to keep the
            per-image correctness that ``robustart benchmark`` stores.

    Returns:
        The :class:`RobustnessReport` over all processes' images.
    """
    keys = suite.keys()
    attack_keys = suite.attack_keys()
    minimal_labels = [search.label for search in suite.minimal_eps]
    steps_per_chunk = len(keys) + len(minimal_labels)
    total_steps = None if num_chunks is None else num_chunks * steps_per_chunk
    with (
        torch.inference_mode(False),
        tqdm(
            total=total_steps,
            desc="robustness",
            disable=not progress,
            leave=False,
            dynamic_ncols=True,
        ) as bar,
    ):
        counts = RobustnessCounts(keys, suite.worst_case_groups()).to(device)
        norms = PerturbationNorms(attack_keys).to(device)
        minimal = MinimalEpsilons(minimal_labels).to(device)
        gradients = GradientHealth().to(device)
        empty = torch.zeros(0, 1, 1, 1, device=device)
        for key in attack_keys:  # every process holds a state, even one without chunks
            norms.update(key, empty, torch.zeros(0, dtype=torch.bool, device=device))
        for label in minimal_labels:
            minimal.update(label, torch.zeros(0, device=device), chunk_id=0)

        def on_test(key: str) -> None:
            bar.set_postfix_str(key, refresh=False)
            bar.update(1)

        image_size: tuple[int, int] | None = None
        for chunk_id, images, labels in chunks:
            images = images.to(device, non_blocking=True)
            if not images.is_floating_point():  # .float() would make them 0-255 (the range
                check_images(images, f"the images of chunk {chunk_id}")  # is run_batch's)
            images = images.float()
            image_size = (int(images.shape[-2]), int(images.shape[-1]))
            labels = labels.to(device, non_blocking=True)
            result = suite.run_batch(model, images, labels, chunk_id, seed, on_test)
            if on_batch is not None:
                on_batch(chunk_id, result)
            counts.update(result.correct)
            for key, (perturbation, success) in result.perturbations.items():
                norms.update(key, perturbation, success)
            for label, min_eps in result.minimal_eps.items():
                minimal.update(label, min_eps, chunk_id)
            if result.clean_gradient is not None:
                gradients.update(result.clean_gradient)
        with warnings.catch_warnings():  # a process without chunks computes zero states
            warnings.filterwarnings("ignore", message=".*before the ``update``.*")
            totals = counts.compute()
            if int(totals["count"]["images"]) == 0:
                raise ConfigError(
                    "the robustness evaluation ran on zero images (an empty subset): no accuracy "
                    "is reported. Check the dataset split and num_images."
                )
            return RobustnessReport.from_metrics(
                suite,
                totals,
                norms.compute() if attack_keys else None,
                gradients.compute() if attack_keys else None,
                minimal.compute() if minimal_labels else None,
                image_size,
            )
