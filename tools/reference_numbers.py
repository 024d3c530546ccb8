"""Record (or check) the numbers every evaluation path gives on the zoo's digits models.

The restructure of the evaluation engine must change no number. This script evaluates the
zoo's digits ResNet-20s through every evaluation path (the suite runner with each attack family
and every corruption, the minimal-ε search, transfer, shift-style classification and calibration,
OOD detection, perturbation sequences, CIFAR-style and file-based system noise) on a small
seeded subset, and writes the results to ``tests/data/reference_numbers.json``; with ``--check``
it recomputes them and exits 1 on any difference.

Usage::

    python tools/reference_numbers.py            # record
    python tools/reference_numbers.py --check    # compare with the recorded numbers
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "data" / "reference_numbers.json"
MODELS = ("digits_resnet20_standard", "digits_resnet20_pgd_at")
SUITE = {
    "attacks": [
        {"name": "fgsm", "norm": "linf", "eps": ["8/255"]},
        {"name": "pgd", "norm": "linf", "eps": ["4/255", "16/255"], "steps": 5},
        {"name": "pgd", "norm": "l2", "eps": [0.5], "steps": 5, "label": "pgd_l2"},
        {"name": "mifgsm", "eps": ["8/255"], "steps": 5},
        {"name": "apgd", "norm": "linf", "eps": ["8/255"], "steps": 10},
        {"name": "apgd_t", "norm": "linf", "eps": ["8/255"], "steps": 5, "num_targets": 2},
        {"name": "fab_t", "norm": "linf", "eps": ["8/255"], "steps": 5, "num_targets": 2},
        {"name": "square", "norm": "linf", "eps": ["16/255"], "queries": 50},
        {"name": "square", "norm": "l2", "eps": [1.0], "queries": 50, "label": "square_l2"},
        {"name": "cw", "eps": [1.0], "steps": 10, "binary_steps": 3},
        {"name": "deepfool", "eps": [0.5], "steps": 10},
    ],
    "corruptions": "all",
    "severities": [1, 3, 5],
}
NUM_IMAGES = 64


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isnan(value) else round(value, 6)
    if isinstance(value, dict):
        return {str(k): _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


def compute(evaluated: tuple[str, ...] = MODELS, transfer: bool = True) -> dict[str, Any]:
    """The numbers of every evaluation path for the zoo models ``evaluated`` (a subset of
    :data:`MODELS`, keyed by name) and, with ``transfer``, PGD transfer between all of
    :data:`MODELS` (key "transfer")."""
    from torch.utils.data import Dataset

    from robustart.attacks import create_attack
    from robustart.data import DigitsDataModule
    from robustart.evaluation import benchmarks as shift
    from robustart.evaluation import evaluate_robustness, evaluate_transfer, iterate_chunks
    from robustart.evaluation.benchmarks import (
        evaluate_cifar_system_noise,
        evaluate_system_noise,
    )
    from robustart.evaluation.minimal import MinimalEpsilonSearch
    from robustart.evaluation.suite import load_suite
    from robustart.models import create_model
    from robustart.utils import make_generator

    torch.manual_seed(0)
    data = DigitsDataModule(augment=False)
    data.setup("test")
    subset = data.robustness_subset("test", NUM_IMAGES, seed=0)
    images = torch.stack([subset[i][0] for i in range(len(subset))])
    labels = torch.tensor([int(subset[i][1]) for i in range(len(subset))])
    models = {
        name: create_model(
            "resnet20", 10, 3, mean=data.mean, std=data.std, weights=f"zoo:{name}"
        ).eval()
        for name in MODELS
    }
    suite = load_suite(SUITE)
    out: dict[str, Any] = {}
    for name in evaluated:
        model = models[name]
        entry: dict[str, Any] = {}
        report = evaluate_robustness(model, iterate_chunks(subset, 32), suite, device="cpu", seed=0)
        entry["suite"] = report.metrics()
        search = MinimalEpsilonSearch("pgd", {"steps": 5}, norm="linf", eps_max="32/255")
        result = search(model, images[:16], labels[:16], generator=make_generator(0, "cpu"))
        entry["minimal_eps"] = result.min_eps.tolist()
        entry["classification"] = shift.evaluate_classification(model, subset, batch_size=32)
        flipped = [(img.flip(1), lbl) for img, lbl in subset]
        entry["ood"] = shift.evaluate_ood(model, subset, flipped, batch_size=32)

        class Sequences(Dataset):
            def __len__(self) -> int:
                return 8

            def __getitem__(self, i: int) -> torch.Tensor:
                frame = images[i]
                return torch.stack([frame.roll(s, dims=2) for s in range(4)])

        entry["perturbation"] = shift.evaluate_perturbation_sequences(
            model, Sequences(), noise=False, batch_size=4
        )
        entry["cifar_system_noise"] = evaluate_cifar_system_noise(
            model, images, labels, batch_size=32
        ).to_dict()
        with tempfile.TemporaryDirectory() as folder:
            from PIL import Image

            for i in range(20):
                target = Path(folder) / f"class{int(labels[i])}"
                target.mkdir(exist_ok=True)
                array = (images[i].permute(1, 2, 0) * 255).round().byte().numpy()
                Image.fromarray(array).save(target / f"{i}.png")
            from robustart.system_noise import imagenet_s_variants

            variants = [v for v in imagenet_s_variants() if "opencv" not in v.name][:6]
            files = evaluate_system_noise(
                model, folder, variants, crop_size=32, batch_size=8, labels="sorted"
            )
            entry["file_system_noise"] = files.to_dict()
        out[name] = entry
    if transfer:
        attack = create_attack("pgd", eps=8 / 255, norm="linf", steps=5)
        out["transfer"] = evaluate_transfer(models, images, labels, attack, seed=0).to_dict()
    return _rounded(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare instead of recording")
    args = parser.parse_args()
    numbers = json.loads(json.dumps(compute()))
    if not args.check:
        REFERENCE.parent.mkdir(parents=True, exist_ok=True)
        REFERENCE.write_text(json.dumps(numbers, indent=1, sort_keys=True) + "\n")
        print(f"recorded {REFERENCE}")
        return 0
    recorded = json.loads(REFERENCE.read_text())
    if recorded != numbers:
        print("numbers differ from", REFERENCE)
        for key in recorded:
            if recorded[key] != numbers.get(key):
                print(" ", key)
        return 1
    print("identical to", REFERENCE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
