"""PGD-k cost against its physical floor and against torchattacks' PGD.

The floor is k forward passes plus k backward passes to the *input* (what any PGD must do);
a second floor adds parameter gradients (a plain ``loss.backward()``). Our PGD is timed with
``early_stop=False`` so that it does all k steps like the others. The methods run interleaved
(one round runs each once) and ratios are medians of per-round ratios, which keeps a shared
machine's slow spells out of the comparison.

    python benchmarks/bench_pgd.py --model resnet20 --batch 128 --steps 10
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F
from common import (
    add_device_arguments,
    describe_device,
    device_from_arguments,
    paired_ratio,
    timeit_interleaved,
)

from robustart.attacks import PGD
from robustart.models import create_model

OURS = "robustart PGD (early_stop=False)"
PEER = "torchattacks PGD"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--size", type=int, default=32, help="image side in pixels")
    parser.add_argument("--steps", type=int, default=10)
    add_device_arguments(parser, repeats=5)
    args = parser.parse_args()
    device = device_from_arguments(args)
    torch.manual_seed(0)
    model = create_model(args.model, num_classes=10).to(device).eval()
    images = torch.rand(args.batch, 3, args.size, args.size, device=device)
    labels = torch.randint(0, 10, (args.batch,), device=device)
    eps, k = 8 / 255, args.steps

    def floor_input_grad() -> None:
        x = images.clone()
        for _ in range(k):
            x.requires_grad_(True)
            loss = F.cross_entropy(model(x), labels, reduction="sum")
            (grad,) = torch.autograd.grad(loss, x)
            x = x.detach() + 0.001 * grad.sign()

    def floor_full_backward() -> None:
        for _ in range(k):
            x = images.clone().requires_grad_(True)
            F.cross_entropy(model(x), labels).backward()
        model.zero_grad(set_to_none=True)

    ours = PGD(eps=eps, steps=k, early_stop=False)
    ours_early = PGD(eps=eps, steps=k)
    methods = {
        "floor: k × (forward + input backward)": floor_input_grad,
        "floor: k × (forward + full backward)": floor_full_backward,
        OURS: lambda: ours(model, images, labels),
        "robustart PGD (default, early stop)": lambda: ours_early(model, images, labels),
    }
    try:
        import torchattacks

        reference = torchattacks.PGD(model, eps=eps, alpha=2 / 255, steps=k, random_start=True)
        methods[PEER] = lambda: reference(images, labels)
    except ImportError:
        pass
    times = timeit_interleaved(methods, device, args.repeats)
    floor = times["floor: k × (forward + input backward)"]
    print(
        f"PGD-{k}, {args.model}, batch {args.batch}×3×{args.size}×{args.size}, "
        f"{describe_device(device)}, {args.repeats} interleaved rounds"
    )
    print("| method | median time (ms) | ÷ input-grad floor | ours ÷ it |")
    print("|---|---|---|---|")
    for name, t in times.items():
        print(
            f"| {name} | {1000 * statistics.median(t):.1f} | {paired_ratio(t, floor):.3f} "
            f"| {paired_ratio(times[OURS], t):.3f} |"
        )
    print("Ratios are medians of per-round ratios.")


if __name__ == "__main__":
    main()
