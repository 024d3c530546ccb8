"""``robustart study STUDY.yaml``: a list of models through one suite, read as a study.

See :mod:`robustart.evaluation.study` for the study file and what is written.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from robustart.cli.options import positive_int
from robustart.utils import CommandParser

DESCRIPTION = """\
Run a robustness study as one job: every model of the study file (zoo entries, checkpoints,
timm:/torchvision: weights, factories; each tagged with its architecture family and training
technique) through one suite, then the study's results: the leaderboard grouped by family and
technique (clean, per-attack and worst-case robust accuracy, corruption mean and mCE, system
noise, parameters, FLOPs), the accuracy-robustness Pareto frontiers, Su et al.'s scaling law of
the minimal adversarial distortion against ln(clean error) (from the suite's minimal_eps
searches), and the transferability matrix with within- and cross-family averages.

Writes OUTPUT/study.json, study.md/.csv, report.html and the figures; the benchmark part is
stored under OUTPUT/benchmark and resumes like `robustart benchmark`, and the transfer matrix is
reused while nothing it depends on changes. A `wandb:` section logs the tables and figures to
one W&B run (job type study).

Examples:
  robustart study recipes/studies/digits_techniques.yaml      # the README's main job (~9 min)
  robustart study recipes/studies/digits_zoo.yaml --output runs/study
  robustart study recipes/studies/digits_zoo.yaml --num-images 16 --output /tmp/trial
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``robustart study``."""
    parser = CommandParser(
        prog="robustart study",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("study", type=Path, help="the study file (YAML)")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="results folder (default: runs/study/<study name>); results stored there by an "
        "earlier run are reused",
    )
    parser.add_argument(
        "--device",
        default="auto",
        help="auto (CUDA when available), cpu, cuda:1, ... (default: %(default)s)",
    )
    parser.add_argument(
        "--num-images",
        type=positive_int(1),
        default=None,
        metavar="N",
        help="evaluate N images (at most the split's size) instead of the study file's "
        "num_images (a quick trial of a study; stored results of other image counts are kept, "
        "but the tables and figures in OUTPUT are replaced: give a separate --output to keep "
        "both)",
    )
    parser.add_argument("--no-progress", action="store_true", help="do not show progress bars")
    return parser


def main(argv: list[str]) -> dict[str, Any]:
    """Run ``robustart study``; returns the JSON of ``study.json``."""
    from robustart.cli.benchmark import print_sanity_warnings
    from robustart.evaluation.study import headline_robustness, load_study, run_study
    from robustart.utils import announce_results, check_output_dir

    args = build_parser().parse_args(argv)
    spec = load_study(args.study)
    if args.num_images is not None:
        spec = dataclasses.replace(spec, num_images=args.num_images, whole_split_if_smaller=False)
    output = check_output_dir(args.output or Path("runs") / "study" / spec.name)
    study = run_study(spec, output, device=args.device, progress=not args.no_progress)
    print(study.summary().text())
    worst, label = headline_robustness(next(iter(study.reports().values())))
    if worst is not None:
        print(f"worst-case robust: {label}")
    replicates = study.replicates(narrow=True)
    if replicates is not None:
        print(
            "\nreplicates (mean ± sample std; ≈: within the spread of the family's standard "
            "group of the same size):"
        )
        print(replicates[0].text())
    data = study.to_dict()
    for norm, law in data["scaling_law"].items():
        fit = law["fit"]
        print(
            f"scaling law ({norm}): mean minimal eps = {fit['slope']:.4g} * ln(error) "
            f"{'-' if fit['intercept'] < 0 else '+'} {abs(fit['intercept']):.4g}, "
            f"R^2 = {fit['r2']:.3f} ({fit['n']} models)"
        )
    for name, frontier in study.pareto().items():
        print(f"Pareto frontier ({name}): {', '.join(frontier['frontier'])}")
    averages = study.transfer_averages()
    if averages is not None:
        within, cross = (
            "-" if averages[k] is None else f"{100 * averages[k]:.1f} %"
            for k in ("within", "cross")
        )
        print(f"transfer accuracy: within a family {within}, across families {cross}")
    print_sanity_warnings(study.benchmark.sanity_warnings())
    for note in study.notes:
        print(f"note: {note}")
    announce_results(output)
    return data
