"""Build the model zoo: train an entry with the project's recipes, write the model cards, and
generate the README's zoo table from the cards.

    # train (resumable: a finished run is not retrained), export, add/refresh the zoo.yaml entry
    python tools/build_zoo.py train digits_vit_tiny_pgd_at \\
        --recipe recipes/digits/pgd_at.yaml+recipes/digits/arch/vit_tiny.yaml \\
        --family vit --technique pgd_at

Still to come (issue 16): ``cards`` (benchmark every entry and write model cards) and
``readme`` (the README's zoo table generated from the cards).
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


def train(args: argparse.Namespace) -> None:
    """Train ``args.name`` with its recipe (unless a finished run exists), export its weights
    to the zoo and write its zoo.yaml entry."""
    from safetensors.torch import save_file

    recipes = args.recipe.split("+")
    workdir = Path(args.workdir)
    last = workdir / args.name / "version_0" / "checkpoints" / "last.ckpt"
    command = [sys.executable, "-m", "robustart", "fit"]
    for recipe in recipes:
        command += ["--config", recipe]
    command += [
        "--trainer.logger.init_args.name",
        args.name,
        "--trainer.logger.init_args.save_dir",
        str(workdir),
        "--trainer.logger.init_args.version",
        "version_0",
        "--trainer.enable_progress_bar",
        "false",
    ]
    if last.is_file():
        command += ["--ckpt_path", str(last)]  # resumes, or returns at once when finished
    print(" ".join(command), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)
    checkpoint = load_checkpoint_file(last)
    info = checkpoint.get("robustart", {})
    state = {k: v.contiguous() for k, v in extract_state_dict(checkpoint).items()}
    output = zoo_dir() / f"{args.name}.safetensors"
    save_file(state, str(output), metadata={"model": str(info.get("model", ""))})
    index = load_index()
    index[args.name] = {
        "model": info.get("model"),
        "num_classes": info.get("num_classes"),
        "dataset": "digits",
        "recipe": args.recipe,
        "family": args.family,
        "technique": args.technique,
        "file": output.name,
        "sha256": sha256_of(output),
    }
    write_index(index)
    print(f"{args.name}: {output} ({output.stat().st_size / 1e6:.2f} MB)")


def write_index(index: dict) -> None:
    """Rewrite ``zoo.yaml`` with its header comment and one block per entry."""
    path = zoo_dir() / "zoo.yaml"
    header = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    blocks = [yaml.safe_dump({name: entry}, sort_keys=False) for name, entry in index.items()]
    path.write_text("\n".join(header) + "\n\n" + "\n".join(blocks), encoding="utf-8")


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
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
