"""``robustart study``: three zoo models through one tiny suite, read as a study."""

import json
import math

import pytest
from wandb_run import offline_runs

from robustart.errors import ConfigError
from robustart.evaluation.study import headline_robustness, load_study, run_study
from robustart.main import cli_main
from robustart.metrics.study import fit_line


def blurred_standard():
    """The standard zoo model behind a 4× down- and upsampling: a weaker model (more clean
    error), so that the study's models have distinct errors (the digits zoo models' errors on
    small subsets tie)."""
    from torch import nn

    from robustart.data.named import create_datamodule
    from robustart.models.loading import load_models

    (model,) = load_models(
        {"m": "zoo:digits_resnet20_standard"}, create_datamodule("digits"), "digits"
    ).values()
    blur = nn.AvgPool2d(3, stride=1, padding=1)
    return nn.Sequential(blur, blur, model)


MODELS = [
    {"spec": "zoo:digits_resnet20_standard", "family": "a", "technique": "standard"},
    {"spec": "zoo:digits_resnet20_pgd_at", "family": "a", "technique": "pgd_at"},
    {"spec": "zoo:digits_resnet20_trades", "family": "b", "technique": "trades"},
    {"spec": "test_study:blurred_standard", "family": "b", "technique": "blur"},
]
STUDY = {
    "name": "tiny",
    "num_images": 48,
    "batch_size": 48,
    "models": MODELS,
    "suite": {
        "attacks": [
            {"name": "fgsm", "eps": ["8/255"]},
            {"name": "pgd", "eps": ["8/255", "32/255"], "steps": 3},
        ],
        "corruptions": ["contrast"],
        "severities": [5],
        "minimal_eps": [
            {
                "attack": "pgd",
                "norm": "linf",
                "eps_max": "96/255",
                "steps": 3,
                "bisection_steps": 3,
            },
            {"attack": "pgd", "norm": "l2", "eps_max": 6.0, "steps": 3, "bisection_steps": 3},
        ],
    },
    "transfer": {"name": "fgsm", "eps": "32/255"},
}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    output = tmp_path_factory.mktemp("study")
    return run_study(STUDY, output, device="cpu", progress=False), output


def test_study_files_table_and_grouping(study):
    result, output = study
    for name in ("study.json", "study.md", "study.csv", "report.html", "scaling_law.png"):
        assert (output / name).stat().st_size > 0, name
    for name in ("pareto_robust.png", "pareto_corruption.png", "transfer_heatmap.png"):
        assert (output / name).is_file(), name
    data = json.loads((output / "study.json").read_text())
    assert data["schema"] == "robustart.study/1"
    table = data["leaderboard"]
    assert table["headers"][:5] == ["model", "family", "technique", "MFLOPs", "worst-case robust"]
    # grouped by family (in study order), then technique (standard, pgd_at, trades first)
    assert [row[0] for row in table["rows"]] == [
        "digits_resnet20_standard",
        "digits_resnet20_pgd_at",
        "digits_resnet20_trades",
        "blurred_standard",
    ]
    flops = {m: v["flops"] for m, v in data["models"].items()}
    assert flops["digits_resnet20_trades"] == flops["digits_resnet20_standard"] > 1e7  # same net
    assert flops["blurred_standard"] == flops["digits_resnet20_standard"]  # pooling: no FLOPs
    # the headline: PGD's accuracy at the largest L∞ budget (32/255, where only PGD ran)
    reports = result.reports()
    for row in table["rows"]:
        worst, label = headline_robustness(reports[row[0]])
        assert row[4] == pytest.approx(100 * worst)
        assert "32/255" in label
        assert worst == pytest.approx(reports[row[0]].attacks["pgd3_linf"][32 / 255])
    page = (output / "report.html").read_text()
    assert page.count("<figure>") >= 5 and "Scaling law (linf)" in page


def test_pareto_frontier_is_the_non_dominated_models(study):
    result, _ = study
    for frontier in result.pareto().values():
        points = frontier["points"]
        for name, (x, y) in points.items():
            dominated = any(
                (a >= x and b >= y) and (a > x or b > y)
                for other, (a, b) in points.items()
                if other != name
            )
            assert (name in frontier["frontier"]) == (not dominated), name


def test_scaling_law_fits_the_points_it_reports(study):
    result, _ = study
    data = result.to_dict()
    assert set(data["scaling_law"]) <= {"linf", "l2"}
    for law in data["scaling_law"].values():
        points = law["points"]
        assert len(points) == law["fit"]["n"] >= 2
        for name, (log_error, distortion) in points.items():
            clean = result.reports()[name].clean
            assert log_error == pytest.approx(math.log(1 - clean))
            assert distortion > 0
        refit = fit_line([p[0] for p in points.values()], [p[1] for p in points.values()])
        assert law["fit"]["slope"] == pytest.approx(refit.slope)
        assert law["fit"]["r2"] == pytest.approx(refit.r2, nan_ok=True)
    # the standard model makes no error on these images: left out of the fits (ln 0), noted
    assert set(data["scaling_law"]) == {"linf", "l2"}
    for law in data["scaling_law"].values():
        assert "digits_resnet20_standard" not in law["points"] and law["fit"]["n"] == 3
    assert sum("left out" in note for note in data["notes"]) == 2


def test_transfer_matrix_and_family_averages(study):
    result, _ = study
    transfer = result.transfer
    assert transfer.matrix.shape == (4, 4)
    averages = result.transfer_averages()
    names = transfer.sources
    family = {m.name: m.family for m in result.spec.models}
    within = [
        float(transfer.matrix[i, j])
        for i, s in enumerate(names)
        for j, t in enumerate(names)
        if s != t and family[s] == family[t]
    ]
    assert averages["within"] == pytest.approx(sum(within) / len(within))
    assert averages["within_pairs"] == 4 and averages["cross_pairs"] == 8


def test_a_second_run_reuses_every_result(study, monkeypatch):
    result, output = study
    stamp = (output / "transfer.json").stat().st_mtime_ns
    again = run_study(STUDY, output, device="cpu", progress=False)
    assert len(again.benchmark.reused) == sum(len(m.items) for m in again.benchmark.models.values())
    assert (output / "transfer.json").stat().st_mtime_ns == stamp  # not recomputed
    assert again.leaderboard().rows == result.leaderboard().rows


def test_bad_study_files_are_refused_before_work(tmp_path, capsys):
    with pytest.raises(ConfigError, match="unknown study keys"):
        load_study({**STUDY, "modelz": []})
    with pytest.raises(ConfigError, match="needs `models:`"):
        load_study({"name": "x", "models": []})
    with pytest.raises(ConfigError, match="share the names"):
        load_study({"models": [MODELS[0], MODELS[0]]})
    with pytest.raises(ConfigError, match="needs a `spec`"):
        load_study({"models": [{"family": "a"}]})
    path = tmp_path / "study.yaml"
    path.write_text("models: [{spec: zoo:nope}]\n")
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["study", str(path), "--output", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("robustart: error:") and "nope" in err[0]


def test_study_logs_its_tables_and_figures_to_wandb(tmp_path, monkeypatch):
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    small = {
        **STUDY,
        "num_images": 16,
        "batch_size": 16,
        "suite": {"attacks": [{"name": "fgsm", "eps": ["8/255"]}]},
        "transfer": None,
        "wandb": {"project": "robustart", "dir": str(tmp_path)},
    }
    run_study(small, tmp_path / "out", device="cpu", progress=False)
    wandb.teardown()
    (run,) = offline_runs(tmp_path)
    assert run.run["job_type"] == "study" and run.run["run_group"] == "tiny"
    (row,) = run.rows_with("study/leaderboard")
    table = run.table(row, "study/leaderboard")
    assert len(table["data"]) == 4 and table["columns"][1] == "family"
    assert run.image(row, "study_figures/pareto_robust").is_file()


def test_replicate_groups_give_mean_and_spread_and_mark_effects_within_it(tmp_path):
    """Two models in one group (the standard model and a blurred copy stand in for two seeds):
    the replicate table holds their mean ± sample std, computed here from the leaderboard."""
    from robustart.metrics.study import Spread

    models = [
        {
            "spec": "zoo:digits_resnet20_standard",
            "family": "a",
            "technique": "standard",
            "group": "std",
        },
        {
            "spec": "test_study:blurred_standard",
            "family": "a",
            "technique": "standard",
            "group": "std",
        },
        {"spec": "zoo:digits_resnet20_pgd_at", "family": "a", "technique": "pgd_at"},
        # a second standard group of another size in the family (a scaling study): the
        # ResNet-20 groups keep the ResNet-20 standard group as their baseline (before: the
        # family's last standard group, this one, was everyone's baseline)
        {"spec": "zoo:digits_resnet32_standard", "family": "a", "technique": "standard"},
    ]
    spec = {
        "name": "replicates",
        "num_images": 32,
        "batch_size": 32,
        "models": models,
        "suite": {
            "attacks": [{"name": "fgsm", "eps": ["8/255"]}],
            # a budget the adversarially trained model survives on most images: its median
            # minimal ε is censored ("> 1/255"), which has no mean
            "minimal_eps": [{"attack": "pgd", "eps_max": "1/255", "steps": 2}],
        },
    }
    result = run_study(spec, tmp_path, device="cpu", progress=False)
    table, spreads = result.replicates()
    column = "minimal_eps/pgd2_linf median"
    board_rows = {row[0]: row for row in result.leaderboard().rows}
    medians = {
        name: row[result.leaderboard().headers.index(column)] for name, row in board_rows.items()
    }
    assert medians["digits_resnet20_pgd_at"] == "> 1/255"
    by_group = {row[0]: row for row in table.rows}
    assert by_group["digits_resnet20_pgd_at"][table.headers.index(column)] == "> 1/255"
    pair = [medians["digits_resnet20_standard"], medians["blurred_standard"]]
    std_cell = by_group["std"][table.headers.index(column)]
    if all(isinstance(v, str) for v in pair):
        assert std_cell == "> 1/255"
    elif any(isinstance(v, str) for v in pair):
        assert std_cell == "1 of 2 runs > 1/255"
    else:
        assert std_cell.startswith(f"{(pair[0] + pair[1]) / 2:.3f} ± ")
    board = result.leaderboard()
    clean = {row[0]: row[board.headers.index("clean")] for row in board.rows}
    first, second = clean["digits_resnet20_standard"], clean["blurred_standard"]
    mean, std = (first + second) / 2, abs(first - second) / math.sqrt(2)
    assert spreads["std"]["clean"].n == 2
    assert spreads["std"]["clean"].mean == pytest.approx(mean)
    assert spreads["std"]["clean"].std == pytest.approx(std)
    rows = {row[0]: row for row in table.rows}
    assert rows["std"][3] == 2 and rows["std"][table.headers.index("clean")] == (
        f"{mean:.1f} ± {std:.1f}"
    )
    pgd_at = clean["digits_resnet20_pgd_at"]
    within = abs(pgd_at - mean) <= std
    cell = rows["digits_resnet20_pgd_at"][table.headers.index("clean")]
    assert cell.endswith("≈") == within
    assert Spread.of([pgd_at]).within(spreads["std"]["clean"]) == within
    assert not any(str(cell).endswith("≈") for cell in rows["std"][4:])  # its own baseline
    data = json.loads((tmp_path / "study.json").read_text())
    assert data["replicates"]["std"]["clean"]["n"] == 2
    assert "Replicates" in (tmp_path / "study.md").read_text()


def test_a_replicate_group_must_share_family_and_technique():
    models = [
        {
            "spec": "zoo:digits_resnet20_standard",
            "family": "a",
            "technique": "standard",
            "group": "g",
        },
        {"spec": "zoo:digits_resnet20_pgd_at", "family": "a", "technique": "pgd_at", "group": "g"},
    ]
    with pytest.raises(ConfigError, match="replicates of one group must share"):
        load_study({"models": models})


def test_the_readme_main_job_runs_as_a_quick_trial(tmp_path, capsys):
    """The README's first command, ``robustart study recipes/studies/digits_techniques.yaml``,
    on 4 images (``--num-images``; the cost is the forward and backward passes, about 70 s
    for 12 images on two CPU cores): its six zoo models, the printed summary with both
    families and three techniques, and the Pareto plot the README promises."""
    from conftest import ROOT

    output = tmp_path / "main_job"
    cli_main(
        [
            "study",
            str(ROOT / "recipes" / "studies" / "digits_techniques.yaml"),
            "--num-images",
            "4",
            "--output",
            str(output),
            "--no-progress",
        ]
    )
    printed = capsys.readouterr().out
    data = json.loads((output / "study.json").read_text())
    assert len(data["models"]) == 6
    assert {(m["family"], m["technique"]) for m in data["models"].values()} == {
        (family, technique)
        for family in ("cifar_resnet", "mlp_mixer")
        for technique in ("standard", "pgd_at", "mixup")
    }
    assert "digits_mixer_tiny_mixup" in printed and "Pareto frontier (robust)" in printed
    assert {row[0] for row in data["leaderboard"]["rows"]} == set(data["models"])
    for figure in ("pareto_robust.png", "pareto_corruption.png", "transfer_heatmap.png"):
        assert (output / figure).stat().st_size > 0
    images = json.loads((output / "benchmark" / "benchmark.json").read_text())["settings"]
    assert images["num_images"] == 4


def test_the_headline_is_not_a_budget_only_fgsm_reaches():
    """Before: with PGD at 4 and 8/255 and FGSM at 16/255, the study's "worst-case robust"
    column (and its Pareto frontier) was FGSM's accuracy at 16/255, the weakest attack."""
    from robustart.evaluation import RobustnessReport

    report = RobustnessReport(
        num_images=16,
        clean=1.0,
        attacks={"pgd5_linf": {4 / 255: 0.8, 8 / 255: 0.6}, "fgsm_linf": {16 / 255: 0.3}},
        attack_settings={
            "pgd5_linf": {"attack": "pgd", "norm": "linf"},
            "fgsm_linf": {"attack": "fgsm", "norm": "linf"},
        },
    )
    assert headline_robustness(report) == (0.6, "pgd5_linf, linf ε=8/255")
    fgsm_only = RobustnessReport(
        num_images=16,
        clean=1.0,
        attacks={"fgsm_linf": {16 / 255: 0.3}},
        attack_settings={"fgsm_linf": {"attack": "fgsm", "norm": "linf"}},
    )
    assert headline_robustness(fgsm_only) == (0.3, "fgsm_linf, linf ε=16/255")
