"""Wall time of ``robustart.benchmark`` with a suite vs the floor: the same suite in one
``evaluate_robustness`` call plus the same system-noise evaluation, on the same images.

The benchmark runs each suite item separately (so that it can be stored and resumed), which
repeats the clean forward pass once per item and writes one JSON file per item; the ratio
shows what that costs. A third figure is the resume: the same call again, every result read
back from disk.

    python benchmarks/bench_benchmark.py --suite quick --split train --num-images 1000 --rounds 1
"""

from __future__ import annotations

import argparse
import tempfile
import time
from typing import Any

import torch
from common import add_device_arguments, describe_device, device_from_arguments, paired_ratio

from robustart.data import DigitsDataModule
from robustart.evaluation import evaluate_robustness, iterate_chunks
from robustart.evaluation.benchmark import benchmark, load_benchmark_suite
from robustart.evaluation.benchmarks import evaluate_cifar_system_noise
from robustart.models import create_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default="quick", help="a shipped suite or YAML file")
    parser.add_argument("--num-images", type=int, default=1000, help="digits images")
    parser.add_argument(
        "--split", default="train", help="digits split (test and val hold 250 images each)"
    )
    parser.add_argument("--batch-size", type=int, default=128, help="images per chunk")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    add_device_arguments(parser)
    args = parser.parse_args()
    device = device_from_arguments(args)
    data = DigitsDataModule(augment=False)
    model = create_model(
        "resnet20", 10, mean=data.mean, std=data.std, weights="zoo:digits_resnet20_pgd_at"
    ).to(device)
    suite = load_benchmark_suite(args.suite)
    subset = data.robustness_subset(args.split, args.num_images, 0)
    images = torch.stack([x for x, _ in subset])
    labels = torch.tensor([int(y) for _, y in subset])

    def floor() -> None:
        chunks = iterate_chunks(subset, args.batch_size)
        evaluate_robustness(model, chunks, suite.robustness, device)
        if suite.system_noise:
            evaluate_cifar_system_noise(model, images, labels, batch_size=args.batch_size // 13)

    def run_benchmark(output: str) -> Any:
        return benchmark(
            model,
            data,
            suite,
            split=args.split,
            num_images=args.num_images,
            batch_size=args.batch_size,
            device=device,
            output=output,
            progress=False,
        )

    times: dict[str, list[float]] = {"benchmark": [], "floor": [], "resume": []}
    for round_index in range(args.rounds):
        with tempfile.TemporaryDirectory() as output:
            runs = {"benchmark": lambda: run_benchmark(output), "floor": floor}
            order = ["benchmark", "floor"] if round_index % 2 == 0 else ["floor", "benchmark"]
            for name in order:
                start = time.perf_counter()
                runs[name]()
                times[name].append(time.perf_counter() - start)
            start = time.perf_counter()
            result = run_benchmark(output)  # every result is read back from ``output``
            times["resume"].append(time.perf_counter() - start)
            assert len(result.reused) == len(next(iter(result.models.values())).items)
    print(f"device: {describe_device(device)}, threads {torch.get_num_threads()}")
    print(f"suite {args.suite}, {len(subset)} digits {args.split} images, ResNet-20")
    for name, values in times.items():
        print(f"{name:10s} " + " ".join(f"{t:7.1f}s" for t in values))
    print(f"benchmark / floor (paired): {paired_ratio(times['benchmark'], times['floor']):.3f}")
    per_1000 = min(times["benchmark"]) * 1000 / len(subset)
    print(f"benchmark wall time per 1,000 images: {per_1000:.1f} s")


if __name__ == "__main__":
    main()
