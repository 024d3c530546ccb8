"""Minimal-ε searches in robustness suites: parsing, metric names, values and DDP equality."""

import math
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from robustart.data import DigitsDataModule
from robustart.errors import ConfigError, UnknownNameError
from robustart.evaluation import (
    RobustnessReport,
    evaluate_robustness,
    iterate_chunks,
    load_suite,
)
from robustart.evaluation.minimal import MinimalEpsilonSearch, accuracy_curve
from robustart.metrics import MinimalEpsilons, minimal_eps_statistics
from robustart.utils import make_generator, stable_seed

SEARCH = {
    "attack": "pgd",
    "norm": "linf",
    "eps_max": "16/255",
    "steps": 2,
    "coarse_steps": 2,
    "bisection_steps": 2,
}
SUITE = {
    "attacks": [{"name": "fgsm", "eps": ["8/255"]}],
    "minimal_eps": [SEARCH, {**SEARCH, "norm": "l2", "eps_max": 2.0, "label": "pgd_l2"}],
}
LABELS = ("pgd2_linf", "pgd_l2")
NAMES = [f"minimal_eps/{label}/{name}" for label in LABELS for name in ("mean", "median")]
NAMES += [f"minimal_eps_unbroken/{label}" for label in LABELS]
CHUNK = 8
#: The suite of the two-process check: the searches, an attack with a random start and two
#: random corruptions.
DDP_SUITE = {
    **SUITE,
    "attacks": [{"name": "pgd", "eps": ["2/255", "8/255"], "steps": 3}],
    "corruptions": ["gaussian_noise", "contrast"],
    "severities": [1, 5],
}


def test_suite_parses_minimal_eps_entries_and_refuses_bad_ones():
    suite = load_suite(SUITE)
    assert [entry.label for entry in suite.minimal_eps] == ["pgd2_linf", "pgd_l2"]
    search = suite.minimal_eps[0].search
    assert search.eps_max == pytest.approx(16 / 255) and search.bisection_steps == 2
    assert search.grid == pytest.approx((8 / 255, 16 / 255))
    assert search.attack.steps == 2 and suite.minimal_eps[1].search.norm == "l2"
    # the searches are not correctness tests: the suite's test keys are unchanged
    assert suite.keys() == ["robust/clean", "robust/fgsm_linf/eps=8_255"]
    with pytest.raises(ConfigError, match="eps_max"):
        load_suite({"minimal_eps": [{"attack": "pgd"}]})
    with pytest.raises(ConfigError, match="share the label"):
        load_suite({"minimal_eps": [SEARCH, SEARCH]})
    with pytest.raises(ConfigError, match="mapping"):
        load_suite({"minimal_eps": ["pgd"]})
    with pytest.raises(ConfigError, match="bad settings"):
        load_suite({"minimal_eps": [{**SEARCH, "stepz": 3}]})
    with pytest.raises(UnknownNameError):
        load_suite({"minimal_eps": [{**SEARCH, "attack": "pgdd"}]})


def test_metric_names_of_a_suite_with_minimal_eps():
    suite = load_suite(SUITE)
    names = set(RobustnessReport.placeholder(suite).metrics("test_"))
    assert {f"test_{name}" for name in NAMES} <= names
    assert "test_robust/fgsm_linf/eps=8_255" in names
    # the metric names of the existing tests do not change
    without = load_suite({"attacks": SUITE["attacks"]})
    assert set(RobustnessReport.placeholder(without).metrics()) == {
        n for n in RobustnessReport.placeholder(suite).metrics() if not n.startswith("minimal")
    }


def _direct_min_eps(model, subset, seed):
    """Per-image minimal ε of each search, by calling MinimalEpsilonSearch on every chunk with
    the generator the suite seeds for it."""
    values = {}
    for spec in SUITE["minimal_eps"]:
        settings = dict(spec)
        label = settings.pop("label", None)
        search = MinimalEpsilonSearch.from_settings(settings)
        label = label or search.attack.label
        parts = []
        for chunk_id, images, labels in iterate_chunks(subset, CHUNK):
            generator = make_generator(stable_seed(seed, f"minimal_eps/{label}", chunk_id))
            parts.append(search(model, images, labels, generator=generator).min_eps)
        values[label] = torch.cat(parts)
    return values


def test_suite_minimal_eps_equals_direct_search(trained_model):
    subset = DigitsDataModule().robustness_subset("val", 20, seed=2)
    report = evaluate_robustness(
        trained_model, iterate_chunks(subset, CHUNK), load_suite(SUITE), device="cpu", seed=3
    )
    direct = _direct_min_eps(trained_model, subset, seed=3)
    metrics = report.metrics()
    for label, min_eps in direct.items():
        expected = minimal_eps_statistics(min_eps)
        assert report.minimal_eps[label] == expected
        # by hand: over the images broken within eps_max; unbroken over all 20 images
        broken = min_eps[torch.isfinite(min_eps) & (min_eps > 0)].double()
        assert len(broken) >= 3  # the searches break some images (a test that can fail)
        assert expected["mean"] == pytest.approx(broken.mean().item())
        assert expected["median"] == broken.sort().values[(len(broken) - 1) // 2].item()
        assert expected["unbroken"] == torch.isinf(min_eps).sum().item() / 20
        # over all 20 (0 and inf included): the 10th smallest, where accuracy falls to 50 %
        assert expected["median_all"] == min_eps.double().sort().values[9].item()
        for name, value in expected.items():
            key = f"minimal_eps/{label}/{name}"
            key = f"minimal_eps_unbroken/{label}" if name == "unbroken" else key
            assert metrics[key] == value
    assert set(NAMES) <= set(metrics)
    assert report.minimal_eps_settings["pgd_l2"]["eps_max"] == 2.0
    # the JSON form keeps the searches
    again = RobustnessReport.from_dict(report.to_dict())
    assert again.minimal_eps == report.minimal_eps
    assert again.minimal_eps_settings == report.minimal_eps_settings
    assert again.metrics() == metrics


def test_minimal_epsilons_metric_restores_chunk_order():
    metric = MinimalEpsilons(["a"])
    metric.update("a", torch.tensor([0.4, math.inf]), chunk_id=1)
    metric.update("a", torch.tensor([0.0, 0.1, 0.2]), chunk_id=0)
    assert metric.values("a").tolist() == pytest.approx([0.0, 0.1, 0.2, 0.4, math.inf])
    stats = metric.compute()["a"]
    assert stats["median"] == pytest.approx(0.2) and stats["unbroken"] == 0.2
    assert stats["mean"] == pytest.approx((0.1 + 0.2 + 0.4) / 3)
    empty = MinimalEpsilons(["a"])
    empty.update("a", torch.tensor([0.0, math.inf]), chunk_id=0)
    assert empty.compute()["a"] == {
        "mean": None,
        "median": None,
        "unbroken": 0.5,
        "median_all": 0.0,
    }
    nan = RobustnessReport(num_images=2, clean=0.5, minimal_eps={"a": empty.compute()["a"]})
    assert math.isnan(nan.metrics()["minimal_eps/a/mean"])


def _ddp_worker(rank, world, port, state, queue):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    from robustart.models import create_model

    model = create_model("resnet20", num_classes=10, mean=(0.3,) * 3, std=(0.33,) * 3)
    model.load_state_dict(state)
    subset = DigitsDataModule().robustness_subset("val", 28, seed=1)
    suite = load_suite(DDP_SUITE)
    report = evaluate_robustness(
        model.eval(), iterate_chunks(subset, CHUNK, rank, world), suite, device="cpu", seed=1
    )
    if rank == 0:
        queue.put(report.metrics())
    dist.destroy_process_group()


@pytest.mark.slow  # tests/test_benchmark.py's two-process check has a search too
def test_ddp_minimal_eps_equals_one_process(trained_model):
    """Two processes (gloo) give one process's numbers: minimal-ε searches, PGD with its
    random start and random corruptions, on 4 chunks, the last one short."""
    subset = DigitsDataModule().robustness_subset("val", 28, seed=1)
    single = evaluate_robustness(
        trained_model, iterate_chunks(subset, CHUNK), load_suite(DDP_SUITE), device="cpu", seed=1
    ).metrics()
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = 29500 + (os.getpid() + 500) % 1000
    mp.start_processes(
        _ddp_worker,
        args=(2, port, trained_model.state_dict(), queue),
        nprocs=2,
        join=True,
        start_method="spawn",
    )
    distributed = queue.get(timeout=60)
    assert set(NAMES) <= set(distributed)
    assert {"robust/pgd3_linf/eps=8_255", "corruption/gaussian_noise/5"} <= set(distributed)
    assert distributed == single


def test_median_over_all_images_ranks_the_more_robust_model_higher():
    """By hand: model A leaves 3 of 4 images unbroken and breaks the fourth at 0.01; model B
    breaks all four at 0.02-0.05. Over the broken images A's median (0.01) is below B's
    (0.03), the wrong order; over all images A's is inf (accuracy stays above 50 % up to
    eps_max) and B's 0.03, the budget where B's accuracy falls to 50 %."""
    inf = math.inf
    a = minimal_eps_statistics(torch.tensor([0.01, inf, inf, inf]))
    b = minimal_eps_statistics(torch.tensor([0.02, 0.03, 0.04, 0.05]))
    assert a["median"] == pytest.approx(0.01) and b["median"] == pytest.approx(0.03)
    assert a["median_all"] == inf and b["median_all"] == pytest.approx(0.03)
    # odd count, misclassified images (0) included: the middle value
    c = minimal_eps_statistics(torch.tensor([0.0, 0.0, 0.2, 0.5, inf]))
    assert c["median_all"] == pytest.approx(0.2) and c["median"] == pytest.approx(0.2)
    # even count: the lower middle value, so robust accuracy there is at most 50 %
    d = minimal_eps_statistics(torch.tensor([0.0, 0.1, 0.3, inf]))
    assert d["median_all"] == pytest.approx(0.1)
    assert accuracy_curve(torch.tensor([0.0, 0.1, 0.3, inf]), [0.1]).item() == 0.5
