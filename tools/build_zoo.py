"""Build the model zoo: train an entry with the project's recipes, write the model cards, and
generate the README's zoo table from the cards.

    # train (resumable: a finished run is not retrained), export, add/refresh the zoo.yaml entry
    python tools/build_zoo.py train digits_vit_tiny_pgd_at \\
        --recipe recipes/digits/pgd_at.yaml+recipes/digits/arch/vit_tiny.yaml \\
        --family vit --technique pgd_at

    # every entry of model_zoo/plan.yaml not yet in zoo.yaml (entries already there are kept:
    # tests and reference numbers depend on them; delete one from zoo.yaml to rebuild it)
    python tools/build_zoo.py train-all

    # benchmark every entry on the zoo_card suite (resumable) and write model_zoo/cards/
    python tools/build_zoo.py cards
    # regenerate the README's zoo table from the cards (tests/test_zoo.py checks it)
    python tools/build_zoo.py readme
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from robustart.models.weights import extract_state_dict, load_checkpoint_file, sha256_of  # noqa: E402
from robustart.models.zoo import load_index, zoo_dir  # noqa: E402
from robustart.utils import atomic_write_text  # noqa: E402


def train(args: argparse.Namespace) -> None:
    """Train ``args.name`` with its recipe (unless a finished run exists), export its weights
    to the zoo and write its zoo.yaml entry."""
    train_entry(args.name, args.recipe, args.family, args.technique, Path(args.workdir))


def train_all(args: argparse.Namespace) -> None:
    """Train every entry of ``model_zoo/plan.yaml`` that zoo.yaml does not hold yet; entries
    already exported only get the plan's family and technique recorded."""
    plan = yaml.safe_load((zoo_dir() / "plan.yaml").read_text(encoding="utf-8"))
    unknown = sorted(set(args.names) - set(plan))
    if unknown:
        raise SystemExit(f"build_zoo: error: not in model_zoo/plan.yaml: {', '.join(unknown)}")
    for name in args.names or list(plan):  # in the order given
        spec = plan[name]
        index = load_index()
        if name in index and (zoo_dir() / index[name]["file"]).is_file():
            entry = dict(index[name])
            entry.update(family=spec["family"], technique=spec["technique"])
            index[name] = entry
            write_index(index)
            print(f"{name}: already in the zoo, kept", flush=True)
            continue
        train_entry(
            name,
            spec["recipe"],
            spec["family"],
            spec["technique"],
            Path(args.workdir),
            seed=spec.get("seed"),
        )


def train_entry(
    name: str, recipe: str, family: str, technique: str, workdir: Path, seed: int | None = None
) -> None:
    """Train one zoo entry (resuming its run), export it and index it; ``seed`` replaces the
    recipe's ``seed_everything`` (replicates of one recipe)."""
    from safetensors.torch import save_file

    recipes = recipe.split("+")
    last = workdir / name / "version_0" / "checkpoints" / "last.ckpt"
    command = [sys.executable, "-m", "robustart", "fit"]
    for layer in recipes:
        command += ["--config", layer]
    command += [
        "--trainer.logger.init_args.name",
        name,
        "--trainer.logger.init_args.save_dir",
        str(workdir),
        "--trainer.logger.init_args.version",
        "version_0",
        "--trainer.enable_progress_bar",
        "false",
    ]
    if seed is not None:
        command += ["--seed_everything", str(seed)]
    if last.is_file():
        command += ["--ckpt_path", str(last)]  # resumes, or returns at once when finished
    print(" ".join(command), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)
    checkpoint = load_checkpoint_file(last)
    info = checkpoint.get("robustart", {})
    state = {k: v.contiguous() for k, v in extract_state_dict(checkpoint).items()}
    output = zoo_dir() / f"{name}.safetensors"
    save_file(state, str(output), metadata={"model": str(info.get("model", ""))})
    index = load_index()
    index[name] = {
        "model": info.get("model"),
        "num_classes": info.get("num_classes"),
        "dataset": "digits",
        "recipe": recipe,
        "family": family,
        "technique": technique,
        **({} if seed is None else {"seed": seed}),
        "file": output.name,
        "sha256": sha256_of(output),
    }
    write_index(index)
    print(f"{name}: {output} ({output.stat().st_size / 1e6:.2f} MB)")


def cards(args: argparse.Namespace) -> None:
    """Benchmark zoo entries and write their model cards, then the README table."""
    from robustart.errors import ConfigError
    from robustart.evaluation.zoo_cards import readme_with_zoo_table, write_cards

    try:  # the README must take the table before minutes of benchmarking, not after
        readme_with_zoo_table((ROOT / "README.md").read_text(encoding="utf-8"), None)
    except ConfigError as error:
        raise SystemExit(f"build_zoo: error: {error}") from None
    write_cards(args.names or None, workdir=args.workdir, num_images=args.num_images)
    readme(args)


def readme(args: argparse.Namespace) -> None:
    """Regenerate the README's zoo table from the cards."""
    from robustart.evaluation.zoo_cards import load_cards, readme_with_zoo_table, zoo_table

    path = ROOT / "README.md"
    text = readme_with_zoo_table(path.read_text(encoding="utf-8"), zoo_table(load_cards()))
    path.write_text(text, encoding="utf-8")
    print(f"{path}: zoo table regenerated")


def write_index(index: dict) -> None:
    """Rewrite ``zoo.yaml`` with its header comment and one block per entry."""
    path = zoo_dir() / "zoo.yaml"
    header = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    blocks = [yaml.safe_dump({name: entry}, sort_keys=False) for name, entry in index.items()]
    atomic_write_text(path, "\n".join(header) + "\n\n" + "\n".join(blocks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("train", help="train, export and index one zoo entry")
    p.add_argument("name", help="zoo entry name, e.g. digits_vit_tiny_pgd_at")
    p.add_argument("--recipe", required=True, help="base.yaml[+overlay.yaml...]")
    p.add_argument("--family", required=True, help="architecture family, e.g. vit")
    p.add_argument("--technique", required=True, help="training technique, e.g. pgd_at")
    p.add_argument("--workdir", default="runs/zoo", help="training runs (default: %(default)s)")
    p.set_defaults(run=train)
    p = commands.add_parser("train-all", help="train plan.yaml entries not in the zoo")
    p.add_argument("names", nargs="*", help="only these plan entries, in this order (default: all)")
    p.add_argument("--workdir", default="runs/zoo", help="training runs (default: %(default)s)")
    p.set_defaults(run=train_all)
    p = commands.add_parser("cards", help="benchmark zoo entries and write their model cards")
    p.add_argument("names", nargs="*", help="zoo entries (default: all)")
    p.add_argument("--workdir", default="runs/zoo_cards", help="benchmark results (resumable)")
    p.add_argument("--num-images", type=int, default=250, help="digits test images")
    p.set_defaults(run=cards)
    p = commands.add_parser("readme", help="regenerate the README's zoo table from the cards")
    p.set_defaults(run=readme)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
