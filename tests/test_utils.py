import json
import math

import pytest
import torch
from torch import nn

from robustart.errors import ConfigError, InputRangeError, UnknownNameError
from robustart.registry import Registry
from robustart.utils import (
    atomic_write_json,
    check_images,
    format_eps,
    parse_eps,
    parse_fraction,
    preserve_mode,
    stable_seed,
)


def test_parse_fraction_and_eps():
    assert parse_fraction("8/255") == 8 / 255
    assert parse_fraction(" 1/2 ") == 0.5
    assert parse_fraction(0.25) == 0.25
    assert parse_eps("0") == 0.0
    for bad in ("eight", "1/0", True, None):
        with pytest.raises(ConfigError):
            parse_fraction(bad)
    with pytest.raises(ConfigError, match=">= 0"):
        parse_eps(-0.1)
    with pytest.raises(ConfigError):
        parse_eps(math.inf)


def test_format_eps():
    assert format_eps(8 / 255) == "8/255"
    assert format_eps(0.5) == "0.5"  # 127.5/255 is not a whole multiple
    assert format_eps(0.5, "l2") == "0.5"
    assert format_eps(2 / 255, "l2") == f"{2 / 255:g}"


def test_registry_suggests_close_matches():
    reg: Registry[int] = Registry("widget")
    reg.register("gaussian_noise")(1)
    reg.register("shot_noise")(2)
    assert reg.get("shot_noise") == 2
    with pytest.raises(UnknownNameError, match="Did you mean: gaussian_noise") as info:
        reg.get("gausian_noise")
    assert "Known widgets: gaussian_noise, shot_noise" in str(info.value)
    with pytest.raises(ValueError, match="twice"):
        reg.register("shot_noise")(3)


def test_check_images_rejects_bad_input():
    check_images(torch.rand(2, 3, 4, 4))
    with pytest.raises(InputRangeError, match=r"\[0, 1\]"):
        check_images(torch.rand(2, 3, 4, 4) * 2 - 0.5)
    with pytest.raises(InputRangeError, match="float"):
        check_images(torch.zeros(2, 3, 4, 4, dtype=torch.uint8))
    with pytest.raises(InputRangeError, match=r"\(N, C, H, W\)"):
        check_images(torch.rand(3, 4, 4))
    with pytest.raises(InputRangeError, match="NaN"):
        check_images(torch.full((1, 1, 2, 2), float("nan")))


def test_preserve_mode_restores_every_submodule():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Dropout())
    model.train()
    model[1].eval()  # a deliberately frozen BatchNorm
    with preserve_mode(model, False):
        assert not any(m.training for m in model.modules())
    assert model.training and model[0].training and not model[1].training and model[2].training


def test_stable_seed_is_deterministic():
    assert stable_seed(0, "a", 1) == stable_seed(0, "a", 1)
    assert stable_seed(0, "a", 1) != stable_seed(0, "a", 2)


def test_atomic_write_json(tmp_path):
    path = atomic_write_json(tmp_path / "sub" / "r.json", {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temp files left


def test_results_written_into_a_folder_replaced_by_a_file_are_one_error(tmp_path):
    """Before: a NotADirectoryError traceback when the output folder was replaced by a file
    during a benchmark (after 35 s of work); now an OutputError (one CLI line, exit 2)."""
    from robustart.errors import OutputError, RobustartError
    from robustart.evaluation.results import ItemStore
    from robustart.utils import atomic_output

    (tmp_path / "out").write_text("a file where the output folder was")
    with pytest.raises(OutputError, match="the output folder changed while the command ran"):
        atomic_write_json(tmp_path / "out" / "r.json", {"a": 1})
    with (
        pytest.raises(OutputError, match=r"out/plot\.png"),
        atomic_output(tmp_path / "out" / "plot.png"),
    ):
        pass
    store = ItemStore(tmp_path / "out")
    with pytest.raises(RobustartError, match="cannot write"):
        store.save({"item": "clean", "weights": "0" * 64}, {"result": {}})


def test_tables_with_no_rows_print_their_headers_and_refuse_ragged_rows():
    from robustart.reporting import csv_table, format_table, markdown_table

    assert format_table(["run", "acc"], []) == "run  acc\n---  ---"
    assert markdown_table(["run", "acc"], []) == "| run | acc |\n|---|---|\n"
    assert format_table([], []) == ""
    for table in (format_table, markdown_table, csv_table):
        with pytest.raises(ConfigError, match="row 2 has 3 cells for 2 columns"):
            table(["run", "acc"], [["a", 1.0], ["b", 2.0, "extra"]])
