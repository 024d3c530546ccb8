"""Time per training step: ClassificationTask through Lightning vs a plain PyTorch loop.

Both train the same model on the same in-memory batch with the same optimiser and per-step
LR schedule; the plain loop is the floor. Lightning's time per step is measured between
batch starts after a warm-up, so set-up and validation are excluded. The task is timed twice:
bare, and with the DivergenceGuard that ``robustart fit`` attaches (a gradient-norm and loss
check per step, one host synchronisation each).

    python benchmarks/bench_train_step.py --model resnet20 --batch 128 --steps 30
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from common import describe_device, pick_device, sync
from lightning.pytorch import Callback, Trainer
from torch.utils.data import DataLoader, Dataset

from robustart.callbacks import DivergenceGuard
from robustart.tasks import ClassificationTask
from robustart.tasks.optim import build_optimizer, lr_multiplier


class RepeatedBatch(Dataset):
    """The same batch ``length`` times (no data-loading cost in either loop)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, length: int) -> None:
        self.images, self.labels, self.length = images, labels, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        return self.images, self.labels


class StepTimer(Callback):
    def __init__(self, device: torch.device) -> None:
        self.device, self.starts = device, []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        sync(self.device)
        self.starts.append(time.perf_counter())


def lightning_step_time(model_name, images, labels, steps, warmup, device, guard=False) -> float:
    torch.manual_seed(0)
    task = ClassificationTask(model=model_name, num_classes=10)
    loader = DataLoader(
        RepeatedBatch(images.cpu(), labels.cpu(), steps + warmup + 1), batch_size=None
    )
    timer = StepTimer(device)
    trainer = Trainer(
        accelerator=device.type,
        devices=1,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer, DivergenceGuard()] if guard else [timer],
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    trainer.fit(task, train_dataloaders=loader)
    gaps = [b - a for a, b in zip(timer.starts[warmup:], timer.starts[warmup + 1 :])]
    return statistics.median(gaps)


def plain_step_time(model_name, images, labels, steps, warmup, device) -> float:
    torch.manual_seed(0)
    model = ClassificationTask(model=model_name, num_classes=10).model.to(device).train()
    optimizer = build_optimizer("sgd", model, 0.1, 0.9, 5e-4, False)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_multiplier("cosine", steps))
    images, labels = images.to(device), labels.to(device)
    times = []
    for i in range(steps + warmup):
        sync(device)
        start = time.perf_counter()
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5, help="alternating task fits per variant")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    images = torch.rand(args.batch, 3, args.size, args.size)
    labels = torch.randint(0, 10, (args.batch,))
    plain = plain_step_time(args.model, images, labels, args.steps, args.warmup, device)
    # bare and guarded fits alternate, round after round, so a slow spell of a shared machine
    # hits both alike; the guard's cost is the median of the per-round ratios
    bare_times, guard_times = [], []
    for _ in range(args.rounds):
        for guard, times in ((False, bare_times), (True, guard_times)):
            times.append(
                lightning_step_time(
                    args.model, images, labels, args.steps, args.warmup, device, guard=guard
                )
            )
    lightning, guarded = statistics.median(bare_times), statistics.median(guard_times)
    guard_ratio = statistics.median(g / b for g, b in zip(guard_times, bare_times))
    print(
        f"Training step, {args.model}, batch {args.batch}×3×{args.size}×{args.size}, "
        f"{describe_device(device)}, median of {args.steps} steps"
    )
    print("| loop | time per step (ms) | ratio to plain loop |")
    print("|---|---|---|")
    print(f"| plain PyTorch | {1000 * plain:.1f} | 1.000 |")
    print(
        f"| robustart ClassificationTask (Lightning) | {1000 * lightning:.1f} | "
        f"{lightning / plain:.3f} |"
    )
    print(
        f"| ... + DivergenceGuard (robustart fit's default) | {1000 * guarded:.1f} | "
        f"{guarded / plain:.3f} (guard / bare task, paired over {args.rounds} rounds: "
        f"{guard_ratio:.3f}) |"
    )


if __name__ == "__main__":
    main()
