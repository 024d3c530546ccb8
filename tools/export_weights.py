"""Export the model weights of a robustart Lightning checkpoint for the model zoo.

Writes ``<output>.safetensors`` (the classifier's backbone and normalisation, no optimizer
state, no pickle) and prints its SHA-256 and a ready-to-paste ``model_zoo/zoo.yaml`` entry.

    python tools/export_weights.py runs/digits_pgd_at/version_0/checkpoints/last.ckpt \\
        model_zoo/digits_resnet20_pgd_at.safetensors --name digits_resnet20_pgd_at
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml
from safetensors.torch import save_file

from robustart.models.weights import extract_state_dict, load_checkpoint_file, sha256_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="Lightning .ckpt written by robustart fit")
    parser.add_argument("output", type=Path, help="output .safetensors file")
    parser.add_argument("--name", required=True, help="zoo entry name")
    parser.add_argument("--dataset", default="", help="dataset the model was trained on")
    parser.add_argument("--recipe", default="", help="recipe that trained it")
    args = parser.parse_args()
    checkpoint = load_checkpoint_file(args.checkpoint)
    info = checkpoint.get("robustart", {})
    state = {k: v.contiguous() for k, v in extract_state_dict(checkpoint).items()}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(args.output), metadata={"model": str(info.get("model", ""))})
    entry = {
        args.name: {
            "model": info.get("model"),
            "num_classes": info.get("num_classes"),
            "dataset": args.dataset,
            "recipe": args.recipe,
            "file": args.output.name,
            "sha256": sha256_of(args.output),
        }
    }
    print(yaml.safe_dump(entry, sort_keys=False))


if __name__ == "__main__":
    main()
