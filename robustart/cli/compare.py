"""``robustart compare``: train several recipes, test each, print one robustness table.

Example::

    robustart compare recipes/digits/standard.yaml recipes/digits/pgd_at.yaml
    robustart compare base.yaml mixup.yaml --common recipes/loggers/wandb.yaml -- \\
        --trainer.max_epochs 2
    robustart compare recipes/digits/standard.yaml \\
        recipes/digits/standard.yaml+recipes/digits/mixup.yaml   # base + technique overlay

Each recipe is fitted with ``robustart fit``, then tested (best checkpoint) with the
``RobustnessEvaluation`` callback it configures, by the same trainer: a W&B run holds both the
training curves and the test report, and is finished after the test. The table (percentages)
is printed and written to ``<output>/comparison.{md,csv,json}`` with ``robustness_curves.png``,
all atomically.

Every recipe is built before the first is trained, and recipes tested on different evaluations
(test suite, subset) are refused: the table's columns are the same for every recipe. Each
finished (recipe, seed) run is stored under ``<output>/runs/`` and reused by a later command
whose run has the same identity (:func:`run_identity`: the resolved configuration, the contents
of the files it names, the seed and arguments, the checkpoint and robustart's version).

With W&B, every run of one comparison shares a group (``--group``, default
``compare-<date>-<time>``; job type ``compare``), and one more run of the group, job type
``comparison``, holds the table as a ``wandb.Table`` (``comparison/table``) and the figure.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robustart.cli.options import seed_value
from robustart.errors import ConfigError, RobustartWarning
from robustart.evaluation import RobustnessReport
from robustart.reporting import csv_table, format_table, markdown_table
from robustart.utils import (
    CommandParser,
    announce_results,
    atomic_write_json,
    atomic_write_text,
    check_output_dir,
    format_eps,
    read_yaml_file,
)

if TYPE_CHECKING:
    from robustart.callbacks import RobustnessEvaluation
    from robustart.cli.lightning import RobustartCLI


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="robustart compare",
        description=(
            "Train each recipe, test it with its RobustnessEvaluation callback and print one "
            "table of clean, adversarial and corruption accuracy (an ablation table: keep "
            "everything but one technique the same across recipes). Arguments after `--` are "
            "passed to every `robustart fit`."
        ),
    )
    parser.add_argument(
        "recipes",
        nargs="+",
        type=Path,
        help="recipe YAML files, or a base recipe and overlays joined by '+' "
        "(recipes/digits/standard.yaml+recipes/digits/mixup.yaml); the first is the baseline",
    )
    parser.add_argument(
        "--common",
        action="append",
        default=[],
        type=Path,
        metavar="YAML",
        help="extra config layered on every recipe (e.g. "
        "recipes/loggers/wandb.yaml); may be repeated",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("runs/compare"),
        help="folder for comparison.{md,csv,json} and robustness_curves.png (default: %(default)s)",
    )
    parser.add_argument(
        "--ckpt",
        choices=["best", "last"],
        default="best",
        help="checkpoint each model is tested with (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=seed_value,
        default=None,
        metavar="N",
        help="seed of every run (seed_everything; default: each recipe's own)",
    )
    parser.add_argument(
        "--seeds",
        type=seed_value,
        nargs="+",
        default=None,
        metavar="N",
        help="train and test every recipe once per seed and report mean ± std per cell; a "
        "difference from the first recipe within the run-to-run spread is marked ≈",
    )
    parser.add_argument(
        "--group",
        default=None,
        metavar="NAME",
        help="W&B group of the runs of this comparison (default: compare-<date>-<time>); "
        "only used with a W&B logger",
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="do not show Lightning's progress bars while training and testing",
    )
    return parser


def fit_arguments(args: argparse.Namespace, extra: list[str]) -> list[str]:
    """The arguments given to every ``robustart fit``: those the flags of ``compare`` stand for
    (``--seed``, ``--no-progress``), then the ones after ``--`` (which win)."""
    flags = []
    if args.seed is not None:
        flags += ["--seed_everything", str(args.seed)]
    if args.no_progress:
        flags += ["--trainer.enable_progress_bar", "false"]
    return [*flags, *extra]


def recipe_files(recipe: Path) -> list[Path]:
    """The config files of a recipe argument: one file, or a base and overlays joined by
    ``+`` (layered in that order)."""
    return [Path(part) for part in str(recipe).split("+")]


def run_name(recipe: Path, taken: set[str]) -> str:
    """A short unique name for a recipe: its file stem(s), prefixed by the folder if needed."""
    files = recipe_files(recipe)
    name = "+".join(f.stem for f in files)
    if name in taken:
        name = f"{files[0].parent.name}/{name}"
    taken.add(name)
    return name


def recipe_arguments(recipe: Path, common: list[Path]) -> list[str]:
    """``--config`` arguments of a recipe (its files, then the common layers)."""
    return [arg for path in [*recipe_files(recipe), *common] for arg in ("--config", str(path))]


def robustness_evaluation(cli: RobustartCLI, recipe: Path) -> RobustnessEvaluation:
    """The ``RobustnessEvaluation`` callback a recipe configures (the first one).

    Raises:
        ConfigError: the recipe has none, so there is nothing to compare.
    """
    from robustart.callbacks import RobustnessEvaluation

    for callback in cli.trainer.callbacks:
        if isinstance(callback, RobustnessEvaluation):
            return callback
    raise ConfigError(
        f"{recipe} has no RobustnessEvaluation callback, so there is nothing to compare; "
        "add one under trainer.callbacks"
    )


def check_recipes(recipes: list[Path], common: list[Path], extra: list[str]) -> list[str]:
    """Build every recipe's configuration (models, data, suites, callbacks) without training,
    so that a mistake in the last recipe fails now, not after training the others, and check
    that every recipe is tested on the same evaluation (one table compares like with like).

    Returns:
        The :func:`config_digest` of each recipe, in order (the basis of its runs' identity).

    Raises:
        RobustartError: the first problem found, naming the recipe.
    """
    from robustart.cli.checks import (
        check_evaluation_runs,
        check_fit_settings,
        check_monitors,
        check_run_length,
        check_warmups_fit,
    )
    from robustart.cli.lightning import build_cli

    for path in common:
        read_yaml_file(path, "--common config")
    for recipe in recipes:
        for path in recipe_files(recipe):
            read_yaml_file(path, "recipe")
    digests, evaluations = [], []
    for recipe in recipes:
        cli = build_cli([*recipe_arguments(recipe, common), *extra], run=False)
        evaluator = robustness_evaluation(cli, recipe)
        check_monitors(cli.trainer, cli.model, getattr(cli.datamodule, "image_size", None))
        check_evaluation_runs(cli.trainer)
        for stage in ("fit", "test"):  # compare fits, then tests with the same trainer
            check_run_length(cli.config.trainer, stage)
        check_fit_settings(cli.config.trainer)
        check_warmups_fit(cli.config)  # `robustart fit` checks it; built without a subcommand
        check_training_data = getattr(cli.model, "check_training_data", None)
        if callable(check_training_data):  # the task's own check at setup, before any fit here
            check_training_data(cli.datamodule)
        digests.append(config_digest(cli))
        evaluations.append(evaluation_signature(evaluator))
        del cli, evaluator
    check_same_evaluation(recipes, evaluations)
    return digests


def evaluation_signature(evaluator: RobustnessEvaluation) -> dict[str, Any]:
    """What decides the columns and the images of a recipe's row in the table: the test
    suite's attacks (label, budgets, settings), corruptions and severities, and the test
    subset (split, size, seed)."""
    suite = evaluator.test_suite
    corruptions = list(suite.corruption_names)
    return {
        "attacks": [
            {
                "label": entry.label,
                "eps": list(entry.eps),
                "settings": {k: v for k, v in entry.attack.config.items() if k != "eps"},
            }
            for entry in suite.attacks
        ],
        "corruptions": corruptions,
        "severities": list(suite.severities) if corruptions else [],  # unused without any
        "num_images": evaluator.num_images,
        "test_split": evaluator.test_split,
        "seed": evaluator.seed,
    }


def check_same_evaluation(recipes: list[Path], evaluations: list[dict[str, Any]]) -> None:
    """Refuse recipes tested on different evaluations: the table has the first recipe's
    columns, so another recipe's other attacks or corruptions would be left out of it, and
    numbers on other images or budgets would be compared as if they were alike.

    Raises:
        ConfigError: naming the first recipe whose evaluation differs from the first recipe's,
            and how.
    """
    baseline = evaluations[0]
    for recipe, evaluation in zip(recipes[1:], evaluations[1:]):
        differences = [
            _difference(key, baseline[key], evaluation[key])
            for key in baseline
            if baseline[key] != evaluation[key]
        ]
        if differences:
            raise ConfigError(
                f"recipes {recipes[0]} and {recipe} are tested on different evaluations "
                f"({'; '.join(differences)}), so one table would not compare them alike; give "
                "every recipe the same RobustnessEvaluation test suite and subset (e.g. in one "
                "--common layer)"
            )


def _difference(key: str, first: Any, other: Any) -> str:
    """How one setting of two :func:`evaluation_signature` differs, for an error message:
    attacks by label and budgets, or by the settings that differ where that is all."""
    if key == "attacks":
        brief = [[_describe_attack(attack) for attack in attacks] for attacks in (first, other)]
        if brief[0] != brief[1]:
            return f"attacks [{', '.join(brief[0])}] vs [{', '.join(brief[1])}]"
        return "attacks " + "; ".join(
            f"{text}: {_setting_differences(a['settings'], b['settings'])}"
            for text, a, b in zip(brief[0], first, other)
            if a != b
        )
    if key == "num_images":
        first, other = ["all" if n is None else n for n in (first, other)]
    return f"{key.replace('_', ' ')} {first} vs {other}"


def _describe_attack(attack: dict[str, Any]) -> str:
    """An attack of an :func:`evaluation_signature` by label and budgets: ``pgd10_linf at
    2/255, 8/255``."""
    norm = attack["settings"].get("norm", "linf")
    return f"{attack['label']} at {', '.join(format_eps(eps, norm) for eps in attack['eps'])}"


def _setting_differences(first: dict[str, Any], other: dict[str, Any]) -> str:
    """The settings two attacks differ in: ``step_size 1.25*eps vs 0.00392157``."""
    return ", ".join(
        f"{key} {_format(first.get(key))} vs {_format(other.get(key))}"
        for key in dict.fromkeys([*first, *other])
        if first.get(key) != other.get(key)
    )


def _format(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def config_digest(cli: RobustartCLI) -> str:
    """A checksum of a recipe's resolved configuration (every option, whichever file or
    argument set it) and of the files it names.

    Every string value of the configuration that names an existing regular file (relative
    to the working folder, as the options read them), or a shipped suite by name, adds that
    file's contents: a suite YAML, a pretrained checkpoint, ... (files over
    :data:`CONTENT_HASH_LIMIT` add their size and modification time instead). Folders, e.g. a
    dataset's root, add only their path: their contents are taken as fixed. The data files
    the robustness suites' corruptions read outside the configuration (frost's photographs,
    wherever ``$ROBUSTART_FROST_DIR`` points) add their checksums.
    """
    import hashlib
    import json

    import yaml

    text = cli.parser.dump(cli.config, skip_check=True)
    digest = hashlib.sha256(text.encode())
    for value in sorted(set(_string_values(yaml.safe_load(text)))):
        file_digest = _referenced_file_digest(value)
        if file_digest is not None:
            digest.update(f"\0{value}\0{file_digest}".encode())
    for callback in getattr(getattr(cli, "trainer", None), "callbacks", None) or []:
        for suite in (getattr(callback, "suite", None), getattr(callback, "test_suite", None)):
            identity = suite.data_identity() if hasattr(suite, "data_identity") else None
            if identity:  # files the corruptions read outside the config (frost's photos)
                digest.update(json.dumps(identity, sort_keys=True).encode())
    return digest.hexdigest()


#: Files up to this size are identified by their contents, larger ones by size and mtime.
CONTENT_HASH_LIMIT = 256 * 2**20


def _string_values(data: Any) -> Iterator[str]:
    """Every string in a parsed YAML document, keys of mappings excluded."""
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for value in data.values():
            yield from _string_values(value)
    elif isinstance(data, list):
        for value in data:
            yield from _string_values(value)


def _referenced_file_digest(value: str) -> str | None:
    """A checksum of the regular file ``value`` names (a path, or a shipped suite's name);
    ``None`` if it names none."""
    import hashlib

    from robustart.evaluation.suite import suites_dir

    try:
        path = Path(value)
        if not path.is_file():
            if path.suffix or path.exists() or not value:
                return None
            path = suites_dir() / f"{value}.yaml"  # how load_suite resolves a suite's name
            if not path.is_file():
                return None
        stat = path.stat()
        if stat.st_size > CONTENT_HASH_LIMIT:
            return f"size={stat.st_size} mtime_ns={stat.st_mtime_ns}"
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(2**20), b""):
                digest.update(block)
        return digest.hexdigest()
    except (OSError, ValueError):  # not a possible path (too long, NUL, ...), or unreadable
        return None


def fit_and_test(
    recipe: Path, common: list[Path], extra: list[str], ckpt: str, wandb_runs: list[dict]
) -> tuple[dict[str, float], RobustnessReport]:
    """Fit one recipe, test it with the same trainer (its W&B run is finished after the test)
    and return the test metrics and robustness report; the settings of its W&B run (project,
    entity, folder, mode), if it has one, are appended to ``wandb_runs``."""
    from lightning.pytorch.utilities import rank_zero_warn

    from robustart.cli.lightning import build_cli

    configs = recipe_arguments(recipe, common)
    cli = build_cli(["fit", *configs, *extra], finish_loggers_after="test", announce=False)
    evaluator = robustness_evaluation(cli, recipe)
    checkpointer = cli.trainer.checkpoint_callback
    ckpt_path: str | None = ckpt
    if checkpointer is None:  # --trainer.enable_checkpointing false: no checkpoint to load
        if ckpt == "best":
            rank_zero_warn(
                f"{recipe}: checkpointing is off, so no best checkpoint was saved; testing the "
                "last weights instead",
                category=RobustartWarning,
            )
        ckpt_path = None  # the weights in memory, those of the last epoch
    elif ckpt == "best" and not checkpointer.best_model_path:
        # the monitored metric was never computed (e.g. a run shorter than every_n_epochs)
        rank_zero_warn(
            f"{recipe}: no best checkpoint by {checkpointer.monitor!r} was saved; testing the "
            "last weights instead",
            category=RobustartWarning,
        )
        ckpt_path = "last"
    wandb_runs.extend(wandb_settings(cli.trainer))
    results = cli.trainer.test(
        cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path, weights_only=True
    )
    report = evaluator.last_report
    assert report is not None
    return dict(results[0]) if results else {}, report


def comparison_table(
    runs: dict[str, tuple[dict[str, float], RobustnessReport]],
) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows (percentages) of the comparison table."""
    first = next(iter(runs.values()))[1]
    headers = ["recipe", "test acc", "subset clean"]
    columns: list[tuple[str, str, float]] = []
    for label, curve in first.attacks.items():
        norm = first.attack_settings.get(label, {}).get("norm", "linf")
        for eps in curve:
            columns.append((label, f"{label} {format_eps(eps, norm)}", eps))
    headers += [c[1] for c in columns]
    if first.corruptions:
        headers.append(f"corruption mean ({len(first.corruptions)})")
    rows = []
    for name, (metrics, report) in runs.items():
        row: list[Any] = [name, _pct(metrics.get("test/acc")), _pct(report.clean)]
        row += [_pct(report.attacks.get(label, {}).get(eps)) for label, _, eps in columns]
        if first.corruptions:
            row.append(_pct(report.corruption_mean()))
        rows.append(row)
    return headers, rows


def wandb_settings(trainer: Any) -> list[dict[str, Any]]:
    """Project, entity, folder and mode of the trainer's W&B runs (to open the comparison run
    beside them)."""
    from robustart.wandb_logging import wandb_loggers

    settings = []
    for logger in wandb_loggers(trainer):
        run = logger.experiment
        settings.append(
            {
                "project": run.project,
                "entity": run.entity,
                "dir": logger.save_dir,
                "mode": getattr(run.settings, "mode", None),
            }
        )
    return settings


@contextmanager
def wandb_group(group: str) -> Iterator[None]:
    """Within the block, new W&B runs join ``group`` with job type ``compare`` (unless the
    recipes set their own)."""
    saved = {k: os.environ.get(k) for k in ("WANDB_RUN_GROUP", "WANDB_JOB_TYPE")}
    os.environ["WANDB_RUN_GROUP"] = group
    os.environ["WANDB_JOB_TYPE"] = "compare"
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def log_comparison_run(
    settings: dict[str, Any],
    group: str,
    headers: list[str],
    rows: list[list[Any]],
    summary: dict[str, Any],
    plot: Path,
) -> None:
    """One W&B run (job type ``comparison``) in the comparison's group holding the table as a
    ``wandb.Table``, the figure and the settings."""
    import wandb

    run = wandb.init(
        project=settings["project"],
        entity=settings["entity"],
        dir=settings["dir"],
        mode=settings["mode"],
        group=group,
        job_type="comparison",
        name=f"{group} table",
        config={
            "recipes": summary["recipes"],
            "attack_settings": summary["attack_settings"],
        },
        reinit="create_new",
    )
    try:
        run.log(
            {
                "comparison/table": wandb.Table(columns=headers, data=rows),
                "comparison/robustness_curves": wandb.Image(str(plot)),
            }
        )
    finally:
        run.finish()


def _pct(value: float | None) -> float | None:
    return None if value is None else 100.0 * float(value)


def main(argv: list[str]) -> dict[str, Any]:
    """Run ``robustart compare`` with command-line arguments ``argv``; returns the summary
    written to ``comparison.json``."""
    if "--" in argv:
        split = argv.index("--")
        argv, extra = argv[:split], argv[split + 1 :]
    else:
        extra = []
    args = build_parser().parse_args(argv)
    if args.seeds is not None and args.seed is not None:
        raise ConfigError("give --seed or --seeds, not both")
    if args.seeds is not None and len(set(args.seeds)) != len(args.seeds):
        repeated = sorted({s for s in args.seeds if args.seeds.count(s) > 1})
        raise ConfigError(
            f"--seeds lists {', '.join(map(str, repeated))} more than once: each seed is one "
            "run, and a repeat would count it twice in the mean ± std. Give each seed once"
        )
    seeds = [args.seed] if args.seeds is None else list(args.seeds)
    extra = fit_arguments(args, extra)
    check_output_dir(args.output, "--output folder")
    configs = check_recipes(args.recipes, args.common, extra)
    taken: set[str] = set()
    names = [run_name(recipe, taken) for recipe in args.recipes]
    group = args.group or time.strftime("compare-%Y%m%d-%H%M%S")
    wandb_runs: list[dict[str, Any]] = []
    per_seed: dict[str, list[tuple[dict[str, float], RobustnessReport]]] = {n: [] for n in names}
    with wandb_group(group):
        for name, recipe, config in zip(names, args.recipes, configs):
            for seed in seeds:
                seeded = extra if seed is None else [*extra, "--seed_everything", str(seed)]
                label = name if seed is None else f"{name}, seed {seed}"
                stem = "recipe_seed" if seed is None else f"seed_{seed}"
                stored = args.output / "runs" / name.replace("/", "_") / f"{stem}.json"
                identity = run_identity(config, seeded, args.ckpt)
                previous = read_stored_run(stored, identity)
                if previous is not None:
                    print(
                        f"\n=== robustart compare: {label}: reusing {stored} ===", file=sys.stderr
                    )
                    per_seed[name].append(previous)
                    continue
                print(f"\n=== robustart compare: {label} ({recipe}) ===", file=sys.stderr)
                metrics, report = fit_and_test(recipe, args.common, seeded, args.ckpt, wandb_runs)
                atomic_write_json(
                    stored,
                    {"identity": identity, "test_metrics": metrics, "report": report.to_dict()},
                )
                per_seed[name].append((metrics, report))

    runs = {name: results[0] for name, results in per_seed.items()}
    headers, rows = comparison_table(runs)
    spread = None
    if len(seeds) > 1:
        headers, rows, spread = seed_statistics(per_seed)
    first = next(iter(runs.values()))[1]
    settings = "; ".join(
        f"{label}: " + ", ".join(f"{k}={v}" for k, v in s.items() if k != "attack")
        for label, s in first.attack_settings.items()
    )
    shown = rows if spread is None else spread["text"]
    text = format_table(headers, shown)
    seeds_text = "" if spread is None else f"; mean ± std over seeds {seeds}, ≈: within spread"
    settings = f"; {settings}" if settings else ""  # none without attacks
    print(
        f"\nRobustness comparison (accuracy %, test split; subset of {first.num_images} "
        f"images{settings}{seeds_text})\n{text}\n"
    )

    out = args.output
    from robustart.plots import plot_robustness_curves

    plot = plot_robustness_curves(
        {n: r for n, (_, r) in runs.items()},
        out / "robustness_curves.png",
        title=f"{len(runs)} recipes, each at its {args.ckpt} checkpoint: test subset "
        f"({first.num_images} images)" + ("" if spread is None else f", seed {seeds[0]}"),
    )
    caption = (
        "Accuracy (%) vs ε of each attack (L∞ ε in units of 1/255) and mean accuracy vs "
        "corruption severity, per recipe, on the test subset."
    )
    markdown = f"{markdown_table(headers, shown)}\n![{caption}]({plot.name})\n\n*{caption}*\n"
    atomic_write_text(out / "comparison.md", markdown)
    csv_headers, csv_rows = headers, rows
    if spread is not None:  # mean and std columns
        csv_headers = [headers[0], *(f"{h} {k}" for h in headers[1:] for k in ("mean", "std"))]
        csv_rows = [
            [row[0], *(v for pair in zip(row[1:], std[1:]) for v in pair)]
            for row, std in zip(rows, spread["std"])
        ]
    atomic_write_text(out / "comparison.csv", csv_table(csv_headers, csv_rows))
    summary = {
        "recipes": {name: str(path) for name, path in zip(runs, args.recipes)},
        "attack_settings": first.attack_settings,
        "seeds": seeds,
        "runs": {n: {"test_metrics": m, "report": r.to_dict()} for n, (m, r) in runs.items()},
        "table": {"headers": headers, "mean": rows}
        | ({} if spread is None else {"std": spread["std"], "within_spread": spread["within"]}),
        "per_seed": {
            n: [
                {"seed": s, "test_metrics": m, "report": r.to_dict()} for s, (m, r) in zip(seeds, v)
            ]
            for n, v in per_seed.items()
        },
    }
    atomic_write_json(out / "comparison.json", summary)
    if wandb_runs:
        log_comparison_run(wandb_runs[0], group, headers, shown, summary, plot)
    print(f"Wrote {out / 'comparison.md'}, comparison.csv, comparison.json and {plot}")
    announce_results(out)
    return summary


def run_identity(config: str, extra: list[str], ckpt: str) -> str:
    """A checksum of everything one run of a recipe depends on: the recipe's
    :func:`config_digest` (resolved configuration and the files it names), the arguments
    given to its ``robustart fit`` (seed included), the tested checkpoint and robustart's
    version."""
    import hashlib

    import robustart

    return hashlib.sha256(repr((config, extra, ckpt, robustart.__version__)).encode()).hexdigest()


def read_stored_run(path: Path, identity: str) -> tuple[dict[str, float], RobustnessReport] | None:
    """The test metrics and report a finished run stored at ``path``, if its identity matches
    (see :func:`run_identity`); ``None`` otherwise."""
    import json

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("identity") != identity:
        return None
    return dict(data["test_metrics"]), RobustnessReport.from_dict(data["report"])


def seed_statistics(
    per_seed: dict[str, list[tuple[dict[str, float], RobustnessReport]]],
) -> tuple[list[str], list[list[Any]], dict[str, Any]]:
    """Mean and sample standard deviation over seeds of every cell of the comparison table.

    A recipe's cell is marked within the spread (``≈``) when its mean differs from the first
    recipe's by no more than the spread of a difference of single runs, √(s₁² + s₂²).

    Returns:
        Headers, rows of means, and ``{"std": rows of stds, "within": rows of booleans,
        "text": rows of "mean ± std" cells}``.
    """
    from robustart.metrics.study import Spread

    count = min(len(results) for results in per_seed.values())
    tables = [comparison_table({n: r[k] for n, r in per_seed.items()}) for k in range(count)]
    headers = tables[0][0]
    spreads = [
        [Spread.of([t[1][i][j] for t in tables]) for j in range(1, len(headers))]
        for i in range(len(per_seed))
    ]
    means, stds, within, text = [], [], [], []
    for i, name in enumerate(per_seed):
        close = [i > 0 and cell.within(spreads[0][j]) for j, cell in enumerate(spreads[i])]
        means.append([name, *[cell.mean for cell in spreads[i]]])
        stds.append([name, *[cell.std for cell in spreads[i]]])
        within.append([name, *close])
        text.append([name, *[c.text() + (" ≈" if w else "") for c, w in zip(spreads[i], close)]])
    return headers, means, {"std": stds, "within": within, "text": text}
