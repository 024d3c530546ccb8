"""Minimal-ε search (accuracy curves, distortion statistics) and transfer-attack matrices."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
from conftest import accuracy
from single_thread import one_thread  # noqa: F401

from robustart.attacks import PGD, create_attack
from robustart.cli.transfer import build_parser
from robustart.errors import ConfigError, UnknownNameError
from robustart.evaluation import evaluate_transfer, transfer_matrix
from robustart.evaluation.minimal import MinimalEpsilonSearch, accuracy_curve
from robustart.main import cli_main
from robustart.metrics import distortion_statistics, perturbation_norms
from robustart.utils import RESULTS_PREFIX, make_generator

pytestmark = pytest.mark.usefixtures("one_thread")

STANDARD, PGD_AT = "zoo:digits_resnet20_standard", "zoo:digits_resnet20_pgd_at"


# ----------------------------------------------------------------------------- minimal ε
def test_minimal_eps_curve_agrees_with_fixed_eps_sweep(trained_model, heldout):
    images, labels = heldout[0][:32], heldout[1][:32]
    grid = [2 / 255, 4 / 255, 6 / 255, 8 / 255]
    attack_args = {"steps": 10}
    search = MinimalEpsilonSearch(
        "pgd", attack_args, norm="linf", eps_max=grid[-1], grid=grid, bisection_steps=2
    )
    result = search(trained_model, images, labels, generator=make_generator(0))

    # the fixed-ε sweep of the same attack, same seed
    attack = create_attack("pgd", **attack_args)
    fixed = [
        accuracy(
            trained_model,
            attack(trained_model, images, labels, eps=e, generator=make_generator(0)),
            labels,
        )
        for e in grid
    ]
    curve = result.accuracy_curve(grid).tolist()
    n = len(labels)
    for eps, from_curve, swept in zip(grid, curve, fixed):
        assert abs(from_curve - swept) <= 2 / n + 1e-9, (eps * 255, curve, fixed)
    assert curve[-1] < accuracy(trained_model, images, labels)  # the budgets matter

    # exact, monotone consistency of the curve itself
    fine = torch.linspace(0, grid[-1], 33)
    fine_curve = accuracy_curve(result.min_eps, fine)
    assert fine_curve[0].item() == accuracy(trained_model, images, labels)
    assert all(b <= a for a, b in itertools.pairwise(fine_curve.tolist()))
    for eps, value in zip(grid, curve):
        assert value == ((result.min_eps > torch.tensor(eps)).float().mean().item())

    # every bracket (lower, min_eps] is consistent with the examples returned
    broken = result.success
    assert broken.any()
    with torch.no_grad():
        fooled = trained_model(result.adversarial).argmax(1) != labels
    assert fooled[broken].all()
    linf = (result.adversarial - images).flatten(1).abs().amax(1)
    assert (linf[broken] <= result.min_eps[broken] + 1e-6).all()
    assert (result.lower[broken] < result.min_eps[broken]).all()
    unbroken = result.clean_correct & ~broken
    assert (result.lower[unbroken] == pytest.approx(grid[-1])) if unbroken.any() else True
    assert torch.equal(result.adversarial[~broken], images[~broken])
    # coarse calls plus bisection calls, each over a whole batch
    assert result.attack_calls <= len(grid) + 2


def test_clean_misclassified_get_zero_and_tiny_eps_max_gives_inf(trained_model, heldout):
    images, labels = heldout[0][:16].clone(), heldout[1][:16].clone()
    wrong = torch.tensor([0, 3, 7])
    labels[wrong] = (labels[wrong] + 1) % 10  # now clean-misclassified
    search = MinimalEpsilonSearch("pgd", {"steps": 3}, norm="linf", eps_max=1e-4)
    result = search(trained_model, images, labels, generator=make_generator(0))
    clean_correct = result.clean_correct
    assert not clean_correct[wrong].any()
    assert (result.min_eps[~clean_correct] == 0).all()
    assert torch.isinf(result.min_eps[clean_correct]).all()
    assert torch.equal(result.adversarial, images)
    assert not result.success.any()
    clean = clean_correct.float().mean().item()
    assert result.accuracy_curve([0.0, 1e-4, 1.0]).tolist() == pytest.approx([clean] * 3)
    assert result.distortion_statistics().count == 0
    assert result.distortion_statistics().mean == {"linf": None}


def test_minimal_search_with_apgd_l2_and_batches(trained_model, heldout):
    images, labels = heldout[0][:12], heldout[1][:12]
    search = MinimalEpsilonSearch(
        "apgd", {"steps": 5}, norm="l2", eps_max=4.0, coarse_steps=3, bisection_steps=2
    )
    assert search.grid == (1.0, 2.0, 4.0)
    result = search(trained_model, images, labels, generator=make_generator(1), batch_size=5)
    assert result.min_eps.shape == (12,) and result.norm == "l2"
    broken = result.success
    assert broken.sum() >= 6  # a standard model falls at L2 4.0
    l2 = (result.adversarial - images).flatten(1).norm(dim=1)
    assert (l2[broken] <= result.min_eps[broken] + 1e-5).all()
    stats = result.distortion_statistics()
    assert stats.count == int(broken.sum())
    assert stats.median["l2"] <= stats.mean["l2"] * 2


def test_distortion_statistics_and_curve_on_hand_built_inputs():
    inf = math.inf
    min_eps = torch.tensor([0.0, 0.1, 0.2, 0.6, inf])
    stats = distortion_statistics({"l2": min_eps}, torch.isfinite(min_eps) & (min_eps > 0))
    assert stats.count == 3
    assert stats.mean["l2"] == pytest.approx(0.3)
    assert stats.median["l2"] == pytest.approx(0.2)

    delta = torch.zeros(4, 1, 2, 2)
    delta[0, 0, 0, 0] = 0.5  # L∞ 0.5, L2 0.5
    delta[1] = 0.1  # L∞ 0.1, L2 0.2
    delta[2, 0, 1] = torch.tensor([0.3, -0.4])  # L∞ 0.4, L2 0.5
    delta[3] = 0.9  # excluded: not successful
    success = torch.tensor([True, True, True, False])
    stats = distortion_statistics(perturbation_norms(delta), success)
    assert stats.count == 3
    assert stats.mean["linf"] == pytest.approx((0.5 + 0.1 + 0.4) / 3)
    assert stats.median["linf"] == pytest.approx(0.4)
    assert stats.mean["l2"] == pytest.approx(0.4)
    assert stats.median["l2"] == pytest.approx(0.5)
    # an even count reports the lower middle value, like PerturbationNorms
    assert distortion_statistics(perturbation_norms(delta[:2])).median["linf"] == pytest.approx(0.1)
    assert stats.to_dict()["linf_mean"] == pytest.approx(1 / 3)

    min_eps = torch.tensor([0.0, 0.1, 0.3, inf])
    curve = accuracy_curve(min_eps, [0.0, 0.1, 0.2, 1.0, 0.05])
    assert curve.tolist() == pytest.approx([0.75, 0.5, 0.5, 0.25, 0.75])
    # a float32 search budget equal to a grid value counts as broken there
    assert accuracy_curve(torch.tensor([8 / 255]), [8 / 255]).item() == 0.0


def test_minimal_search_rejects_bad_settings():
    with pytest.raises(ConfigError, match="must not set 'eps'"):
        MinimalEpsilonSearch("pgd", {"eps": 0.1}, eps_max=0.1)
    with pytest.raises(ConfigError, match="eps_max must be > 0"):
        MinimalEpsilonSearch("pgd", eps_max=0)
    with pytest.raises(ConfigError, match=">= 0"):
        MinimalEpsilonSearch("pgd", eps_max=-1)
    with pytest.raises(ConfigError, match="grid budgets"):
        MinimalEpsilonSearch("pgd", eps_max=0.1, grid=[0.05, 0.2])
    with pytest.raises(ConfigError, match="differs"):
        MinimalEpsilonSearch(PGD(norm="l2"), norm="linf", eps_max=1.0)
    with pytest.raises(UnknownNameError, match="Did you mean"):
        MinimalEpsilonSearch("pgdd", eps_max=0.1)
    with pytest.raises(ConfigError, match="does not support norm"):
        MinimalEpsilonSearch("square", norm="l1", eps_max=1.0)
    search = MinimalEpsilonSearch(PGD(norm="l2", steps=3), eps_max="1/2", grid=["1/4"])
    assert search.grid == (0.25, 0.5) and search.config["eps_max"] == 0.5


# ----------------------------------------------------------------------------- transfer
@pytest.fixture(scope="module")
def zoo_models():
    from robustart.data import DigitsDataModule
    from robustart.models import create_model

    data = DigitsDataModule()
    models = {
        ref[4:]: create_model("resnet20", 10, mean=data.mean, std=data.std, weights=ref).eval()
        for ref in (STANDARD, PGD_AT)
    }
    images, labels = data.dataset("test")[:64]
    return models, images, labels


def test_transfer_diagonal_is_white_box_and_transfer_is_weaker(zoo_models):
    models, images, labels = zoo_models
    attack = create_attack("pgd", eps="16/255", steps=5)
    result = evaluate_transfer(models, images, labels, attack, seed=3)
    white_box = torch.tensor(
        [
            accuracy(m, attack(m, images, labels, generator=make_generator(3)), labels)
            for m in models.values()
        ]
    )
    assert torch.equal(torch.diagonal(result.matrix), white_box)  # exactly, same seed
    assert result.sources == result.targets == list(models)
    for s, t in itertools.permutations(range(len(models)), 2):
        # examples crafted on another model hurt a target less than its own white-box attack
        assert result.matrix[s, t] >= result.matrix[t, t], result.matrix
    assert result.matrix[0, 0] < 0.5 < result.matrix[1, 1]  # standard falls, PGD-AT holds
    clean = torch.tensor([accuracy(m, images, labels) for m in models.values()])
    torch.testing.assert_close(result.clean, clean)
    assert result.white_box() == pytest.approx(dict(zip(models, white_box.tolist())))
    # the matrix helper returns the same numbers; sources and targets may differ
    assert torch.equal(transfer_matrix(models, images, labels, attack, seed=3), result.matrix)
    one_way = transfer_matrix(
        {"standard": models["digits_resnet20_standard"]},
        images,
        labels,
        attack,
        targets=models,
        seed=3,
    )
    assert torch.equal(one_way, result.matrix[:1])


def _fake_lightning_checkpoint(model, path, **robustart_info):
    info = {"model": "resnet20", "num_classes": 10, "in_channels": 3, **robustart_info}
    torch.save(
        {
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
            "hyper_parameters": {"model": "resnet20", "num_classes": 10, "in_channels": 3},
            "robustart": info,
        },
        path,
    )
    return path


def test_transfer_cli_writes_table_and_files(zoo_models, tmp_path, capsys):
    models, _, _ = zoo_models
    ckpt = tmp_path / "digits_at" / "version_0" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    _fake_lightning_checkpoint(models["digits_resnet20_pgd_at"], ckpt)
    out = tmp_path / "transfer"
    args = [STANDARD, PGD_AT, str(ckpt), "--eps", "16/255", "--steps", "2"]
    args += ["--num-images", "24", "--batch-size", "16", "--output", str(out)]
    assert cli_main(["transfer", *args]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "crafted on \\ evaluated on" in printed and "digits_at/version_0:last" in printed
    assert printed.splitlines()[-1] == f"{RESULTS_PREFIX}{out}"
    # the progress bar counts source models × batches: 3 × ceil(24 / 16)
    assert "transfer: 100%" in captured.err and "6/6" in captured.err
    for name in ("transfer.md", "transfer.csv", "transfer.json", "transfer.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    summary = json.loads((out / "transfer.json").read_text())
    names = ["digits_resnet20_standard", "digits_resnet20_pgd_at", "digits_at/version_0:last"]
    assert summary["sources"] == summary["targets"] == names
    assert summary["num_images"] == 24 and summary["attack"]["steps"] == 2
    matrix = torch.tensor(summary["matrix"])
    assert matrix.shape == (3, 3)
    # the checkpoint holds the zoo's PGD-AT weights: same row, same column
    torch.testing.assert_close(matrix[1], matrix[2])
    torch.testing.assert_close(matrix[:, 1], matrix[:, 2])
    markdown = (out / "transfer.md").read_text()
    assert "| clean |" in markdown and "digits_resnet20_pgd_at" in markdown
    assert (out / "transfer.csv").read_text().startswith("crafted on \\ evaluated on,")


def test_transfer_progress_bar_can_be_turned_off(tmp_path, capsys):
    args = [STANDARD, "--steps", "1", "--num-images", "4", "--output", str(tmp_path)]
    assert cli_main(["transfer", *args, "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "transfer:" in captured.err  # the one-line settings summary, not a bar
    assert "%|" not in captured.err and "batch/s" not in captured.err
    assert captured.out.splitlines()[-1] == f"{RESULTS_PREFIX}{tmp_path}"


def test_evaluate_transfer_advances_a_progress_bar_per_source_and_batch(zoo_models):
    import io

    from tqdm import tqdm

    models, images, labels = zoo_models
    attack = create_attack("fgsm", eps="8/255")
    with tqdm(file=io.StringIO()) as bar:
        evaluate_transfer(models, images[:10], labels[:10], attack, batch_size=4, progress=bar)
    assert bar.total == bar.n == len(models) * 3


def _expect_error(capsys, *args, match):
    with pytest.raises(SystemExit) as info:
        cli_main(["transfer", *map(str, args)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert match in err, err
    assert "Traceback" not in err and err.count("robustart: error:") == 1
    return err


def test_transfer_cli_bad_input(zoo_models, tmp_path, capsys):
    models, _, _ = zoo_models
    out = ["--output", tmp_path / "o", "--num-images", "4"]
    _expect_error(capsys, STANDARD, "--attack", "pgdd", *out, match="Did you mean: pgd")
    _expect_error(capsys, "zoo:digits_resnet20_standrd", *out, match="no model zoo entry")
    _expect_error(capsys, tmp_path / "missing.ckpt", *out, match="checkpoint not found")
    _expect_error(capsys, STANDARD, "--attack", "cw", "--norm", "linf", *out, match="norm")
    _expect_error(capsys, STANDARD, "--eps", "-1", *out, match=">= 0")
    _expect_error(capsys, STANDARD, "--attack-arg", "stepz=3", *out, match="Accepted settings")
    _expect_error(capsys, STANDARD, "--data", "cifar10", *out, match="pass --data digits")
    other = _fake_lightning_checkpoint(models["digits_resnet20_standard"], tmp_path / "o.ckpt")
    checkpoint = torch.load(other, weights_only=True)
    checkpoint["robustart"]["model"] = "resnet32"
    torch.save(checkpoint, other)
    _expect_error(capsys, other, *out, match="trained with model='resnet32'")
    plain = tmp_path / "plain.pt"
    torch.save(models["digits_resnet20_standard"].state_dict(), plain)
    _expect_error(capsys, plain, *out, match="not a Lightning checkpoint")
    _expect_error(capsys, STANDARD, PGD_AT, "--names", "a", *out, match="--names needs 2")
    assert not (tmp_path / "o").exists()  # nothing half-written


def test_transfer_help_explains_every_option(capsys):
    parser = build_parser()
    for action in parser._actions:
        assert action.help and len(action.help) > 15, action.dest
    with pytest.raises(SystemExit) as info:
        cli_main(["transfer", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--attack", "--eps", "--norm", "--steps", "--attack-arg", "--data"):
        assert option in text
    assert "white-box" in text and "zoo:NAME" in text and "timm:NAME@FILE" in text
