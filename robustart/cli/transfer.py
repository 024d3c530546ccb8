"""``robustart transfer``: a transfer-attack matrix of checkpoints and zoo models.

Example::

    robustart transfer zoo:digits_resnet20_standard zoo:digits_resnet20_pgd_at \\
        runs/digits_mixup/version_0/checkpoints/last.ckpt \\
        --attack pgd --eps 8/255 --data digits --num-images 250 --output runs/transfer

crafts adversarial examples on every model and evaluates them on every model
(:func:`robustart.evaluation.evaluate_transfer`), shows a progress bar over source models ×
batches, prints the matrix, writes ``transfer.{md,csv,json}`` and the heat map ``transfer.png``
(all atomically) and ends with ``robustart: results in <output>``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import torch
import yaml

from robustart.attacks import create_attack
from robustart.cli.options import (
    add_data_options,
    add_model_options,
    add_run_options,
    num_images_request,
)
from robustart.data.named import create_datamodule
from robustart.errors import ConfigError, EmptyInputError
from robustart.evaluation.benchmark import evaluation_subset
from robustart.evaluation.transfer import evaluate_transfer
from robustart.models.loading import display_names, load_models, resolve_device
from robustart.utils import CommandParser, announce_results, check_output_dir


def _attack_arg(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` of ``--attack-arg``, the value parsed as YAML."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or type(err).__name__
        raise argparse.ArgumentTypeError(
            f"the value of {text!r} is not valid YAML ({problem}); quote it or write a list as "
            "[1, 2]"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``robustart transfer``."""
    parser = CommandParser(
        prog="robustart transfer",
        description=(
            "Transfer attack matrix: craft adversarial examples on each model (source) and "
            "evaluate them on every model (target). The diagonal is white-box robust accuracy; "
            "off-diagonal entries show how well the examples transfer. Prints the matrix "
            "(accuracy in %), writes transfer.{md,csv,json} and the heat map transfer.png to "
            "--output and shows a progress bar over source models × batches."
        ),
    )
    add_model_options(parser)
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
    add_data_options(parser, num_images=256, seed_help="and of the attack's random starts")
    add_run_options(
        parser,
        batch_size=256,
        batch_help="images per attack call",
        output="runs/transfer",
        output_help="folder for transfer.{md,csv,json} and transfer.png",
    )
    return parser


def main(argv: list[str]) -> dict[str, Any]:
    """Run ``robustart transfer`` with command-line arguments ``argv``; returns the summary
    written to ``transfer.json``."""
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from robustart.plots import save_transfer_heatmap
    from robustart.reporting import csv_table, format_table, markdown_table
    from robustart.utils import atomic_write_json, atomic_write_text, format_eps

    args = build_parser().parse_args(argv)
    check_output_dir(args.output, "--output")
    names = display_names(args.models, args.names)
    settings: dict[str, Any] = {}
    for key, value in args.attack_arg:
        if key in settings or key in ("eps", "norm") or (key == "steps" and args.steps is not None):
            option = {"eps": "--eps", "norm": "--norm", "steps": "--steps"}.get(key)
            twice = f"by {option} and --attack-arg" if option else "twice with --attack-arg"
            raise ConfigError(f"the attack setting {key!r} is given {twice}; give it once")
        settings[key] = value
    if args.steps is not None:
        settings["steps"] = args.steps
    attack = create_attack(args.attack, eps=args.eps, norm=args.norm, **settings)
    eps_text = format_eps(attack.eps, args.norm)
    device = resolve_device(args.device)

    data = create_datamodule(args.data, args.data_root)
    models = load_models(
        dict(zip(names, args.models)),
        data,
        args.data,
        "pass --data {trained_on}",
        arch=args.arch,
        device=device,
    )
    num_images, whole_split_if_smaller = num_images_request(args)
    subset = evaluation_subset(data, args.split, num_images, args.seed, whole_split_if_smaller)
    if len(subset) == 0:
        raise EmptyInputError(f"the {args.data} {args.split} split has no images")
    loader = DataLoader(subset, batch_size=len(subset), shuffle=False, num_workers=args.num_workers)
    images, labels = next(iter(loader))
    images, labels = images.float().to(device), torch.as_tensor(labels).to(device)

    print(
        f"robustart transfer: {attack.label} at eps={eps_text} on "
        f"{len(images)} {args.data} {args.split} images, {len(models)} models",
        file=sys.stderr,
    )
    with tqdm(
        desc="transfer", unit="batch", disable=args.no_progress, file=sys.stderr, dynamic_ncols=True
    ) as bar:
        result = evaluate_transfer(
            models, images, labels, attack, seed=args.seed, batch_size=args.batch_size, progress=bar
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
        title=f"{attack.label} eps={eps_text}, {result.num_images} images",
    )
    print(f"Wrote {out / 'transfer.md'}, transfer.csv, transfer.json and {plot}")
    announce_results(out)
    return summary
