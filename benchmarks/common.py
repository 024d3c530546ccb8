"""Timing helpers shared by the benchmarks: warm-up, repeats, device synchronisation."""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timeit(
    fn: Callable[[], object], device: torch.device, repeats: int = 5, warmup: int = 1
) -> float:
    """Median wall time of ``fn`` in seconds over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timeit_interleaved(
    fns: dict[str, Callable[[], object]],
    device: torch.device,
    repeats: int = 5,
    warmup: int = 1,
) -> dict[str, list[float]]:
    """Wall times (seconds) of every function over ``repeats`` rounds, run interleaved.

    Each round runs every function once, in an order rotated from round to round, so that a
    slow spell of a shared machine hits all methods alike; ratios are then taken per round
    (:func:`paired_ratio`) rather than between medians measured minutes apart.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync(device)
    names = list(fns)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            fns[name]()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median over rounds of ``numerator[i] / denominator[i]``."""
    return statistics.median(a / b for a, b in zip(numerator, denominator, strict=True))


def ms_per_image(times: dict[str, list[float]], batch: int) -> dict[str, float]:
    """Median milliseconds per image of every entry of :func:`timeit_interleaved`'s result."""
    return {name: 1000 * statistics.median(seconds) / batch for name, seconds in times.items()}


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def add_device_arguments(
    parser: argparse.ArgumentParser, repeats: int | None = None, device: str = "auto"
) -> None:
    """Add ``--device`` and ``--threads`` (and ``--repeats`` when a default is given)."""
    if repeats is not None:
        parser.add_argument("--repeats", type=int, default=repeats, help="timed rounds")
    parser.add_argument("--device", default=device, help="auto (cuda if present), cpu, cuda:N")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")


def device_from_arguments(args: argparse.Namespace) -> torch.device:
    """Apply ``--threads`` and return the ``--device`` to run on."""
    if args.threads:
        torch.set_num_threads(args.threads)
    return pick_device(args.device)
