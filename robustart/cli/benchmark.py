"""``robustart benchmark MODEL... --suite NAME``: every model through one suite, one table.

See :func:`robustart.evaluation.benchmark.benchmark` for what runs and how results are stored
and resumed. With ``--devices N`` (or under ``torchrun``/SLURM) the images of each item are
sharded over DDP processes through Lightning Fabric; the numbers are those of one device.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from robustart.cli.options import (
    add_data_options,
    add_model_options,
    add_run_options,
    num_images_request,
)
from robustart.utils import CommandParser, check_output_dir

DESCRIPTION = """\
Evaluate models on one robustness suite: attacks at each budget, corruptions generated on the
fly, system noise and on-disk shift sets (CIFAR-10-C, ImageNet-A, ...), as the suite lists them.
Each (model, suite item) result is stored in OUTPUT/items/ as soon as it finishes, keyed by the
model (weights, spec and code) and every setting; running the same command again resumes, and a
changed setting or model recomputes only what it affects. Writes OUTPUT/benchmark.json (every
setting, library version and result), leaderboard.md/.csv and the plots, and prints the
leaderboard.

Models: zoo:NAME, a Lightning checkpoint of `robustart fit`, a weights file with --arch,
timm:NAME@FILE, torchvision:NAME@FILE, or package.module:factory[@FILE] (a function returning an
nn.Module that takes images in [0, 1] and normalises them itself).

Examples:
  robustart benchmark zoo:digits_resnet20_standard zoo:digits_resnet20_pgd_at --suite quick
  robustart benchmark weights.pt --arch resnet20 --data cifar10 --data-root data --suite quick
  torchrun --nproc_per_node 4 -m robustart benchmark run.ckpt --suite autoattack_linf
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``robustart benchmark``."""
    from robustart.evaluation.suite import suite_names

    parser = CommandParser(
        prog="robustart benchmark",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_options(parser, "they must predict the data's classes")
    parser.add_argument(
        "--suite",
        default="quick",
        help=f"a shipped suite ({', '.join(suite_names())}) or a YAML file (default: %(default)s)",
    )
    add_data_options(parser, num_images=1000)
    add_run_options(
        parser,
        batch_size=128,
        batch_help="images per chunk; part of a result's identity, since randomness is seeded "
        "per chunk",
        output="benchmark_results",
        output_help="results folder; results stored there by an earlier run are reused",
    )
    parser.add_argument(
        "--devices",
        type=int,
        default=1,
        help="DDP processes on this machine; each evaluates a share of the images, the "
        "numbers are those of one device (default: %(default)s)",
    )
    parser.add_argument(
        "--num-nodes", type=int, default=1, help="machines of a DDP run (default: %(default)s)"
    )
    return parser


def main(argv: list[str]) -> dict[str, Any]:
    """Run ``robustart benchmark`` with the arguments after the subcommand; returns the JSON
    of ``benchmark.json``."""
    from robustart.errors import ConfigError
    from robustart.evaluation.benchmark import benchmark, load_benchmark_suite
    from robustart.models.loading import display_names

    args = build_parser().parse_args(argv)
    for flag in ("devices", "num_nodes"):
        if getattr(args, flag) < 1:
            raise ConfigError(f"--{flag.replace('_', '-')} must be >= 1")
    output = check_output_dir(args.output)
    suite = load_benchmark_suite(args.suite)  # checked before processes start
    names = display_names(args.models, args.names)
    num_images, whole_split_if_smaller = num_images_request(args)
    device = _launch(args)
    result = benchmark(
        dict(zip(names, args.models)),
        args.data,
        suite,
        data_root=args.data_root,
        split=args.split,
        num_images=num_images,
        whole_split_if_smaller=whole_split_if_smaller,
        batch_size=args.batch_size,
        seed=args.seed,
        device=device,
        output=output,
        arch=args.arch,
        num_workers=args.num_workers,
        progress=not args.no_progress,
    )
    from robustart.evaluation.loop import distributed_rank_and_size
    from robustart.utils import announce_results

    if distributed_rank_and_size()[0] == 0:
        print(result.leaderboard().text())
        print_sanity_warnings(result.sanity_warnings())
        for note in result.notes:
            print(f"note: {note}")
        total = sum(len(m.items) for m in result.models.values())
        if result.reused:
            print(f"reused {len(result.reused)} of {total} results stored in {output}/items")
        announce_results(output)
    return result.to_dict()


def print_sanity_warnings(warnings: list[str]) -> None:
    """Print the sanity warnings of a benchmark's results (possible gradient masking, a weak
    attack, non-finite input gradients) to stderr, one ``robustart: warning:`` line each."""
    for warning in warnings:
        print(f"robustart: warning: {warning}", file=sys.stderr)


def _launch(args: argparse.Namespace) -> str:
    """Start DDP through Lightning Fabric when asked (``--devices``/``--num-nodes``) or when
    launched by torchrun or SLURM; returns the device this process evaluates on."""
    distributed = (
        args.devices > 1 or args.num_nodes > 1 or int(os.environ.get("WORLD_SIZE", "1")) > 1
    )
    if not distributed:
        return args.device
    from lightning.fabric import Fabric

    accelerator = "cpu" if args.device == "cpu" else "auto"
    fabric = Fabric(
        accelerator=accelerator, devices=args.devices, num_nodes=args.num_nodes, strategy="ddp"
    )
    fabric.launch()
    return str(fabric.device)
