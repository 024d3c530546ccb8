"""``robustart shift``: evaluate models on distribution-shift, corruption, perturbation and
system-noise datasets kept on disk, and print one table.

Command line::

    robustart shift runs/cifar_at/version_0/checkpoints/last.ckpt runs/cifar_std/.../last.ckpt \\
        --benchmark cifar10-c --data-root data/CIFAR-10-C --clean-root data --num-images 500 \\
        --output runs/shift/cifar10-c

prints a table with the benchmark's headline metrics per model, shows a progress bar over the
batches, writes ``results.{md,csv,json}`` and, where a picture helps, a plot (corruption ×
severity heat map, bar chart per variant or perturbation) to ``--output``, all atomically, and
ends with the line ``robustart: results in <output>``. The benchmarks and their metrics live in
:mod:`robustart.evaluation.benchmarks`.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import Any

from robustart.cli.options import add_model_options, add_run_options
from robustart.errors import ConfigError
from robustart.evaluation.benchmarks import (
    ALEXNET,
    BENCHMARKS,
    Benchmark,
    ShiftSettings,
    get_benchmark,
)
from robustart.models.loading import (
    display_names,
    load_models,
    model_names,
    resolve_device,
)
from robustart.utils import CommandParser, announce_results

__all__ = ["build_parser", "main"]

#: Settings whose option is refused by benchmarks that do not read them: field → option.
OPTIONAL_SETTINGS = {
    "clean_root": "--clean-root",
    "subsets": "--subsets",
    "severities": "--severities",
    "baseline": "--baseline",
    "jpeg_qualities": "--jpeg-qualities",
    "crop_size": "--crop-size",
    "folder_labels": "--folder-labels",
    "allow_missing_classes": "--allow-missing-classes",
}


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def _name_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated names")
    return names


def _benchmark_list() -> str:
    """The ``--help`` epilog: every benchmark, its metrics and layouts, and examples."""
    indent = " " * 18

    def wrap(text: str, first: str) -> str:
        return textwrap.fill(text, 96, initial_indent=first, subsequent_indent=indent)

    lines = ["benchmarks (--benchmark NAME):"]
    for name in BENCHMARKS:
        benchmark = BENCHMARKS.get(name)
        lines.append(wrap(benchmark.summary, f"  {name:<16}"))
        lines.append(wrap(f"--data-root holds {benchmark.layout}", indent))
        if benchmark.clean_layout is not None:
            lines.append(wrap(f"--clean-root holds {benchmark.clean_layout}", indent))
    lines += [
        "",
        "examples:",
        "  robustart shift CKPT --benchmark cifar10-c --data-root data/CIFAR-10-C "
        "--clean-root data",
        "  robustart shift A.ckpt B.ckpt --benchmark cifar10-p --data-root data/CIFAR-10-P "
        "--baseline A.ckpt",
        "  robustart shift CKPT --benchmark imagenet-r --data-root data/imagenet-r "
        "--num-images 2000 --device cuda",
        "  robustart shift CKPT --benchmark imagenet-s --data-root data/val_subset "
        "--batch-size 512",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``robustart shift``."""
    parser = CommandParser(
        prog="robustart shift",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill(
            "Evaluate one or more models on a distribution-shift, corruption, perturbation or "
            "system-noise benchmark kept on disk (nothing is downloaded). Prints one row per "
            "model with the benchmark's headline metrics (accuracy in %), shows a progress bar "
            "over the batches, and writes results.md, results.csv, results.json and, for -C, "
            "-P and system-noise benchmarks, a plot to --output.",
            width=90,
        ),
        epilog=_benchmark_list(),
    )
    add_model_options(
        parser,
        "they must predict the benchmark's classes (CIFAR-10: 10, CIFAR-100: 100, ImageNet: 1000)",
    )
    parser.add_argument(
        "--benchmark",
        required=True,
        metavar="NAME",
        help="benchmark to run, one of the names listed below (case, '-', '_' and '.' are ignored)",
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        required=True,
        metavar="DIR",
        help="folder holding the benchmark's files, in the layout listed below",
    )
    parser.add_argument(
        "--clean-root",
        type=Path,
        default=None,
        metavar="DIR",
        help="clean counterpart: for -C benchmarks the clean test set (CIFAR: the folder holding "
        "cifar-10-batches-py/ or cifar-100-python/; ImageNet-C: ImageNet val <wnid>/*.JPEG) to "
        "report clean accuracy and relative mCE; for imagenet-o the ImageNet val folder "
        "(required: the in-distribution images)",
    )
    parser.add_argument(
        "--baseline",
        default=None,
        metavar="MODEL",
        help="reference that normalised metrics divide by: one of the models (its display name "
        "or MODEL spec; added if not listed) for mCE on -C and mFR/mT5D on -P, or 'alexnet' "
        "(ImageNet-C's published AlexNet errors; the default for imagenet-c), or 'none'",
    )
    parser.add_argument(
        "--subsets",
        type=_name_list,
        default=None,
        metavar="A,B,...",
        help="-C: corruptions to evaluate (default: the 15 benchmark corruptions; 'all': every "
        "one found); -P: perturbation files to evaluate (default: all found)",
    )
    parser.add_argument(
        "--severities",
        type=_int_list,
        default=None,
        metavar="1,2,...",
        help="-C: corruption severities to evaluate (default: 1,2,3,4,5)",
    )
    parser.add_argument(
        "--jpeg-qualities",
        type=_int_list,
        default=None,
        metavar="Q,Q,...",
        help="imagenet-s-jpeg: JPEG qualities (1-100) of the sweep (default: 95,85,75,50,30,10)",
    )
    parser.add_argument(
        "--crop-size",
        type=int,
        default=None,
        metavar="PX",
        help="imagenet-s, imagenet-s-jpeg: model input side; images are resized to "
        "round(8/7 · PX) and centre-cropped (default: 224)",
    )
    parser.add_argument(
        "--folder-labels",
        choices=["imagenet", "sorted"],
        default=None,
        help="imagenet-s, imagenet-s-jpeg: 'imagenet': class folders are wnids, labelled with "
        "their ImageNet-1k index (1000-class models); 'sorted': labelled by position in the "
        "sorted folder list, as ImageFolder does (models with one class per folder) "
        "(default: imagenet)",
    )
    parser.add_argument(
        "--allow-missing-classes",
        action="store_true",
        default=None,
        help="imagenet-a, -r, -o, -sketch, -v2: score a copy that lacks some of the set's class "
        "folders (refused by default: a partial copy is not comparable with published numbers); "
        "the caption and results say how many classes were scored",
    )
    add_run_options(
        parser,
        batch_size=128,
        batch_help="images per forward pass (sequences for -P)",
        output=None,
        output_help="folder for results.{md,csv,json} and the plot; runs/shift/<benchmark> when "
        "not given",
    )
    parser.add_argument(
        "--num-images",
        type=int,
        default=None,
        metavar="N",
        help="evaluate at most N evenly spaced images of each subset (each corruption × "
        "severity, the clean set, each perturbation's sequences) for a quick run; a smaller "
        "subset is evaluated whole, and the results give the number of images of each "
        "(default: all)",
    )
    return parser


def _check_options(benchmark: Benchmark, args: argparse.Namespace) -> None:
    refused = [
        option
        for dest, option in OPTIONAL_SETTINGS.items()
        if getattr(args, dest) is not None and dest not in benchmark.options
    ]
    if refused:
        accepted = [OPTIONAL_SETTINGS[d] for d in OPTIONAL_SETTINGS if d in benchmark.options]
        raise ConfigError(
            f"{', '.join(refused)} does not apply to {benchmark.name}; its options besides the "
            f"common ones: {', '.join(accepted) or 'none'}"
        )
    for option, value in (
        ("--batch-size", args.batch_size),
        ("--num-images", args.num_images),
        ("--crop-size", args.crop_size),
    ):
        if value is not None and value < 1:
            raise ConfigError(f"{option} must be >= 1, got {value}")
    if args.num_workers < 0:
        raise ConfigError(f"--num-workers must be >= 0, got {args.num_workers}")
    if args.subsets is not None and len(set(args.subsets)) != len(args.subsets):
        repeated = sorted({s for s in args.subsets if args.subsets.count(s) > 1})
        raise ConfigError(
            f"--subsets lists {', '.join(repeated)} more than once; give each subset once"
        )
    for option, values, low, high in (
        ("--severities", args.severities, 1, 5),
        ("--jpeg-qualities", args.jpeg_qualities, 1, 100),
    ):
        if values is None:
            continue
        outside = [v for v in values if not low <= v <= high]
        if outside:
            raise ConfigError(f"{option} must lie in [{low}, {high}], got {outside}")
        if len(set(values)) != len(values):
            raise ConfigError(f"{option} lists a value twice: {','.join(map(str, values))}")


def _resolve_baseline(
    benchmark: Benchmark, baseline: str | None, specs: list[str], names: list[str]
) -> str | None:
    """The baseline's display name (or ``alexnet`` / ``None``); a model spec that is not among
    ``specs`` is appended to ``specs`` and ``names``."""
    if baseline is None:
        baseline = benchmark.default_baseline
    if baseline is None or baseline.lower() == "none":
        return None
    if baseline.lower() == ALEXNET and baseline not in names:
        benchmark.check_baseline(ALEXNET)
        return ALEXNET
    if baseline in names:
        return baseline
    if baseline in specs:
        return names[specs.index(baseline)]
    if ":" not in baseline and not Path(baseline).is_file():  # not a spec (zoo:, timm:, ...)
        raise ConfigError(
            f"--baseline {baseline!r} is none of the models ({', '.join(names)}), nor a "
            "weights file or a model spec (zoo:NAME, timm:NAME@FILE, ...)"
        )
    base = name = model_names([baseline])[0]
    k = 2
    while name in names:
        name, k = f"{base}#{k}", k + 1
    specs.append(baseline)
    names.append(name)
    return name


def main(argv: list[str]) -> dict[str, Any]:
    """Run ``robustart shift`` with command-line arguments ``argv``; returns the summary that
    is also written to ``results.json``."""
    from tqdm.auto import tqdm

    from robustart.utils import atomic_write_json, atomic_write_text, check_output_dir

    args = build_parser().parse_args(argv)
    benchmark = get_benchmark(args.benchmark)
    out = check_output_dir(args.output or Path("runs/shift") / benchmark.name, "--output")
    _check_options(benchmark, args)
    specs = list(args.models)
    names = display_names(specs, args.names)
    baseline = _resolve_baseline(benchmark, args.baseline, specs, names)
    settings = ShiftSettings(
        root=args.data_root,
        clean_root=args.clean_root,
        subsets=args.subsets,
        batch_size=args.batch_size,
        num_images=args.num_images,
        device=resolve_device(args.device),
        num_workers=args.num_workers,
    )
    for field in (
        "severities",
        "jpeg_qualities",
        "crop_size",
        "folder_labels",
        "allow_missing_classes",
    ):
        if getattr(args, field) is not None:
            setattr(settings, field, getattr(args, field))

    # data first, then every model: input errors surface before the long evaluation
    benchmark.check_root(settings)
    evaluate = benchmark.prepare(settings)
    data = benchmark.model_data(settings)
    hint = f"the {benchmark.name} benchmark evaluates {data.dataset} models"
    models = load_models(
        dict(zip(names, specs)), data, data.dataset, hint, arch=args.arch, device=settings.device
    )
    limit = f", at most {args.num_images} images per subset" if args.num_images else ""
    print(
        f"robustart shift: {benchmark.title} ({benchmark.name}) from {args.data_root}, "
        f"{len(models)} models on {settings.device}{limit}",
        file=sys.stderr,
    )
    results: dict[str, dict[str, Any]] = {}
    for name, model in models.items():
        with tqdm(
            total=0,
            desc=name,
            unit="batch",
            disable=args.no_progress,
            dynamic_ncols=True,
            file=sys.stderr,
        ) as bar:
            results[name] = evaluate(model, bar)
    warnings = benchmark.summarize(results, baseline)

    table = benchmark.table(results, baseline)
    details = benchmark.details(results, baseline)
    caption = benchmark.caption(results, baseline)
    print(f"\n{caption}\n{table.text()}\n")
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)

    markdown = f"{caption}\n\n{table.markdown()}"
    if details is not None:
        markdown += f"\n{details.markdown()}"
    summary = {
        "benchmark": benchmark.name,
        "title": benchmark.title,
        "data_root": str(args.data_root),
        "clean_root": None if args.clean_root is None else str(args.clean_root),
        "num_images": args.num_images,
        "baseline": baseline,
        "models": dict(zip(names, specs)),
        "results": results,
        "table": table.to_dict(),
        "warnings": warnings,
    }
    atomic_write_text(out / "results.md", markdown)
    atomic_write_text(out / "results.csv", table.csv())
    atomic_write_json(out / "results.json", summary)
    if benchmark.plot_file:
        benchmark.plot(results, out / benchmark.plot_file)
    announce_results(out)
    return summary
