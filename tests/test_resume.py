"""A run killed by a real SIGKILL and resumed with ``--ckpt_path last`` ends exactly as the
same run uninterrupted: bitwise the same weights, optimiser state, ``metrics.csv``,
``robustness.json`` and plots.

Each run is a real ``robustart fit`` process. The kill switch (tests/kill_switch.py) makes the
process send SIGKILL to itself at a chosen point, so the point is exact and the kill is the
operating system's: nothing is flushed, closed or cleaned up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import FAST, RECIPES

TESTS = Path(__file__).resolve().parent
RECIPE = RECIPES / "digits" / "standard.yaml"
RUN = Path("runs") / "digits_standard" / "version_0"
#: The runs' umask: group-writable files, as on a shared cluster project folder.
UMASK = 0o002
#: Files that must be bitwise identical.
OUTPUTS = ("metrics.csv", "robustness.json", "robustness_curves.png", "corruption_heatmap.png")

#: Three short epochs with an evaluation after each, so every kind of output changes per epoch.
RESUME_LAYER = {
    "trainer": {
        "max_epochs": 3,
        "limit_train_batches": 3,
        "limit_val_batches": 2,
        "enable_progress_bar": False,
        "callbacks": [
            {
                "class_path": "robustart.callbacks.RobustnessEvaluation",
                "init_args": {
                    "num_images": 16,
                    "batch_size": 8,
                    "every_n_epochs": 1,
                    "severities": [1, 5],
                    "corruptions": ["gaussian_noise", "contrast"],
                    "progress": False,
                    "attacks": [
                        {"name": "pgd", "norm": "linf", "eps": ["2/255", "8/255"], "steps": 2}
                    ],
                },
            }
        ],
    },
    "checkpoint": {"save_top_k": -1},  # every epoch's checkpoint too, to compare them all
}


def fit(
    folder: Path, *extra: str, kill: dict | None = None, recipe: Path = RECIPE
) -> subprocess.CompletedProcess:
    """Run ``robustart fit`` of a digits recipe in ``folder`` as a separate process."""
    folder.mkdir(parents=True, exist_ok=True)
    layer = folder / "resume.yaml"
    layer.write_text(yaml.safe_dump(RESUME_LAYER))
    args = ["--config", str(recipe), "--config", str(FAST), "--config", str(layer)]
    if kill is not None:
        switch = {
            "trainer": {"callbacks+": [{"class_path": "kill_switch.KillSwitch", "init_args": kill}]}
        }
        (folder / "kill.yaml").write_text(yaml.safe_dump(switch))
        args += ["--config", str(folder / "kill.yaml")]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "robustart.main", "fit", *args, *extra],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=lambda: os.umask(UMASK),
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("uninterrupted")
    result = fit(folder)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder / RUN


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_same_tensors(a, b, where: str) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype, where
        assert torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert set(a) == set(b), f"{where}: keys {set(a) ^ set(b)}"
        for key in a:
            assert_same_tensors(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_same_run(reference: Path, resumed: Path) -> None:
    for name in OUTPUTS:
        assert (resumed / name).read_bytes() == (reference / name).read_bytes(), name
    ref_ckpts = sorted(p.name for p in (reference / "checkpoints").iterdir())
    res_ckpts = sorted(p.name for p in (resumed / "checkpoints").iterdir())
    assert res_ckpts == ref_ckpts  # no leftovers of the killed process, no temporary files
    for name in ref_ckpts:
        a, b = load(reference / "checkpoints" / name), load(resumed / "checkpoints" / name)
        assert (a["epoch"], a["global_step"]) == (b["epoch"], b["global_step"]), name
        assert_same_tensors(a["state_dict"], b["state_dict"], f"{name} weights")
        assert_same_tensors(a["optimizer_states"], b["optimizer_states"], f"{name} optimizer")
        assert_same_tensors(a["lr_schedulers"], b["lr_schedulers"], f"{name} lr schedule")


KILL_POINTS = {
    # inside an epoch, after a training step
    "mid_epoch": {"hook": "on_train_batch_end", "epoch": 1, "batch": 1},
    # after the epoch's robustness evaluation wrote robustness.json and the plots, before the
    # checkpoint at the epoch boundary: the resumed run evaluates that epoch again
    "after_evaluation": {"hook": "on_validation_end", "epoch": 1},
}
SLOW_KILL_POINTS = {
    # while last.ckpt is being written at the boundary to the last epoch
    "during_checkpoint": {"hook": "on_save_checkpoint", "epoch": 2},
    # right after that checkpoint, before the last epoch's first step
    "after_checkpoint": {"hook": "on_train_batch_start", "epoch": 2, "batch": 0},
}


def kill_and_resume(
    folder: Path, kill: dict, recipe: Path = RECIPE, torn_checkpoint: bool = False
) -> Path:
    """Kill a run at ``kill`` and resume it; with ``torn_checkpoint``, first leave a
    temporary checkpoint file as a kill during a checkpoint write would (the resumed run must
    remove it)."""
    killed = fit(folder, kill=kill, recipe=recipe)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    if torn_checkpoint:
        torn = folder / RUN / "checkpoints" / ".tmp-12345-last.ckpt"
        torn.write_bytes(b"half a checkpoint")
    resumed = fit(folder, "--ckpt_path", "last", recipe=recipe)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr
    return folder / RUN


@pytest.mark.slow  # both points are covered by the run killed twice below
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_killed_run_resumes_bitwise(point, uninterrupted, tmp_path):
    """Also: a temporary file left by a kill during a checkpoint write, next to the intact
    previous checkpoint, is removed on resuming and the run still ends bitwise the same."""
    resumed = kill_and_resume(tmp_path, KILL_POINTS[point], torn_checkpoint=True)
    assert_same_run(uninterrupted, resumed)


@pytest.mark.slow
@pytest.mark.parametrize("point", list(SLOW_KILL_POINTS))
def test_killed_run_resumes_bitwise_at_the_boundary(point, uninterrupted, tmp_path):
    assert_same_run(uninterrupted, kill_and_resume(tmp_path, SLOW_KILL_POINTS[point]))


def test_run_killed_twice_resumes_bitwise(uninterrupted, tmp_path):
    """Killed inside an epoch, resumed, killed again after the next epoch's robustness
    evaluation (before its checkpoint), resumed again with a torn temporary checkpoint file
    beside the intact one: the run ends bitwise as the uninterrupted one, the temporary file
    removed."""
    killed = fit(tmp_path, kill=KILL_POINTS["mid_epoch"])
    assert killed.returncode == -signal.SIGKILL
    killed = fit(
        tmp_path, "--ckpt_path", "last", kill=KILL_POINTS["after_evaluation"] | {"epoch": 2}
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert "resuming from" in killed.stderr
    (tmp_path / RUN / "checkpoints" / ".tmp-12345-last.ckpt").write_bytes(b"half a checkpoint")
    resumed = fit(tmp_path, "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_run(uninterrupted, tmp_path / RUN)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["pgd_at", "free_at", "fast_at"])
def test_adversarial_training_resumes_bitwise(name, tmp_path):
    """Attack random starts, Free-AT's carried perturbation and the catastrophic-overfitting
    guard's fixed batch and best weights continue exactly after a kill."""
    recipe = RECIPES / "digits" / f"{name}.yaml"
    run = Path("runs") / f"digits_{name}" / "version_0"
    reference = fit(tmp_path / "reference", recipe=recipe)
    assert reference.returncode == 0, reference.stderr[-3000:]
    kill_and_resume(tmp_path / "resumed", KILL_POINTS["mid_epoch"], recipe=recipe)
    assert_same_run(tmp_path / "reference" / run, tmp_path / "resumed" / run)


def test_outputs_respect_the_umask_and_leave_no_temporary_files(uninterrupted):
    """Every file of a run is readable by collaborators as the user's umask says (0664 under
    umask 002, not mkstemp's 0600), and no temporary file is left behind."""
    files = [p for p in uninterrupted.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"metrics.csv", "robustness.json", "last.ckpt", "robustness_curves.png"} <= names
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o666 & ~UMASK, path
        assert not path.name.startswith("."), path


@pytest.mark.slow
def test_ddp_run_resumes_bitwise(tmp_path):
    """Two CPU processes (gloo): the checkpoint holds both ranks' random-number states and
    each rank continues from its own."""
    ddp = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]
    reference = fit(tmp_path / "reference", *ddp)
    assert reference.returncode == 0, reference.stderr[-3000:]
    killed = fit(tmp_path / "resumed", *ddp, kill=KILL_POINTS["mid_epoch"])
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    resumed = fit(tmp_path / "resumed", *ddp, "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_run(tmp_path / "reference" / RUN, tmp_path / "resumed" / RUN)
    last = load(tmp_path / "resumed" / RUN / "checkpoints" / "last.ckpt")
    state = next(v for k, v in last["callbacks"].items() if k.startswith("RunCheckpoint"))
    assert len(state["robustart_resume"]["rng"]) == 2
