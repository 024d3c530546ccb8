"""AutoAttack "standard" end to end: robustart vs torchattacks at the same budget, and FAB-T's cost.

Three methods on the same robust model and images, run interleaved (see
``common.timeit_interleaved``):

- robustart's ``AutoAttack(version="standard")``: APGD-CE-100 → APGD-T-100 (9 targets) →
  FAB-T-100 (9 targets) → Square-5000, each on the points still robust;
- the same without FAB-T, to measure what FAB-T adds;
- torchattacks' members at the same budget in its ``MultiAttack`` (which also attacks only the
  points still robust). torchattacks' own ``AutoAttack`` leaves APGD, APGD-T and FAB at their
  defaults of 10 iterations, a tenth of the published budget, so it is not used.

There is no single physical floor for an ensemble; the peer ratio and the robust accuracies
(lower is a stronger attack) are the figures to read.

    python benchmarks/bench_autoattack.py --batch 32 --repeats 1
"""

from __future__ import annotations

import argparse
import statistics

import torch
from common import (
    add_device_arguments,
    describe_device,
    device_from_arguments,
    paired_ratio,
    timeit_interleaved,
)

from robustart.attacks import AutoAttack
from robustart.attacks.ensemble import VERSIONS
from robustart.data.digits import load_digits_tensors
from robustart.models import create_model

OURS = "robustart AutoAttack standard"
OURS_NO_FAB = "robustart, without FAB-T"
PEER = "torchattacks members, same budget"


def torchattacks_standard(model: torch.nn.Module, eps: float, steps: int):
    """torchattacks' standard members at the published budget, or ``None`` if not installed."""
    try:
        import torchattacks
    except ImportError:
        return None
    members = [
        torchattacks.APGD(model, eps=eps, steps=steps, loss="ce", n_restarts=1, seed=0),
        torchattacks.APGDT(model, eps=eps, steps=steps, n_classes=10, n_restarts=1, seed=0),
        torchattacks.FAB(
            model, eps=eps, steps=steps, multi_targeted=True, n_classes=10, n_restarts=1, seed=0
        ),
        torchattacks.Square(model, eps=eps, n_queries=5000, n_restarts=1, seed=0),
    ]
    return torchattacks.MultiAttack(members)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="zoo:digits_resnet20_pgd_at")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--eps", type=float, default=8 / 255)
    parser.add_argument("--steps", type=int, default=100, help="APGD, APGD-T and FAB-T iterations")
    add_device_arguments(parser, repeats=1)
    args = parser.parse_args()
    device = device_from_arguments(args)
    images, labels = load_digits_tensors(32)
    images, labels = images[-args.batch :].to(device), labels[-args.batch :].to(device)
    model = create_model("resnet20", 10, mean=(0.3,) * 3, std=(0.33,) * 3, weights=args.weights)
    model = model.to(device).eval()

    def members(with_fab: bool) -> list[dict]:
        specs = [dict(spec) for spec in VERSIONS["standard"]]
        for spec in specs:
            if spec["name"] != "square":
                spec["steps"] = args.steps
        return [s for s in specs if with_fab or s["name"] != "fab_t"]

    ours = AutoAttack(eps=args.eps, attacks=members(with_fab=True))
    ours_no_fab = AutoAttack(eps=args.eps, attacks=members(with_fab=False))
    generator = lambda: torch.Generator(device).manual_seed(0)  # noqa: E731
    results: dict[str, torch.Tensor] = {}

    def run(name, attack) -> None:
        results[name] = attack()

    attacks = {
        OURS: lambda: ours(model, images, labels, generator=generator()),
        OURS_NO_FAB: lambda: ours_no_fab(model, images, labels, generator=generator()),
    }
    peer = torchattacks_standard(model, args.eps, args.steps)
    if peer is not None:
        attacks[PEER] = lambda: peer(images, labels)
    methods = {name: (lambda n=name, a=attack: run(n, a)) for name, attack in attacks.items()}
    times = timeit_interleaved(methods, device, args.repeats, warmup=0)

    with torch.no_grad():
        clean = (model(images).argmax(1) == labels).float().mean().item()
        accuracy = {
            name: (model(x).argmax(1) == labels).float().mean().item()
            for name, x in results.items()
        }
    print(
        f"AutoAttack standard L∞ ε={args.eps:.4f} ({args.steps} iterations, Square 5000 "
        f"queries), ResNet-20 ({args.weights}), {args.batch} digits (clean {100 * clean:.1f} %), "
        f"{describe_device(device)}, {args.repeats} interleaved round(s)"
    )
    reference = PEER if PEER in times else OURS
    print(f"| method | median time (s) | ÷ {reference} | robust acc |")
    print("|---|---|---|---|")
    for name, t in times.items():
        print(
            f"| {name} | {statistics.median(t):.1f} | {paired_ratio(t, times[reference]):.3f} "
            f"| {100 * accuracy[name]:.1f} % |"
        )
    print(f"FAB-T adds ×{paired_ratio(times[OURS], times[OURS_NO_FAB]):.3f} to robustart's time.")


if __name__ == "__main__":
    main()
