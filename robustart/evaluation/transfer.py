"""Transfer attacks: craft adversarial examples on a source model, evaluate them on targets.

Su et al. (ECCV 2018) report the full source × target matrix of accuracies. The diagonal is the
white-box robust accuracy; off-diagonal entries measure how well the examples transfer. A
black-box (transferred) attack that beats the white-box one on the same model is a sign of
gradient masking.

Command line::

    robustart transfer zoo:digits_resnet20_standard zoo:digits_resnet20_pgd_at \\
        runs/digits_mixup/version_0/checkpoints/last.ckpt \\
        --attack pgd --eps 8/255 --data digits --num-images 250 --output runs/transfer

prints the matrix and writes ``transfer.{md,csv,json}`` and ``transfer.png`` (a heat map),
all atomically.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import yaml
from torch import Tensor, nn

from robustart.attacks import Attack, create_attack
from robustart.attacks.base import Model
from robustart.errors import ConfigError, EmptyInputError
from robustart.models.loading import (
    display_names,
    load_model,
    resolve_device,
)
from robustart.utils import (
    CommandParser,
    check_finite_logits,
    check_images,
    check_labels,
    check_output_dir,
    make_generator,
    preserve_mode,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from robustart.data import RobustartDataModule

__all__ = [
    "TransferResult",
    "evaluate_transfer",
    "load_model",
    "save_transfer_heatmap",
    "transfer_heatmap_figure",
    "transfer_main",
    "transfer_matrix",
]


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
    if isinstance(model, nn.Module):
        with preserve_mode(model, False):
            logits = model(images)
    else:
        logits = model(images)
    check_finite_logits(logits, f"the logits of {what}")
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
    for s, (source_name, source) in enumerate(sources.items()):
        generator = make_generator(seed, images.device)
        for start in range(0, n, step):
            x, y = images[start : start + step], labels[start : start + step]
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
        >>> attack = create_attack("pgd", eps="8/255", steps=10)
        >>> matrix = transfer_matrix({"a": model_a, "b": model_b}, x, y, attack)  # doctest: +SKIP
        >>> matrix.shape  # doctest: +SKIP
        torch.Size([2, 2])
    """
    return evaluate_transfer(
        models, images, labels, attack, targets=targets, seed=seed, batch_size=batch_size
    ).matrix


# ----------------------------------------------------------------------------- heat map
def transfer_heatmap_figure(result: TransferResult, title: str = "") -> Figure:
    """Heat map of the transfer matrix (accuracy %, 0–100 colour scale), diagonal outlined.

    Args:
        result: A :class:`TransferResult`.
        title: Figure title.
    """
    from robustart.plots import _pyplot, draw_accuracy_grid

    plt = _pyplot()
    s, t = len(result.sources), len(result.targets)
    fig, ax = plt.subplots(figsize=(2.2 + 0.9 * t, 1.4 + 0.55 * (s + 1)), layout="constrained")
    grid = 100.0 * torch.cat([result.clean[None], result.matrix]).numpy()
    image = draw_accuracy_grid(ax, grid, decimals=1, fontsize=8)
    for i, source in enumerate(result.sources):
        if source in result.targets:
            j = result.targets.index(source)
            ax.add_patch(
                plt.Rectangle((j - 0.5, i + 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.5)
            )
    ax.axhline(0.5, color="white", linewidth=2)
    ax.set_xticks(range(t), result.targets, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(s + 1), ["clean", *result.sources], fontsize=8)
    ax.set_xlabel("evaluated on (target)")
    ax.set_ylabel("crafted on (source)")
    fig.colorbar(image, ax=ax, label="accuracy (%)", shrink=0.9)
    ax.set_title(title or f"transfer ({result.num_images} images); white-box outlined", fontsize=9)
    return fig


def save_transfer_heatmap(result: TransferResult, path: str | Path, title: str = "") -> Path:
    """Write :func:`transfer_heatmap_figure` as a PNG atomically."""
    from robustart.plots import save_figure

    return save_figure(transfer_heatmap_figure(result, title), path)


# ----------------------------------------------------------------------------- loading
#: Datasets the command line can evaluate on.
DATASETS = ("digits", "cifar10", "cifar100")


def _datamodule(name: str, root: str) -> RobustartDataModule:
    from robustart.data import CIFAR10DataModule, CIFAR100DataModule, DigitsDataModule

    if name == "digits":
        return DigitsDataModule(augment=False)
    if name == "cifar10":
        return CIFAR10DataModule(root=root, augment=False)
    if name == "cifar100":
        return CIFAR100DataModule(root=root, augment=False)
    raise ConfigError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


# ----------------------------------------------------------------------------- command line
def _attack_arg(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), yaml.safe_load(value)


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="robustart transfer",
        description=(
            "Transfer attack matrix: craft adversarial examples on each model (source) and "
            "evaluate them on every model (target). The diagonal is white-box robust accuracy; "
            "off-diagonal entries show how well the examples transfer. Prints the matrix "
            "(accuracy in %) and writes transfer.{md,csv,json} and the heat map transfer.png to "
            "--output."
        ),
    )
    parser.add_argument(
        "models",
        nargs="+",
        metavar="CKPT_OR_ZOO",
        help="models to compare: Lightning checkpoints written by `robustart fit` (loaded with "
        "weights_only=True, architecture checked) or model-zoo entries zoo:<name> (see "
        "model_zoo/zoo.yaml)",
    )
    parser.add_argument(
        "--names",
        default=None,
        help="comma-separated display names, one per model (default: the zoo name, or the "
        "checkpoint's run folder and file stem)",
    )
    parser.add_argument(
        "--attack",
        default="pgd",
        help="registered attack crafting the examples: pgd, fgsm, mifgsm, apgd, apgd_t, "
        "square, cw, autoattack (default: %(default)s)",
    )
    parser.add_argument(
        "--eps",
        default="8/255",
        help="perturbation budget, a number or a fraction such as 8/255 (default: %(default)s)",
    )
    parser.add_argument(
        "--norm",
        default="linf",
        help="threat model: linf, l2 or l1, as supported by the attack (default: %(default)s)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="iterations of an iterative attack (default: the attack's own, e.g. 10 for pgd)",
    )
    parser.add_argument(
        "--attack-arg",
        action="append",
        default=[],
        type=_attack_arg,
        metavar="KEY=VALUE",
        help="any other attack setting, value parsed as YAML (e.g. restarts=2, loss=dlr); "
        "may be repeated",
    )
    parser.add_argument(
        "--data",
        choices=DATASETS,
        default="digits",
        help="evaluation dataset; the models must have its number of classes "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--data-root",
        default="data",
        help="folder holding the CIFAR data (cifar-10-batches-py/ or cifar-100-python/; "
        "unused for digits) (default: %(default)s)",
    )
    parser.add_argument(
        "--split",
        choices=["test", "val"],
        default="test",
        help="split the images come from (default: %(default)s)",
    )
    parser.add_argument(
        "--num-images",
        type=int,
        default=256,
        help="size of the fixed, seeded subset of the split (default: %(default)s; 0 = all)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=256,
        help="images per attack call (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the image subset and of the attack's random starts (default: %(default)s)",
    )
    parser.add_argument(
        "--device",
        default="auto",
        help="where to run: auto (cuda if available), cpu, cuda, cuda:1, ... "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("runs/transfer"),
        help="folder for transfer.{md,csv,json} and transfer.png (default: %(default)s)",
    )
    return parser


def transfer_main(argv: list[str]) -> dict[str, Any]:
    """Run ``robustart transfer`` with command-line arguments ``argv``; returns the summary."""
    from torch.utils.data import DataLoader

    from robustart.reporting import csv_table, format_table, markdown_table
    from robustart.utils import atomic_write_json, atomic_write_text, format_eps

    args = build_parser().parse_args(argv)
    check_output_dir(args.output, "--output")
    if args.num_images < 0:
        raise ConfigError(f"--num-images must be >= 0, got {args.num_images}")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    names = display_names(args.models, args.names)
    settings = dict(args.attack_arg)
    if args.steps is not None:
        settings["steps"] = args.steps
    attack = create_attack(args.attack, eps=args.eps, norm=args.norm, **settings)
    eps = attack.eps
    device = resolve_device(args.device)

    data = _datamodule(args.data, args.data_root)
    models = {
        name: load_model(
            spec,
            data.num_classes,
            data.in_channels,
            data.mean,
            data.std,
            args.data,
            dataset_hint="pass --data {trained_on}",
        ).to(device)
        for name, spec in zip(names, args.models)
    }
    subset = data.robustness_subset(args.split, args.num_images or None, args.seed)
    if len(subset) == 0:
        raise EmptyInputError(f"the {args.data} {args.split} split has no images")
    loader = DataLoader(subset, batch_size=len(subset), shuffle=False)
    images, labels = next(iter(loader))
    images, labels = images.float().to(device), torch.as_tensor(labels).to(device)

    print(
        f"robustart transfer: {attack.label} at eps={format_eps(eps, args.norm)} on "
        f"{len(images)} {args.data} {args.split} images, {len(models)} models",
        file=sys.stderr,
    )
    result = evaluate_transfer(
        models, images, labels, attack, seed=args.seed, batch_size=args.batch_size
    )
    headers, rows = result.table()
    settings_text = ", ".join(
        f"{k}={format_eps(v, attack.norm) if k == 'eps' else v}"
        for k, v in attack.config.items()
        if k != "attack"
    )
    caption = (
        f"Transfer accuracy (%): rows craft {attack.name} examples ({settings_text}), columns "
        f"evaluate them; the diagonal is white-box. {result.num_images} {args.data} "
        f"{args.split} images, seed {args.seed}."
    )
    print(f"\n{caption}\n{format_table(headers, rows)}\n")

    out = args.output
    atomic_write_text(out / "transfer.md", f"{caption}\n\n{markdown_table(headers, rows)}")
    atomic_write_text(out / "transfer.csv", csv_table(headers, rows))
    summary = {
        **result.to_dict(),
        "models": dict(zip(names, args.models)),
        "data": {"name": args.data, "split": args.split, "num_images": result.num_images},
    }
    atomic_write_json(out / "transfer.json", summary)
    plot = save_transfer_heatmap(
        result,
        out / "transfer.png",
        title=f"{attack.label} eps={format_eps(eps, args.norm)}, {result.num_images} images",
    )
    print(f"Wrote {out / 'transfer.md'}, transfer.csv, transfer.json and {plot}")
    return summary
