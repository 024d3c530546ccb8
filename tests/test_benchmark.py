"""``robustart benchmark`` / ``robustart.benchmark``: any model in one call, numbers equal to a
single suite run, resumable after a kill, and the same on two DDP processes as on one."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import robustart
from robustart.data import DigitsDataModule
from robustart.errors import CheckpointError, ConfigError, DatasetNotFoundError, NonFiniteError
from robustart.evaluation import evaluate_robustness, iterate_chunks, load_suite
from robustart.evaluation.benchmark import benchmark
from robustart.evaluation.items import load_benchmark_suite, pack_bits, unpack_bits
from robustart.evaluation.results import SCHEMA
from robustart.models import NormalizedClassifier, create_model

ROOT = Path(__file__).resolve().parents[1]
SUITE = {
    "attacks": [
        {"name": "fgsm", "eps": ["8/255"]},
        {"name": "pgd", "eps": ["4/255", "8/255"], "steps": 3},
    ],
    "corruptions": ["gaussian_noise", "contrast"],
    "severities": [1, 3],
}
ZOO = "zoo:digits_resnet20_standard"
#: The smallest suite: a benchmark of clean accuracy alone is refused.
ONE_ATTACK = {"attacks": [{"name": "fgsm", "eps": ["8/255"]}]}


@pytest.fixture(scope="module")
def digits():
    return DigitsDataModule(augment=False)


def zoo_model(digits, name="digits_resnet20_standard"):
    return create_model(
        "resnet20", 10, 3, mean=digits.mean, std=digits.std, weights=f"zoo:{name}"
    ).eval()


def test_items_give_the_numbers_of_one_suite_run(digits):
    """Splitting a suite into stored items changes no number: every metric equals one
    evaluate_robustness call over the whole suite (randomness is per test and chunk)."""
    model = zoo_model(digits)
    result = benchmark(model, digits, SUITE, num_images=40, batch_size=16, progress=False)
    subset = digits.robustness_subset("test", 40, 0)
    whole = evaluate_robustness(model, iterate_chunks(subset, 16), load_suite(SUITE), "cpu")
    expected = whole.metrics()
    (got,) = [m.report().metrics() for m in result.models.values()]
    assert set(expected) <= set(got)
    assert {k: got[k] for k in expected} == expected
    assert "robust/worst_case_linf/eps=8_255" in expected  # fgsm and pgd share 8/255


def test_cli_on_zoo_models_writes_every_result(tmp_path, capsys):
    from robustart.cli.benchmark import main

    suite = tmp_path / "suite.yaml"
    suite.write_text(json.dumps({**SUITE, "system_noise": True}))
    out = tmp_path / "out"
    data = main(
        [
            ZOO,
            "zoo:digits_resnet20_pgd_at",
            "--suite",
            str(suite),
            "--num-images",
            "32",
            "--output",
            str(out),
            "--no-progress",
            "--device",
            "cpu",
        ]
    )
    printed = capsys.readouterr().out
    assert printed.strip().splitlines()[-1] == f"robustart: results in {out}"
    assert "digits_resnet20_pgd_at" in printed and "system noise mean" in printed
    stored = json.loads((out / "benchmark.json").read_text())
    assert stored["schema"] == SCHEMA == data["schema"]
    assert {"torch", "robustart", "python"} <= set(stored["versions"])
    assert stored["settings"]["num_images"] == 32 and stored["settings"]["data"] == "digits"
    model = stored["models"]["digits_resnet20_pgd_at"]
    assert set(model["items"]) == {
        "clean",
        "attack/fgsm_linf",
        "attack/pgd3_linf",
        "corruption/gaussian_noise",
        "corruption/contrast",
        "system_noise",
    }
    assert len(model["weights_sha256"]) == 64
    figures = ("robustness_curves.png", "corruption_heatmap.png", "system_noise.png")
    for name in ("leaderboard.md", "leaderboard.csv", "report.html", *figures):
        assert (out / name).stat().st_size > 0, name
    csv = (out / "leaderboard.csv").read_text().splitlines()
    assert csv[0].startswith("model,params (M),images,clean,") and len(csv) == 3
    # the reports show the leaderboard and every figure, each with its caption
    markdown = (out / "leaderboard.md").read_text()
    page = (out / "report.html").read_text()
    assert "| digits_resnet20_pgd_at |" in markdown and "<td>digits_resnet20_pgd_at</td>" in page
    for name in figures:
        assert f"]({name})" in markdown, name
    assert page.count('src="data:image/png;base64,') == len(figures)  # self-contained
    assert page.count("<figcaption>") == len(figures)


def test_plain_state_dict_with_arch_is_the_zoo_model_and_reuses_its_results(tmp_path, digits):
    """Results are keyed by the weights' checksum: the zoo entry's weights saved as a plain
    state dict are the same model, so every result is read back, not recomputed."""
    out = tmp_path / "out"
    first = benchmark(ZOO, "digits", SUITE, num_images=24, output=out, progress=False)
    weights = tmp_path / "weights.pt"
    torch.save(zoo_model(digits).state_dict(), weights)
    with pytest.raises(CheckpointError, match="--arch"):
        benchmark(str(weights), "digits", SUITE, num_images=24, progress=False)
    again = benchmark(
        str(weights), "digits", SUITE, num_images=24, output=out, arch="resnet20", progress=False
    )
    assert len(again.reused) == 5 == len(first.models["digits_resnet20_standard"].items)
    (a,), (b,) = first.models.values(), again.models.values()
    assert a.checksum == b.checksum and a.report().metrics() == b.report().metrics()


def test_timm_model_with_local_weights(tmp_path, digits):
    import timm

    torch.manual_seed(0)
    backbone = timm.create_model("test_convnext", num_classes=10, in_chans=3).eval()
    weights = tmp_path / "convnext.pt"
    torch.save(backbone.state_dict(), weights)
    result = benchmark(
        f"timm:test_convnext@{weights}", "digits", ONE_ATTACK, num_images=32, progress=False
    )
    expected_model = NormalizedClassifier(backbone, digits.mean, digits.std)
    images = torch.stack([x for x, _ in digits.robustness_subset("test", 32, 0)])
    labels = torch.tensor([int(y) for _, y in digits.robustness_subset("test", 32, 0)])
    with torch.no_grad():
        expected = (expected_model(images).argmax(1) == labels).float().mean().item()
    assert result.models["test_convnext"].report().clean == pytest.approx(expected)
    with pytest.raises(ConfigError, match="timm:NAME@FILE"):
        benchmark("timm:test_convnext", "digits", ONE_ATTACK, num_images=8, progress=False)


def test_any_module_and_any_dataset_in_one_line(digits):
    """The Python call takes an nn.Module that normalises itself and a plain Dataset."""
    model = zoo_model(digits)
    images = torch.stack([x for x, _ in digits.robustness_subset("test", 32, 0)])
    labels = torch.tensor([int(y) for _, y in digits.robustness_subset("test", 32, 0)])
    result = robustart.benchmark(model, TensorDataset(images, labels), SUITE, progress=False)
    on_module = result.models["NormalizedClassifier"].report()
    on_digits = benchmark(model, digits, SUITE, num_images=32, progress=False)
    assert on_module.metrics() == next(iter(on_digits.models.values())).report().metrics()


def test_factory_spec(tmp_path, monkeypatch, digits):
    (tmp_path / "my_models.py").write_text(
        "from robustart.models import create_model\n"
        "def digits_model():\n"
        "    return create_model('resnet20', 10, weights='zoo:digits_resnet20_standard')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    result = benchmark(
        "my_models:digits_model", "digits", ONE_ATTACK, num_images=16, progress=False
    )
    assert list(result.models) == ["digits_model"]
    with pytest.raises(ConfigError, match="has no"):
        benchmark("my_models:missing", "digits", ONE_ATTACK, num_images=16, progress=False)


def test_a_changed_setting_recomputes_only_what_it_affects(tmp_path):
    out = tmp_path / "out"
    benchmark(ZOO, "digits", SUITE, num_images=24, output=out, progress=False)
    changed = {**SUITE, "attacks": [SUITE["attacks"][0], {**SUITE["attacks"][1], "steps": 2}]}
    again = benchmark(ZOO, "digits", changed, num_images=24, output=out, progress=False)
    name = "digits_resnet20_standard"
    assert sorted(again.reused) == sorted(
        f"{name}/{k}"
        for k in ("clean", "attack/fgsm_linf", "corruption/gaussian_noise", "corruption/contrast")
    )
    other_seed = benchmark(ZOO, "digits", SUITE, num_images=24, seed=1, output=out, progress=False)
    assert other_seed.reused == []


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "robustart", "benchmark", *args]


def test_a_killed_benchmark_resumes_without_recomputing_finished_items(tmp_path):
    items = 8
    suite = {
        "attacks": [
            {"name": "pgd", "eps": ["8/255"], "steps": 3, "label": f"pgd_{i}"} for i in range(items)
        ]
    }
    (tmp_path / "suite.yaml").write_text(json.dumps(suite))
    out = tmp_path / "out"
    args = [ZOO, "--suite", str(tmp_path / "suite.yaml"), "--num-images", "16", "--device", "cpu"]
    process = subprocess.Popen(
        _cli(*args, "--output", str(out), "--no-progress"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("items/*/*.json"))) < 2:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = {p: p.stat().st_mtime_ns for p in out.glob("items/*/*.json")}
    assert 2 <= len(finished) < items, "the run should be killed mid-way"
    assert not (out / "benchmark.json").exists()
    resumed = benchmark(ZOO, "digits", suite, num_images=16, output=out, progress=False)
    assert len(resumed.reused) == len(finished)
    assert all(p.stat().st_mtime_ns == t for p, t in finished.items())  # not rewritten
    fresh = benchmark(ZOO, "digits", suite, num_images=16, progress=False)
    (a,), (b,) = resumed.models.values(), fresh.models.values()
    assert a.report().metrics() == b.report().metrics()


#: The two-process check's suite: attacks with random starts, random corruptions, system noise
#: and a minimal-ε search (its per-image budgets come back from both ranks in image order).
DDP_SUITE = {
    **SUITE,
    "system_noise": True,
    "minimal_eps": [{"attack": "pgd", "eps_max": "16/255", "steps": 2, "bisection_steps": 2}],
}


def test_two_ddp_processes_give_the_numbers_of_one(tmp_path):
    (tmp_path / "suite.yaml").write_text(json.dumps(DDP_SUITE))
    common = [ZOO, "--suite", str(tmp_path / "suite.yaml"), "--num-images", "40"]
    common += ["--batch-size", "8", "--device", "cpu", "--no-progress"]
    run = subprocess.run(
        _cli(*common, "--devices", "2", "--output", str(tmp_path / "two")),
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    # one process: in this one (a process less to start)
    benchmark(
        ZOO,
        "digits",
        DDP_SUITE,
        num_images=40,
        batch_size=8,
        device="cpu",
        progress=False,
        output=tmp_path / "one",
    )
    one, two = (json.loads((tmp_path / f / "benchmark.json").read_text()) for f in ("one", "two"))
    assert two["settings"]["world_size"] == 2
    assert all("minimal_eps/pgd2_linf" in m["items"] for m in two["models"].values())
    assert one["leaderboard"] == two["leaderboard"]
    for name, model in one["models"].items():
        assert model["metrics"] == two["models"][name]["metrics"]
        for key, item in model["items"].items():
            assert item["result"] == two["models"][name]["items"][key]["result"], key


def test_on_disk_sets_checked_before_work_and_optional_ones_skipped(tmp_path):
    missing = {
        **ONE_ATTACK,
        "shift": [{"benchmark": "cifar10.1", "data_root": str(tmp_path / "nowhere")}],
    }
    out = tmp_path / "out"
    with pytest.raises(DatasetNotFoundError, match=r"CIFAR-10\.1"):
        benchmark(ZOO, "digits", missing, num_images=8, output=out, progress=False)
    assert not out.exists()  # refused before any work
    missing["shift"][0]["optional"] = True
    result = benchmark(ZOO, "digits", missing, num_images=8, output=out, progress=False)
    assert any("cifar10.1" in note for note in result.notes)
    assert "Notes:" in (out / "leaderboard.md").read_text()
    with pytest.raises(ConfigError, match="unknown keys"):
        load_benchmark_suite({"shift": [{"benchmark": "cifar10.1", "data_root": ".", "x": 1}]})
    # optional skips a set that is not there, not one that is there but broken
    broken = tmp_path / "broken"
    broken.mkdir()
    rng = np.random.default_rng(0)
    np.save(broken / "cifar10.1_v6_data.npy", rng.integers(0, 256, (20, 32, 32, 3), np.uint8))
    np.save(broken / "cifar10.1_v6_labels.npy", np.full(20, 12, np.int64))  # class 12 of 10
    missing["shift"][0]["data_root"] = str(broken)
    with pytest.raises(DatasetNotFoundError, match=r"labels"):
        benchmark(ZOO, "digits", missing, num_images=8, output=tmp_path / "out2", progress=False)


def test_on_disk_set_is_evaluated(tmp_path, digits):
    root = tmp_path / "cifar101"
    root.mkdir()
    rng = np.random.default_rng(0)
    np.save(root / "cifar10.1_v6_data.npy", rng.integers(0, 256, (20, 32, 32, 3), np.uint8))
    np.save(root / "cifar10.1_v6_labels.npy", rng.integers(0, 10, 20).astype(np.int64))
    suite = {"shift": [{"benchmark": "cifar10.1", "data_root": str(root)}]}
    result = benchmark(ZOO, "digits", suite, num_images=8, progress=False)
    (model,) = result.models.values()
    stored = model.item("shift/cifar10.1")
    assert stored["num_images"] == 8  # num_images limits the on-disk set too
    row = dict(zip(result.leaderboard().headers, result.leaderboard().rows[0]))
    assert row["cifar10.1"] == pytest.approx(100 * stored["accuracy"])


def test_broken_models_and_bad_input_are_refused(tmp_path, digits):
    model = zoo_model(digits)
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        last.weight.fill_(float("nan"))
    out = tmp_path / "out"
    with pytest.raises(NonFiniteError):
        benchmark(model, digits, SUITE, num_images=8, output=out, progress=False)
    assert not (out / "benchmark.json").exists()
    with pytest.raises(ConfigError, match="unknown suite"):
        benchmark(ZOO, "digits", "no_such_suite", progress=False)
    with pytest.raises(ConfigError, match="spec"):
        benchmark(ZOO, TensorDataset(torch.rand(2, 3, 32, 32), torch.zeros(2)), ONE_ATTACK)
    with pytest.raises(ConfigError, match="num_images"):
        benchmark(ZOO, "digits", ONE_ATTACK, num_images=0)


def test_the_command_line_refuses_in_one_line(capsys):
    from conftest import expect_cli_error

    expect_cli_error(capsys, "benchmark", ZOO, "--suite", "nope", match="unknown suite 'nope'")
    expect_cli_error(capsys, "benchmark", ZOO, "--num-images", "-1", match="--num-images")
    expect_cli_error(capsys, "benchmark", "zoo:nope", match="no model zoo entry 'nope'")


def test_bits_round_trip():
    values = torch.rand(1001) > 0.5
    assert torch.equal(unpack_bits(pack_bits(values), 1001), values)


def test_a_mapping_names_the_models(digits):
    class Flat(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(3 * 32 * 32, 10)

        def forward(self, x):
            return self.linear(x.flatten(1))

    result = benchmark({"a": Flat(), "b": Flat()}, digits, ONE_ATTACK, num_images=8, progress=False)
    assert list(result.models) == ["a", "b"]


def test_minimal_eps_items_keep_every_image(digits):
    suite = {"minimal_eps": [{"attack": "pgd", "eps_max": "16/255", "steps": 3}]}
    result = benchmark(ZOO, "digits", suite, num_images=12, batch_size=8, progress=False)
    (model,) = result.models.values()
    item = model.item("minimal_eps/pgd3_linf")
    values = item["minimal_eps"]["pgd3_linf"]
    assert len(values) == 12
    broken = sorted(v for v in values if v)  # 0: misclassified clean, None: never broken
    median = item["metrics"]["minimal_eps/pgd3_linf/median"]
    assert broken and median == pytest.approx(broken[(len(broken) - 1) // 2])
    # the leaderboard ranks by the median over all 12 images (0 and never broken included)
    every = sorted(math.inf if v is None else v for v in values)
    median_all = item["metrics"]["minimal_eps/pgd3_linf/median_all"]
    assert math.isfinite(median_all) and median_all == pytest.approx(every[5])
    row = dict(zip(result.leaderboard().headers, result.leaderboard().rows[0]))
    assert row["minimal_eps/pgd3_linf median"] == median_all
    # printed as a budget (before: one decimal, so every L∞ median read 0.0, "misclassified")
    assert f"{median_all:.4f}" in result.leaderboard().text()


def test_minimal_eps_leaderboard_says_when_half_the_images_survive(digits):
    """A budget too small to break half the images: the median over all images is above
    eps_max, shown as "> 1/255", not as nan or as the median of the few broken ones."""
    suite = {"minimal_eps": [{"attack": "pgd", "eps_max": "1/255", "steps": 2}]}
    result = benchmark(ZOO, "digits", suite, num_images=12, batch_size=12, progress=False)
    (model,) = result.models.values()
    metrics = model.item("minimal_eps/pgd2_linf")["metrics"]
    assert metrics["minimal_eps_unbroken/pgd2_linf"] >= 0.5
    assert metrics["minimal_eps/pgd2_linf/median_all"] == math.inf
    row = dict(zip(result.leaderboard().headers, result.leaderboard().rows[0]))
    assert row["minimal_eps/pgd2_linf median"] == "> 1/255"
    assert "> 1/255" in result.leaderboard().text() and "nan" not in result.leaderboard().text()


def test_transfer_and_shift_take_every_model_spec(tmp_path, digits, capsys):
    """One model vocabulary: a plain state dict with --arch and a timm model with local
    weights work in transfer and shift as in benchmark."""
    import timm

    from robustart.main import cli_main

    weights = tmp_path / "weights.pt"
    torch.save(zoo_model(digits).state_dict(), weights)
    torch.manual_seed(0)
    convnext = tmp_path / "convnext.pt"
    torch.save(timm.create_model("test_convnext", num_classes=10).state_dict(), convnext)
    timm_spec = f"timm:test_convnext@{convnext}"
    options = ["--arch", "resnet20", "--no-progress", "--output"]
    transfer = ["transfer", str(weights), timm_spec, "--num-images", "8", "--steps", "2"]
    cli_main([*transfer, *options, str(tmp_path / "transfer")])
    result = json.loads((tmp_path / "transfer" / "transfer.json").read_text())
    assert set(result["models"]) == {"weights", "test_convnext"}
    root = tmp_path / "cifar101"
    root.mkdir()
    rng = np.random.default_rng(0)
    np.save(root / "cifar10.1_v6_data.npy", rng.integers(0, 256, (8, 32, 32, 3), np.uint8))
    np.save(root / "cifar10.1_v6_labels.npy", rng.integers(0, 10, 8).astype(np.int64))
    shift_options = ["--benchmark", "cifar10.1", "--data-root", str(root)]
    cli_main(["shift", str(weights), timm_spec, *shift_options, *options, str(tmp_path / "shift")])
    shift = json.loads((tmp_path / "shift" / "results.json").read_text())
    assert set(shift["results"]) == {"weights", "test_convnext"}
    assert capsys.readouterr().out.strip().endswith(f"results in {tmp_path / 'shift'}")


def test_other_frost_photographs_are_not_reused(tmp_path, monkeypatch):
    """Before: a benchmark rerun with $ROBUSTART_FROST_DIR pointing at other photographs
    reused the stored frost results (68.8 % again; 15.6 % when run afresh)."""
    from PIL import Image

    from robustart.corruptions.frost import FROST_ENV

    suite = {"corruptions": ["frost"], "severities": [5]}
    out = tmp_path / "out"
    first = benchmark(ZOO, "digits", suite, num_images=8, output=out, progress=False)
    again = benchmark(ZOO, "digits", suite, num_images=8, output=out, progress=False)
    assert "digits_resnet20_standard/corruption/frost" in again.reused
    white = tmp_path / "white"
    white.mkdir()
    Image.new("RGB", (300, 300), (255, 255, 255)).save(white / "frost1.png")
    monkeypatch.setenv(FROST_ENV, str(white))
    other = benchmark(ZOO, "digits", suite, num_images=8, output=out, progress=False)
    assert other.reused == ["digits_resnet20_standard/clean"]
    assert first.models != other.models


def test_minimal_eps_results_saved_before_median_all_get_it_from_their_budgets(digits):
    """A result stored by an earlier version (no median_all) is reused, not recomputed: the
    leaderboard computes its median over all images from the stored per-image budgets."""
    suite = {"minimal_eps": [{"attack": "pgd", "eps_max": "16/255", "steps": 3}]}
    first = benchmark(ZOO, "digits", suite, num_images=12, batch_size=12, progress=False)
    expected = dict(zip(first.leaderboard().headers, first.leaderboard().rows[0]))
    (model,) = first.models.values()
    result = model.item("minimal_eps/pgd3_linf")
    for statistics in result["report"]["minimal_eps"].values():
        del statistics["median_all"]
    del result["metrics"]["minimal_eps/pgd3_linf/median_all"]
    row = dict(zip(first.leaderboard().headers, first.leaderboard().rows[0]))
    column = "minimal_eps/pgd3_linf median"
    assert row[column] == expected[column] and isinstance(row[column], float)
