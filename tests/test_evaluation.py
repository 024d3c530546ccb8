"""The robustness suite, runner, report and epoch-end callback."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from lightning.pytorch import Trainer

from robustart.attacks import PGD
from robustart.callbacks import RobustnessEvaluation
from robustart.corruptions import create_corruption
from robustart.data import DigitsDataModule
from robustart.errors import ConfigError, UnknownNameError
from robustart.evaluation import (
    RobustnessReport,
    RobustnessSuite,
    chunk_ids_for_rank,
    evaluate_robustness,
    iterate_chunks,
)
from robustart.tasks import ClassificationTask
from robustart.utils import make_generator, stable_seed

ATTACKS = [{"name": "pgd", "norm": "linf", "eps": ["2/255", "8/255"], "steps": 3}]
CORRUPTIONS = ["gaussian_noise", "contrast"]


def small_suite():
    return RobustnessSuite(ATTACKS, CORRUPTIONS, severities=[1, 5])


def test_suite_keys_follow_the_naming_scheme():
    assert small_suite().keys() == [
        "robust/clean",
        "robust/pgd3_linf/eps=2_255",
        "robust/pgd3_linf/eps=8_255",
        "corruption/gaussian_noise/1",
        "corruption/gaussian_noise/5",
        "corruption/contrast/1",
        "corruption/contrast/5",
    ]


def test_suite_rejects_bad_specs_at_construction():
    with pytest.raises(UnknownNameError):
        RobustnessSuite([{"name": "pgdd", "eps": 0.1}])
    with pytest.raises(ConfigError, match="no 'eps'"):
        RobustnessSuite([{"name": "pgd"}])
    with pytest.raises(ConfigError, match=">= 0"):
        RobustnessSuite([{"name": "pgd", "eps": [-1]}])
    with pytest.raises(ConfigError, match="share the label"):
        RobustnessSuite([{"name": "pgd", "eps": 0.1}, {"name": "pgd", "eps": 0.2}])
    with pytest.raises(UnknownNameError, match="Did you mean"):
        RobustnessSuite(corruptions=["contrats"])
    with pytest.raises(ConfigError, match="severity"):
        RobustnessSuite(corruptions=["contrast"], severities=[0])


def test_report_metrics_and_means_hand_computed():
    suite = small_suite()
    # correct counts in key order, out of 10 images
    report = RobustnessReport.from_counts(suite, [9, 7, 3, 8, 4, 6, 2], total=10)
    metrics = report.metrics()
    assert metrics["robust/clean"] == 0.9
    assert metrics["robust/pgd3_linf/eps=8_255"] == 0.3
    assert metrics["corruption/gaussian_noise/mean"] == pytest.approx(0.6)
    assert metrics["corruption/contrast/mean"] == pytest.approx(0.4)
    assert metrics["corruption/mean"] == pytest.approx((0.8 + 0.4 + 0.6 + 0.2) / 4)
    assert report.metrics("test/").keys() == {f"test/{k}" for k in metrics}
    assert RobustnessReport.from_dict(report.to_dict()) == report
    assert report.attack_settings["pgd3_linf"]["steps"] == 3


def direct_computation(model, dataset, chunk_size, seed):
    """The suite's numbers recomputed by hand from the documented seeding contract."""
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    labels = torch.tensor([int(dataset[i][1]) for i in range(len(dataset))])
    correct = {}
    pgd = PGD(steps=3)
    for c in range(0, -(-len(labels) // chunk_size)):
        x, y = (
            images[c * chunk_size : (c + 1) * chunk_size],
            labels[c * chunk_size : (c + 1) * chunk_size],
        )

        def add(key, predictions, y=y):
            correct[key] = correct.get(key, 0) + int((predictions == y).sum())

        with torch.no_grad():
            add("robust/clean", model(x).argmax(1))
        for eps, name in ((2 / 255, "2/255"), (8 / 255, "8/255")):
            key = f"robust/pgd3_linf/eps={name.replace('/', '_')}"
            seed_name = f"robust/pgd3_linf/eps={name}"  # the random start's seed name
            generator = make_generator(stable_seed(seed, seed_name, c))
            adv = pgd(model, x, y, eps=eps, generator=generator)
            with torch.no_grad():
                add(key, model(adv).argmax(1))
        for corruption in CORRUPTIONS:
            for severity in (1, 5):
                key = f"corruption/{corruption}/{severity}"
                g = make_generator(stable_seed(seed, key, c))
                with torch.no_grad():
                    add(key, model(create_corruption(corruption)(x, severity, g)).argmax(1))
    return {k: v / len(labels) for k, v in correct.items()}


def test_callback_numbers_equal_direct_computation_under_lightning(trained_model, tmp_path):
    datamodule = DigitsDataModule(batch_size=32)
    task = ClassificationTask(model="resnet20", mean=(0.3,) * 3, std=(0.33,) * 3)
    task.model.load_state_dict(trained_model.state_dict())
    callback = RobustnessEvaluation(
        ATTACKS,
        CORRUPTIONS,
        severities=[1, 5],
        num_images=40,
        batch_size=16,
        seed=3,
        progress=False,
    )
    trainer = Trainer(
        accelerator="cpu",
        logger=False,
        default_root_dir=tmp_path,
        callbacks=[callback],
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=1,
    )
    trainer.validate(task, datamodule=datamodule)  # inference_mode=True, as by default
    logged = {k: float(v) for k, v in trainer.callback_metrics.items()}
    subset = datamodule.robustness_subset("val", 40, seed=3)
    expected = direct_computation(trained_model, subset, 16, seed=3)
    for key, value in expected.items():
        assert logged[key] == pytest.approx(value, abs=1e-6), key
    assert logged["corruption/mean"] == pytest.approx(
        sum(v for k, v in expected.items() if k.startswith("corruption/")) / 4
    )
    assert expected["robust/clean"] > expected["robust/pgd3_linf/eps=8_255"]


def test_evaluation_leaves_mode_and_gradients_as_found(trained_model, heldout):
    model = trained_model
    images, labels = heldout
    chunks = [(0, images[:16], labels[:16])]
    model.train()
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    try:
        before = {k: v.clone() for k, v in model.state_dict().items()}
        evaluate_robustness(model, chunks, small_suite(), device="cpu")
        assert model.training and all(m.training for m in model.modules())
        assert all(torch.all(p.grad == 1) for p in model.parameters())
        after = model.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before)  # BN statistics untouched
    finally:
        model.eval().zero_grad(set_to_none=True)


def test_chunk_assignment_covers_every_chunk_once():
    for world in (1, 2, 3, 5):
        ids = sorted(i for r in range(world) for i in chunk_ids_for_rank(37, 8, r, world))
        assert ids == list(range(5))


def _ddp_worker(rank, world, port, state, queue):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    from robustart.models import create_model

    model = create_model("resnet20", num_classes=10, mean=(0.3,) * 3, std=(0.33,) * 3)
    model.load_state_dict(state)
    subset = DigitsDataModule().robustness_subset("val", 36, seed=1)

    report = evaluate_robustness(
        model.eval(), iterate_chunks(subset, 8, rank, world), small_suite(), device="cpu", seed=1
    )
    if rank == 0:
        queue.put(report.metrics())
    dist.destroy_process_group()


@pytest.mark.slow  # tests/test_benchmark.py runs a two-process check by default
def test_ddp_gives_the_same_numbers_as_one_device(trained_model):
    subset = DigitsDataModule().robustness_subset("val", 36, seed=1)
    single = evaluate_robustness(
        trained_model, iterate_chunks(subset, 8), small_suite(), device="cpu", seed=1
    ).metrics()
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = 29500 + os.getpid() % 1000
    mp.start_processes(
        _ddp_worker,
        args=(2, port, trained_model.state_dict(), queue),
        nprocs=2,
        join=True,
        start_method="spawn",
    )
    distributed = queue.get(timeout=60)
    assert distributed == single
