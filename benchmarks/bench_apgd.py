"""APGD-CE-k against its physical floor and against torchattacks' APGD, on a robust model.

Both implementations attack only the images the model classifies correctly and run all k
iterations on them (a robust model keeps most images unbroken, so neither stops early). The
floor is what any APGD-k must compute on those images: k + 1 forward passes and backward
passes to the input (the initial point and k iterates); robustart skips the last iterate's
backward pass, which no step uses. The methods run interleaved and ratios are medians of
per-round ratios (see ``common.timeit_interleaved``).

    python benchmarks/bench_apgd.py --steps 100 --batch 128
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

from robustart.attacks import APGD
from robustart.data.digits import load_digits_tensors
from robustart.models import create_model

FLOOR = "floor: (k+1) × (forward + input backward)"
OURS = "robustart APGD-CE"
PEER = "torchattacks APGD (ce)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="zoo:digits_resnet20_pgd_at")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--eps", type=float, default=8 / 255)
    add_device_arguments(parser, repeats=3)
    args = parser.parse_args()
    device = device_from_arguments(args)
    images, labels = load_digits_tensors(32)
    images, labels = images[-args.batch :].to(device), labels[-args.batch :].to(device)
    model = create_model("resnet20", 10, mean=(0.3,) * 3, std=(0.33,) * 3, weights=args.weights).to(
        device
    )
    model.eval()
    with torch.no_grad():
        correct = model(images).argmax(1) == labels
    k = args.steps
    robust_x, robust_y = images[correct], labels[correct]

    def floor() -> None:
        x = robust_x.clone()
        for _ in range(k + 1):
            x.requires_grad_(True)
            loss = F.cross_entropy(model(x), robust_y, reduction="sum")
            (grad,) = torch.autograd.grad(loss, x)
            x = (x.detach() + 0.001 * grad.sign()).clamp(0, 1)

    ours = APGD(eps=args.eps, steps=k, loss="ce")
    methods = {
        FLOOR: floor,
        OURS: lambda: ours(model, images, labels),
    }
    adversarial = {OURS: lambda: ours(model, images, labels)}
    try:
        import torchattacks

        reference = torchattacks.APGD(model, eps=args.eps, steps=k, loss="ce", seed=0)
        methods[PEER] = lambda: reference(images, labels)
        adversarial[PEER] = lambda: reference(images, labels)
    except ImportError:
        pass
    times = timeit_interleaved(methods, device, args.repeats)
    accuracies = {}
    for name, attack in adversarial.items():
        with torch.no_grad():
            accuracies[name] = (model(attack()).argmax(1) == labels).float().mean().item()
    print(
        f"APGD-CE-{k} L∞ ε={args.eps:.4f}, ResNet-20 ({args.weights}), {args.batch} digits "
        f"({int(correct.sum())} correct), {describe_device(device)}, "
        f"{args.repeats} interleaved rounds"
    )
    print("| method | median time (ms) | ÷ floor | ours ÷ it | robust acc |")
    print("|---|---|---|---|---|")
    for name, t in times.items():
        acc = accuracies.get(name)
        acc_text = f"{100 * acc:.1f} %" if acc is not None else ""
        print(
            f"| {name} | {1000 * statistics.median(t):.1f} | {paired_ratio(t, times[FLOOR]):.3f} "
            f"| {paired_ratio(times[OURS], t):.3f} | {acc_text} |"
        )
    print("Ratios are medians of per-round ratios.")


if __name__ == "__main__":
    main()
