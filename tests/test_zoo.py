"""The model zoo: every planned entry is built and checksummed, every entry has a model card that
matches its weights, and the README's zoo table is the one generated from the cards."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import ROOT

from robustart.errors import ConfigError
from robustart.evaluation.zoo_cards import (
    CARD_SCHEMA,
    README_BEGIN,
    README_END,
    load_cards,
    readme_with_zoo_table,
    write_cards,
    zoo_table,
)
from robustart.models import create_model
from robustart.models.weights import sha256_of
from robustart.models.zoo import load_index

ZOO = ROOT / "model_zoo"


def _card(name: str, family: str, technique: str, **results: float) -> dict:
    return {
        "schema": CARD_SCHEMA,
        "name": name,
        "family": family,
        "technique": technique,
        "parameters": 1_000_000,
        "results": results,
    }


def test_every_zoo_entry_is_built_as_planned_and_checksummed():
    """zoo.yaml holds entries of model_zoo/plan.yaml (the plan may run ahead of the zoo: an
    entry lands with its card), each with the plan's recipe, family, technique and seed."""
    plan = yaml.safe_load((ZOO / "plan.yaml").read_text(encoding="utf-8"))
    index = load_index()
    assert set(index) <= set(plan), f"not in plan.yaml: {sorted(set(index) - set(plan))}"
    for name, entry in index.items():
        spec = plan[name]
        assert (entry["family"], entry["technique"]) == (spec["family"], spec["technique"])
        assert entry["recipe"] == spec["recipe"]
        assert entry.get("seed") == spec.get("seed")
        assert sha256_of(ZOO / entry["file"]) == entry["sha256"], name
    for name, spec in plan.items():
        for recipe in spec["recipe"].split("+"):
            assert (ROOT / recipe).is_file(), f"{name}: no recipe {recipe}"


def test_the_zoo_covers_five_families_each_standard_and_pgd_at():
    """The study zoo: at least five architecture families, each trained with the standard and
    the PGD-AT recipe, two CIFAR ResNet depths, and an augmentation technique on two families."""
    index = load_index()
    techniques: dict[str, set[str]] = {}
    for entry in index.values():
        techniques.setdefault(entry["family"], set()).add(entry["technique"])
    both = sorted(f for f, t in techniques.items() if {"standard", "pgd_at"} <= t)
    assert len(both) >= 5, f"families with standard and PGD-AT: {both}"
    augmented = sorted(f for f, t in techniques.items() if t & {"mixup", "augmix"})
    assert len(augmented) >= 2, f"families with an augmentation: {augmented}"
    resnets = {e["model"] for e in index.values() if e["family"] == "cifar_resnet"}
    assert {"resnet20", "resnet32"} <= resnets


def test_the_zoo_stays_small():
    index = load_index()
    size = sum((ZOO / e["file"]).stat().st_size for e in index.values())
    assert size < 40e6, f"the zoo weighs {size / 1e6:.1f} MB"


def test_every_entry_has_a_card_that_matches_its_weights():
    index = load_index()
    cards = {card["name"]: card for card in load_cards()}
    assert set(cards) == set(index)
    for name, card in cards.items():
        entry = index[name]
        assert card["sha256"] == entry["sha256"], f"{name}: card of other weights; rebuild cards"
        assert (card["family"], card["technique"], card["recipe"]) == (
            entry["family"],
            entry["technique"],
            entry["recipe"],
        )
        model = create_model(entry["model"], entry["num_classes"])
        assert card["parameters"] == sum(p.numel() for p in model.parameters())
        results = card["results"]
        assert 0 <= results["worst_case_linf @8/255"] <= results["clean"] <= 100
        assert (ZOO / "cards" / f"{name}.md").is_file()


def test_the_readme_zoo_table_is_generated_from_the_cards():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    expected = readme_with_zoo_table(readme, zoo_table(load_cards()))
    assert readme == expected, "README zoo table is stale: run `python tools/build_zoo.py readme`"


def test_zoo_table_groups_by_family_then_technique_and_marks_missing_values():
    cards = [
        _card("vit_pgd", "vit", "pgd_at", clean=70.0),
        _card("cnn_std", "cnn", "standard", clean=99.0, pgd=10.0),
        _card("vit_std", "vit", "standard", clean=80.0, pgd=1.0),
        _card("cnn_pgd", "cnn", "pgd_at", clean=95.0, pgd=60.0),
    ]
    table = zoo_table(cards)
    assert table.headers == ["entry", "family", "technique", "params (M)", "clean", "pgd"]
    assert [row[0] for row in table.rows] == ["vit_std", "vit_pgd", "cnn_std", "cnn_pgd"]
    assert table.rows[1][-1] is None and "| - |" in table.markdown()
    assert table.rows[2][3:] == [1.0, 99.0, 10.0]


def test_readme_table_replacement_keeps_the_rest_and_needs_both_markers():
    table = zoo_table([_card("a", "cnn", "standard", clean=99.0)])
    readme = f"intro\n{README_BEGIN}\nold table\n{README_END}\nrest\n"
    new = readme_with_zoo_table(readme, table)
    assert new.startswith(f"intro\n{README_BEGIN}\n| entry |")
    assert new.endswith(f"{README_END}\nrest\n") and "old table" not in new
    assert readme_with_zoo_table(new, table) == new
    with pytest.raises(ConfigError, match="zoo-table markers"):
        readme_with_zoo_table("no markers here", table)
    # table None only checks the markers (build_zoo.py cards does, before benchmarking)
    assert readme_with_zoo_table(readme, None) == readme
    with pytest.raises(ConfigError, match="zoo-table markers"):
        readme_with_zoo_table(f"{README_END}\n{README_BEGIN}", None)


def test_load_cards_refuses_a_card_of_another_schema(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"schema": "other"}), encoding="utf-8")
    with pytest.raises(ConfigError, match="schema"):
        load_cards(tmp_path)
    (tmp_path / "a.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a JSON model card"):
        load_cards(tmp_path)


def test_write_cards_refuses_an_unknown_entry_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match="no model zoo entry digits_nope"):
        write_cards(["digits_nope"], output=tmp_path, workdir=tmp_path / "work")
    assert not (tmp_path / "work").exists()


@pytest.mark.slow
def test_write_cards_measures_an_entry_on_the_card_suite(tmp_path):
    (card,) = write_cards(
        ["digits_resnet20_standard"],
        output=tmp_path,
        workdir=tmp_path / "work",
        num_images=16,
        progress=False,
    )
    saved = json.loads((tmp_path / "digits_resnet20_standard.json").read_text(encoding="utf-8"))
    assert saved == card and card["evaluation"]["num_images"] == 16
    results = card["results"]
    assert results["autoattack_fast_linf @8/255"] <= results["pgd20_linf @8/255"] + 1e-9
    assert results["worst_case_linf @8/255"] <= results["autoattack_fast_linf @8/255"] + 1e-9
    assert "unnorm. mCE" in results and "mCE" not in results


def test_study_recipes_use_zoo_entries_with_their_family_and_technique():
    from robustart.evaluation.study import load_study

    index = load_index()
    studies = sorted((ROOT / "recipes" / "studies").glob("*.yaml"))
    assert studies
    for path in studies:
        for model in load_study(path).models:
            name = model.spec.removeprefix("zoo:")
            assert name in index, f"{path.name}: no zoo entry {name}"
            assert (model.family, model.technique) == (
                index[name]["family"],
                index[name]["technique"],
            ), f"{path.name}: {name}"
