"""A robustness study as one job: models × one suite, then the study's tables and fits.

A study (RobustART; Su et al., "Is robustness the cost of accuracy?", 2018) evaluates a list
of models, tagged by architecture family and training technique, under one suite, then reads
the results together:

* the leaderboard, grouped by family and technique: clean and per-attack accuracy, the worst
  case over the attacks at the suite's largest L∞ budget, corruption mean and unnormalised mCE,
  system-noise mean/std, parameters and FLOPs;
* the accuracy–robustness Pareto frontiers (clean vs worst-case robust accuracy, clean vs
  corruption accuracy);
* Su et al.'s scaling law: per norm, the mean minimal adversarial distortion of each model (the
  suite's ``minimal_eps`` searches) against ln(clean error), with slope, intercept and R²;
* the transferability matrix over all ordered pairs with the within-family and cross-family
  averages.

Everything is written into one folder (``study.json``, ``study.md``/``.csv``, ``report.html``
and the figures), the benchmark part is resumable like ``robustart benchmark`` (its items are
stored under ``<output>/benchmark``), and the transfer matrix is stored and reused while its
models, images and attack are unchanged. With a ``wandb:`` section, the tables and figures are
logged to one W&B run (job type ``study``).

A study file::

    name: digits_resnets
    data: digits
    num_images: 200
    suite: {attacks: [...], corruptions: [...], minimal_eps: [...]}   # or a suite's name/file
    models:
      - {spec: zoo:digits_resnet20_standard, family: resnet20, technique: standard}
      - {spec: zoo:digits_resnet20_pgd_at, family: resnet20, technique: pgd_at}
    transfer: {name: pgd, norm: linf, eps: 8/255, steps: 10}            # optional
    wandb: {project: robustart}                                          # optional

The ``wandb:`` section takes ``project``, ``entity``, ``group``, ``name``, ``dir``, ``tags``,
``notes`` and ``mode`` (``online``, ``offline``, ``disabled``); that W&B can log (offline, or an
API key / ``wandb login``) is checked before any model is evaluated.

Replicates: models trained the same way with different seeds share a ``group`` (``{spec: A.ckpt,
family: resnet, technique: mixup, group: resnet20_mixup}``); every model still gets its row, and
the study adds a table of mean ± sample std over each group's models, marking (≈) the cells of a
group whose mean is within the spread of its family's ``standard`` group (√(s₁² + s₂²)): such a
technique effect is smaller than the run-to-run variation. Two models of one group with
identical weights are refused: their spread of zero would be no measured variation.
"""

from __future__ import annotations

import html
import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustart.errors import ConfigError
from robustart.evaluation.report import RobustnessReport
from robustart.evaluation.results import BenchmarkResult
from robustart.evaluation.suite import worst_case_metric
from robustart.evaluation.transfer import TransferResult
from robustart.metrics.study import (
    Spread,
    family_transfer_averages,
    grouped_order,
    pareto_frontier,
    scaling_law,
)
from robustart.utils import (
    atomic_write_json,
    atomic_write_text,
    check_seed,
    format_eps,
    read_yaml_file,
)

#: Keys of a study file.
STUDY_KEYS = {
    "name",
    "models",
    "data",
    "data_root",
    "split",
    "num_images",
    "seed",
    "batch_size",
    "suite",
    "transfer",
    "wandb",
}

#: Keys of a study's ``wandb:`` section (arguments of ``wandb.init``).
WANDB_KEYS = {"project", "entity", "group", "name", "dir", "tags", "notes", "mode"}

#: W&B modes in which a run needs no account.
_WANDB_LOCAL_MODES = {"offline", "disabled", "dryrun"}


@dataclass(frozen=True)
class StudyModel:
    """A model of a study.

    Attributes:
        name: Its name in tables and figures.
        spec: What loads it (``zoo:NAME``, a checkpoint, ``timm:NAME@FILE``, ...).
        family: Its architecture family (e.g. ``resnet``, ``vit``).
        technique: Its training technique (e.g. ``standard``, ``pgd_at``).
        group: Its replicate group (models trained alike with different seeds); its own name
            when it has none.
    """

    name: str
    spec: str
    family: str
    technique: str
    group: str = ""

    def __post_init__(self) -> None:
        if not self.group:
            object.__setattr__(self, "group", self.name)


@dataclass
class StudySpec:
    """A parsed study file (see the module docstring)."""

    name: str
    models: list[StudyModel]
    suite: Any = "quick"
    data: str = "digits"
    data_root: str | None = None
    split: str = "test"
    num_images: int | None = 500
    seed: int = 0
    batch_size: int = 128
    transfer: dict[str, Any] | None = None
    wandb: dict[str, Any] | None = None
    whole_split_if_smaller: bool = False


def load_study(spec: str | os.PathLike | Mapping[str, Any]) -> StudySpec:
    """Read and check a study file (or mapping) before anything runs.

    Without ``num_images`` a study evaluates 500 images, or the whole split when it is smaller;
    a ``num_images`` larger than the split is refused when the study runs.

    Raises:
        ConfigError: unknown keys (also in ``wandb:``), no models, duplicate names, a model
            without ``spec``, a group listing one spec twice, a non-integer ``seed``,
            ``batch_size`` or ``num_images``.
    """
    data = dict(spec) if isinstance(spec, Mapping) else read_yaml_file(spec, "study file")
    if not isinstance(data, dict):
        raise ConfigError(f"the study file must hold a mapping, got {type(data).__name__}")
    _refuse_unknown_keys(data, STUDY_KEYS, "study keys")
    entries = data.get("models")
    if not isinstance(entries, list) or not entries:
        raise ConfigError("a study needs `models:`, a list of {spec, family, technique}")
    models: list[StudyModel] = []
    for index, entry in enumerate(entries):
        entry = {"spec": entry} if isinstance(entry, str) else entry
        if not isinstance(entry, Mapping) or not entry.get("spec"):
            raise ConfigError(f"study model {index + 1} needs a `spec` (e.g. zoo:NAME)")
        extra = sorted(set(entry) - {"spec", "name", "family", "technique", "group"})
        if extra:
            raise ConfigError(f"study model {index + 1} has unknown keys {extra}")
        spec_text = str(entry["spec"])
        name = str(entry.get("name") or _default_name(spec_text))
        models.append(
            StudyModel(
                name=name,
                spec=spec_text,
                family=str(entry.get("family", "-")),
                technique=str(entry.get("technique", "-")),
                group=str(entry.get("group") or ""),
            )
        )
    names = [m.name for m in models]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"study models share the names {duplicates}; give each a `name`")
    for group in {m.group for m in models}:
        members = [m for m in models if m.group == group]
        kinds = {(m.family, m.technique) for m in members}
        if len(kinds) > 1:
            raise ConfigError(
                f"study group {group!r} mixes families or techniques {sorted(kinds)}; "
                "replicates of one group must share both"
            )
    for i, first in enumerate(models):
        for second in models[i + 1 :]:
            if first.spec == second.spec:
                raise ConfigError(_same_weights(first, second, "load the same weights"))
    for key in ("transfer", "wandb"):
        if data.get(key) is not None and not isinstance(data[key], Mapping):
            raise ConfigError(f"study `{key}` must be a mapping, got {data[key]!r}")
    if data.get("transfer") and len(models) < 2:
        raise ConfigError(
            f"the study's `transfer:` section attacks each model with examples crafted on the "
            f"others, but the study lists {len(models)} model: add models, or drop `transfer:`"
        )
    if data.get("wandb"):
        _check_wandb_section(data["wandb"])
    num_images = _study_int(data, "num_images", 500, 1, allow_none=True)
    return StudySpec(
        name=str(data.get("name") or "study"),
        models=models,
        suite=data.get("suite", "quick"),
        data=str(data.get("data", "digits")),
        data_root=data.get("data_root"),
        split=str(data.get("split", "test")),
        num_images=num_images,
        seed=check_seed(_study_int(data, "seed", 0, 0), "study seed"),
        batch_size=_study_int(data, "batch_size", 128, 1),
        transfer=dict(data["transfer"]) if data.get("transfer") else None,
        wandb=dict(data["wandb"]) if data.get("wandb") else None,
        whole_split_if_smaller="num_images" not in data,
    )


def _refuse_unknown_keys(data: Mapping[str, Any], known: set[str], what: str) -> None:
    """Raise :class:`ConfigError` naming the keys of ``data`` not in ``known``, with the
    known keys close to each (a misspelt key would otherwise be ignored)."""
    from robustart.registry import close_matches

    unknown = sorted(str(key) for key in set(data) - known)
    if not unknown:
        return
    hints = [f"{key!r} -> {', '.join(close_matches(key, known, n=2))}?" for key in unknown]
    hints = [hint for hint in hints if not hint.endswith("-> ?")]
    raise ConfigError(
        f"unknown {what} {unknown}"
        + (f" (did you mean: {'; '.join(hints)})" if hints else "")
        + f"; allowed: {', '.join(sorted(known))}"
    )


def _study_int(
    data: Mapping[str, Any], key: str, default: int, least: int, allow_none: bool = False
) -> int | None:
    """``data[key]`` (``default`` when absent) as an integer >= ``least``."""
    value = data.get(key, default)
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigError(f"study {key} must be an integer >= {least}, got {value!r}")
    return value


def _same_replicates(group: str, first: StudyModel, second: StudyModel, why: str) -> str:
    return (
        f"study group {group!r} lists {first.name!r} ({first.spec}) and {second.name!r} "
        f"({second.spec}), which {why}: replicates of a group must be "
        "separately trained models (e.g. other seeds), or their spread of zero is no measured "
        "variation; list each model once or give them separate groups"
    )


def _check_wandb_section(section: Mapping[str, Any]) -> None:
    """Refuse unknown keys, an unknown ``mode`` and ``tags`` other than a list of strings in
    a study's ``wandb:`` section."""
    _refuse_unknown_keys(section, WANDB_KEYS, "keys in the study's `wandb:` section")
    mode = section.get("mode")
    if mode is not None and mode not in ("online", "offline", "disabled"):
        raise ConfigError(f"study wandb mode must be online, offline or disabled, got {mode!r}")
    tags = section.get("tags")
    if tags is not None and (
        not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)
    ):
        raise ConfigError(f"study wandb tags must be a list of strings, got {tags!r}")


def check_wandb_ready(section: Mapping[str, Any]) -> None:
    """Check, before any evaluation, that the study's W&B run can be created: ``wandb`` is
    installed, and the run is offline or disabled (``mode:`` of the section, else
    ``WANDB_MODE``) or an API key is known (``WANDB_API_KEY``, ``WANDB_IDENTITY_TOKEN_FILE`` or
    the netrc entry ``wandb login`` writes).

    Raises:
        ConfigError: naming the fix (``WANDB_MODE=offline``, ``mode: offline`` or
            ``wandb login``).
    """
    try:
        import wandb  # noqa: F401
    except ImportError:
        raise ConfigError(
            "the study's `wandb:` section needs the wandb package: pip install wandb, or "
            "remove the section"
        ) from None
    if os.environ.get("WANDB_DISABLED", "").lower() in ("true", "1", "yes"):
        return
    mode = str(section.get("mode") or os.environ.get("WANDB_MODE") or "online").lower()
    if mode in _WANDB_LOCAL_MODES:
        return
    if mode not in ("online", "run"):
        raise ConfigError(f"WANDB_MODE must be online, offline or disabled, got {mode!r}")
    if _wandb_credentials():
        return
    raise ConfigError(
        "the study logs to W&B (its `wandb:` section) but no W&B API key is set and this "
        "machine is not logged in: run `wandb login` (or set WANDB_API_KEY), or log offline "
        "with WANDB_MODE=offline or `mode: offline` in the section (`wandb sync` uploads later)"
    )


def _wandb_credentials() -> bool:
    """Whether W&B has credentials for its server: an environment variable or a netrc entry."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai"
    try:
        from wandb.sdk.lib.wbauth import read_netrc_auth

        return bool(read_netrc_auth(host=host))
    except Exception:  # an older or newer wandb, or a malformed netrc: read it ourselves
        import netrc
        from urllib.parse import urlsplit

        try:
            return netrc.netrc().authenticators(urlsplit(host).hostname or host) is not None
        except (OSError, netrc.NetrcParseError):
            return False


def _default_name(spec: str) -> str:
    from robustart.models.loading import model_names

    return model_names([spec])[0]


# ----------------------------------------------------------------------------- results
def headline_robustness(report: RobustnessReport) -> tuple[float | None, str]:
    """The worst-case robust accuracy of a report and what it is: at the largest L∞ budget of
    its multi-step attacks, the per-image worst case over the attacks there (or the one
    attack's accuracy, named); else the same for the largest budget of another norm.
    ``(None, "")`` without attacks.

    A budget that only single-step FGSM reaches is not taken while another attack runs: the
    weakest attack's accuracy would be called the worst case. With FGSM alone, it is FGSM's.
    """
    budgets: dict[str, set[float]] = {}
    multi_step: dict[str, set[float]] = {}
    for label, curve in report.attacks.items():
        settings = report.attack_settings.get(label, {})
        norm = settings.get("norm", "linf")
        budgets.setdefault(norm, set()).update(curve)
        if settings.get("attack") != "fgsm":
            multi_step.setdefault(norm, set()).update(curve)
    if not budgets:
        return None, ""
    norm = "linf" if "linf" in budgets else sorted(budgets)[0]
    eps = max(multi_step.get(norm) or budgets[norm])
    text = f"{norm} ε={format_eps(eps, norm)}"
    worst = report.worst_case.get(worst_case_metric(eps, norm))
    if worst is not None:
        return worst, f"worst case over attacks, {text}"
    values = {
        label: curve[eps]
        for label, curve in report.attacks.items()
        if eps in curve and report.attack_settings.get(label, {}).get("norm", "linf") == norm
    }
    label = min(values, key=values.__getitem__)
    return values[label], (f"{label}, {text}" if len(values) == 1 else text)


def count_flops(model: nn.Module, image_shape: tuple[int, ...], device: torch.device) -> int:
    """Floating-point operations of one forward pass on one image (torch's flop counter:
    2 per multiply–accumulate of convolutions and matrix products)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *image_shape, device=device))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


@dataclass
class StudyResult:
    """What a study produced.

    Attributes:
        spec: The study.
        benchmark: Every model's results under the suite.
        flops: ``{model: FLOPs of one forward pass on one image}``.
        transfer: The transferability matrix (``None`` without a ``transfer:`` section).
        notes: What was left out and why.
    """

    spec: StudySpec
    benchmark: BenchmarkResult
    flops: dict[str, int]
    transfer: TransferResult | None = None
    notes: list[str] = field(default_factory=list)
    _laws: dict[str, Any] | None = field(default=None, repr=False)

    def reports(self) -> dict[str, RobustnessReport]:
        return {m.name: self.benchmark.models[m.name].report() for m in self.spec.models}

    def leaderboard(self) -> Any:
        """The benchmark's leaderboard grouped by family and technique, with both columns
        and FLOPs, and the headline worst-case robust accuracy (percent)."""
        from robustart.evaluation.benchmarks import Table

        table = self.benchmark.leaderboard()
        by_name = {row[0]: row for row in table.rows}
        models = self.spec.models
        keys = [(m.name, m.family, m.technique) for m in models]
        order = [models[i] for i in grouped_order(keys)]
        reports = self.reports()
        headers = [
            "model",
            "family",
            "technique",
            "MFLOPs",
            "worst-case robust",
            *table.headers[1:],
        ]
        decimals = [0, 0, 0, 1, 1, *(table.decimals or [1] * len(table.headers))[1:]]
        rows = []
        for model in order:
            worst, _ = headline_robustness(reports[model.name])
            rows.append(
                [
                    model.name,
                    model.family,
                    model.technique,
                    self.flops[model.name] / 1e6,
                    None if worst is None else 100 * worst,
                    *by_name[model.name][1:],
                ]
            )
        return Table(headers, rows, decimals)

    def summary(self) -> Any:
        """The leaderboard's headline columns, narrow enough for a terminal: model, family,
        technique, parameters, clean, worst-case robust, corruption mean and unnormalised mCE,
        the median minimal ε of each search, system-noise mean and certified accuracy per
        radius (``study.md`` has them all).
        """
        from robustart.evaluation.benchmarks import Table

        table = self.leaderboard()
        wanted = ["model", "family", "technique", "params (M)", "clean", "worst-case robust"]
        wanted += ["corruption mean", "unnorm. mCE"]
        medians = [
            h for h in table.headers if h.startswith("minimal_eps/") and h.endswith(" median")
        ]
        certified = [h for h in table.headers if h.startswith("certified @")]
        keep = [
            table.headers.index(h)
            for h in [*wanted, *medians, "system noise mean", *certified]
            if h in table.headers
        ]
        decimals = table.decimals or [1] * len(table.headers)
        return Table(
            [table.headers[i].removeprefix("minimal_eps/") for i in keep],
            [[row[i] for i in keep] for row in table.rows],
            [3 if table.headers[i].startswith("minimal_eps/") else decimals[i] for i in keep],
        )

    def replicates(self, narrow: bool = False) -> tuple[Any, dict[str, dict[str, Any]]] | None:
        """Mean ± sample std of every leaderboard column over each replicate group's models,
        or ``None`` when no group has two models.

        A group's cell is marked ``≈`` when its mean is within the spread of its baseline, the
        same family's ``standard`` group (the difference is smaller than the run-to-run
        variation). A family with several standard groups (a scaling study: ResNet-20 and
        ResNet-32) gives each group the standard group of its own parameter count; a group
        that matches none gets no mark. A group of one model shows its bare value: one run has
        no measured spread.

        Args:
            narrow: Keep only the columns of :meth:`summary` (for a terminal).

        Returns:
            A :class:`~robustart.evaluation.benchmarks.Table` of text cells (``"97.2 ± 0.4"``),
            one row per group, with the number of models in ``runs``, and the spreads
            ``{group: {column: Spread}}``.
        """
        from robustart.evaluation.benchmarks import Table

        groups: dict[str, list[StudyModel]] = {}
        for model in self.spec.models:
            groups.setdefault(model.group, []).append(model)
        if all(len(members) < 2 for members in groups.values()):
            return None
        table = self.leaderboard()
        skip = {"model", "family", "technique", "images", "MFLOPs", "params (M)"}
        columns = [h for h in table.headers if h not in skip]
        if narrow:
            shown = set(self.summary().headers)
            columns = [h for h in columns if h.removeprefix("minimal_eps/") in shown]
        index = {h: table.headers.index(h) for h in columns}
        rows_of = {row[0]: row for row in table.rows}
        values = {
            group: {h: [rows_of[m.name][index[h]] for m in members] for h in columns}
            for group, members in groups.items()
        }
        # A text cell is a censored value ("> 16/255": half the images survived a minimal-ε
        # search's largest budget): it has no mean, so its group shows the text, not a spread.
        censored = {
            group: {h: [v for v in cells if isinstance(v, str)] for h, cells in by_column.items()}
            for group, by_column in values.items()
        }
        spreads = {
            group: {
                h: Spread(None, None, 0) if censored[group][h] else Spread.of(cells)
                for h, cells in by_column.items()
            }
            for group, by_column in values.items()
        }
        standard: dict[str, list[str]] = {}
        for group, members in groups.items():
            if members[0].technique == "standard":
                standard.setdefault(members[0].family, []).append(group)
        size = table.headers.index("params (M)") if "params (M)" in table.headers else None

        def params(group: str) -> Any:
            return None if size is None else rows_of[groups[group][0].name][size]

        def baseline_of(group: str, family: str) -> str | None:
            candidates = standard.get(family, [])
            if len(candidates) > 1:  # the standard group of the same size, if exactly one
                candidates = [g for g in candidates if params(g) == params(group)]
            return candidates[0] if len(candidates) == 1 else None

        rows = []
        entries = list(groups.items())
        keys = [(group, members[0].family, members[0].technique) for group, members in entries]
        for group, members in [entries[i] for i in grouped_order(keys)]:
            base = baseline_of(group, members[0].family)
            cells = []
            for h in columns:
                above = censored[group][h]
                if above:
                    runs = len(values[group][h])
                    mixed = len(above) < runs or len(set(above)) > 1
                    cells.append(f"{len(above)} of {runs} runs {above[0]}" if mixed else above[0])
                    continue
                cell = spreads[group][h]
                close = base not in (None, group) and cell.within(spreads[base][h])
                decimals = 3 if h.startswith("minimal_eps/") else 1
                cells.append(cell.text(decimals) + (" ≈" if close else ""))
            rows.append([group, members[0].family, members[0].technique, len(members), *cells])
        headers = [h.removeprefix("minimal_eps/") if narrow else h for h in columns]
        return Table(["group", "family", "technique", "runs", *headers], rows), spreads

    def pareto(self) -> dict[str, dict[str, Any]]:
        """The frontiers: ``{"robust": ..., "corruption": ...}``, each ``{"points": {model:
        (clean %, other %)}, "frontier": [models], "xlabel", "ylabel"}`` (absent when the
        suite has no attacks / corruptions)."""
        reports = self.reports()
        out: dict[str, dict[str, Any]] = {}
        robust = {n: headline_robustness(r) for n, r in reports.items()}
        if all(value is not None for value, _ in robust.values()):
            label = next(iter(robust.values()))[1]
            points = {n: (100 * reports[n].clean, 100 * v) for n, (v, _) in robust.items()}
            out["robust"] = {
                "points": points,
                "frontier": pareto_frontier(points),
                "xlabel": "clean accuracy (%)",
                "ylabel": f"robust accuracy (%), {label}",
            }
        corruption = {n: r.corruption_mean() for n, r in reports.items()}
        if all(value is not None for value in corruption.values()):
            points = {n: (100 * reports[n].clean, 100 * v) for n, v in corruption.items()}
            out["corruption"] = {
                "points": points,
                "frontier": pareto_frontier(points),
                "xlabel": "clean accuracy (%)",
                "ylabel": "mean corruption accuracy (%)",
            }
        return out

    def scaling_laws(self) -> dict[str, tuple[Any, dict[str, tuple[float, float]]]]:
        """Su et al.'s law per norm: ``{norm: (LinearFit, {model: (ln error, mean minimal
        ε)})}`` from the first minimal-ε search of each norm in the suite."""
        if self._laws is not None:
            return self._laws
        reports = self.reports()
        first = next(iter(reports.values()))
        out = {}
        seen: set[str] = set()
        for label, settings in first.minimal_eps_settings.items():
            norm = str(settings.get("norm", "linf"))
            if norm in seen:
                continue
            seen.add(norm)
            distortion = {
                n: math.nan
                if r.minimal_eps[label]["mean"] is None
                else r.minimal_eps[label]["mean"]
                for n, r in reports.items()
            }
            clean = {n: r.clean for n, r in reports.items()}
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    out[norm] = scaling_law(distortion, clean)
                self.notes += [f"{norm} {w.message}" for w in caught]
            except ConfigError as error:
                self.notes.append(f"no {norm} scaling law: {error}")
        self._laws = out
        return out

    def transfer_averages(self) -> dict[str, Any] | None:
        """Within- and cross-family mean accuracy on transferred examples (off-diagonal)."""
        if self.transfer is None:
            return None
        families = {m.name: m.family for m in self.spec.models}
        return family_transfer_averages(
            self.transfer.matrix, self.transfer.sources, self.transfer.targets, families
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``study.json``."""
        laws = self.scaling_laws()
        pareto = self.pareto()
        replicates = self.replicates()
        return {
            "schema": "robustart.study/1",
            "name": self.spec.name,
            "models": {
                m.name: {
                    "spec": m.spec,
                    "family": m.family,
                    "technique": m.technique,
                    "group": m.group,
                    "flops": self.flops[m.name],
                }
                for m in self.spec.models
            },
            "leaderboard": self.leaderboard().to_dict(),
            "replicates": None
            if replicates is None
            else {
                group: {column: spread.to_dict() for column, spread in cells.items()}
                for group, cells in replicates[1].items()
            },
            "pareto": {
                k: {**v, "points": {n: list(p) for n, p in v["points"].items()}}
                for k, v in pareto.items()
            },
            "scaling_law": {
                norm: {
                    "fit": {k: _json_number(v) for k, v in fit.to_dict().items()},
                    "points": {n: list(p) for n, p in points.items()},
                }
                for norm, (fit, points) in laws.items()
            },
            "transfer": None
            if self.transfer is None
            else {**self.transfer.to_dict(), "family_averages": self.transfer_averages()},
            "benchmark": self.benchmark.to_dict(),
            "notes": self.notes,
        }

    def save(self, output: str | os.PathLike) -> dict[str, Path]:
        """Write ``study.json``, ``study.md``, ``study.csv``, the figures and ``report.html``
        into ``output``; returns their paths."""
        from robustart import plots
        from robustart.reporting import html_figure, html_page, html_table

        output = Path(output)
        output.mkdir(parents=True, exist_ok=True)
        table = self.leaderboard()
        data = self.to_dict()
        paths = {
            "json": atomic_write_json(output / "study.json", data),
            "csv": atomic_write_text(output / "study.csv", table.csv()),
        }
        groups = {m.name: m.family for m in self.spec.models}
        figures: dict[str, tuple[Path, str]] = {}
        for key, frontier in self.pareto().items():
            path = plots.save_pareto(
                frontier["points"],
                output / f"pareto_{key}.png",
                frontier["frontier"],
                frontier["xlabel"],
                frontier["ylabel"],
                groups=groups,
                title=f"{self.spec.name}: accuracy–robustness frontier",
            )
            figures[f"pareto_{key}"] = (
                path,
                f"{frontier['ylabel']} vs clean accuracy, one point per model (colour: "
                f"family); the Pareto frontier is marked ({', '.join(frontier['frontier'])}).",
            )
        laws = self.scaling_laws()
        if laws:
            figures["scaling_law"] = (
                plots.save_scaling_law(
                    laws, output / "scaling_law.png", title=f"{self.spec.name}: scaling law"
                ),
                "Mean minimal adversarial distortion vs ln(clean error) per model, with the "
                "least-squares line (Su et al., 2018).",
            )
        if self.transfer is not None:
            figures["transfer"] = (
                plots.save_transfer_heatmap(self.transfer, output / "transfer_heatmap.png"),
                "Accuracy (%) of each target on adversarial examples crafted on each source; "
                "the diagonal is white-box.",
            )
        for name, (path, caption) in self.benchmark.save_figures(output).items():
            figures[name] = (path, caption)
        drawn = {path.name for path, _ in figures.values()}
        for pattern in STUDY_FIGURE_PATTERNS:  # an earlier study's figure would be reported
            for stale in output.glob(pattern):
                if stale.name not in drawn:
                    stale.unlink(missing_ok=True)
        intro = (
            f"{len(self.spec.models)} models on {self.spec.data} {self.spec.split} "
            f"({self.benchmark.settings.get('num_images')} images); accuracies in percent."
        )
        findings = [
            f"Scaling law ({norm}): mean minimal ε = {fit.slope:.4g} · ln(error) + "
            f"{fit.intercept:.4g}, R² = {fit.r2:.3f} over {fit.n} models."
            for norm, (fit, _) in laws.items()
        ]
        averages = self.transfer_averages()
        if averages is not None:
            findings.append(
                "Transfer (accuracy % on examples crafted on another model): within a family "
                f"{_pct_text(averages['within'])}, across families {_pct_text(averages['cross'])}."
            )
        findings += [f"Warning: {w}" for w in self.benchmark.sanity_warnings()]
        findings += [f"Note: {note}" for note in self.notes]
        lines = [f"# robustart study: {self.spec.name}", "", intro, "", table.markdown()]
        replicates = self.replicates()
        if replicates is not None:
            lines += [
                "",
                "Replicates: mean ± sample std over each group's models; ≈ marks a mean within "
                "the spread of its family's standard group (of its size, where the family has "
                "several).",
                "",
                replicates[0].markdown(),
            ]
        lines += [f"- {line}" for line in findings]
        for path, caption in figures.values():
            lines += ["", f"![{caption}]({path.name})", "", f"*{caption}*"]
        paths["markdown"] = atomic_write_text(output / "study.md", "\n".join(lines) + "\n")
        blocks = [f"<p>{html.escape(intro)}</p>", html_table(table.headers, table.formatted())]
        if replicates is not None:
            blocks.append(html_table(replicates[0].headers, replicates[0].formatted()))
        if findings:
            items = "".join(f"<li>{html.escape(line)}</li>" for line in findings)
            blocks.append(f"<ul>{items}</ul>")
        blocks += [html_figure(path, caption) for path, caption in figures.values()]
        paths["html"] = atomic_write_text(
            output / "report.html", html_page(f"robustart study: {self.spec.name}", blocks)
        )
        paths.update({name: path for name, (path, _) in figures.items()})
        return paths


#: The figures :meth:`StudyResult.save` draws itself (the benchmark's are its own
#: ``FIGURE_FILES``); those it does not draw this time are removed from the output folder.
STUDY_FIGURE_PATTERNS = ("pareto_*.png", "scaling_law.png", "transfer_heatmap.png")


def _json_number(value: float | int) -> float | int | None:
    """``value`` for JSON: NaN (an undefined R²) as ``null``."""
    return None if isinstance(value, float) and math.isnan(value) else value


def _pct_text(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


# ----------------------------------------------------------------------------- running
def run_study(
    spec: StudySpec | str | os.PathLike | Mapping[str, Any],
    output: str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> StudyResult:
    """Run a study (see the module docstring) and write its results into ``output``.

    Raises:
        ConfigError: a bad study file, model spec or suite, before any model is evaluated.
    """
    from robustart.attacks import create_attack
    from robustart.evaluation.benchmark import benchmark, evaluation_data
    from robustart.evaluation.transfer import evaluate_transfer
    from robustart.models.loading import (
        load_models,
        model_identity,
        resolve_device,
        state_checksum,
    )
    from robustart.utils import check_output_dir

    spec = spec if isinstance(spec, StudySpec) else load_study(spec)
    output = Path(output)
    check_output_dir(output, "the study's output folder")
    device = resolve_device("auto" if device is None else str(device))
    if spec.wandb is not None:
        check_wandb_ready(spec.wandb)
        if spec.wandb.get("dir") is not None:  # W&B falls back to /tmp without a word
            check_output_dir(Path(str(spec.wandb["dir"])), "the study's W&B folder (wandb: dir)")
    attack = None
    if spec.transfer is not None:
        settings = dict(spec.transfer)
        try:
            attack = create_attack(settings.pop("name", "pgd"), **settings)
        except TypeError as error:
            raise ConfigError(f"study transfer attack: {error}") from None
    datamodule, subset, data_name = evaluation_data(
        spec.data,
        spec.data_root,
        spec.split,
        spec.num_images,
        spec.seed,
        spec.whole_split_if_smaller,
    )
    models = load_models(
        {m.name: m.spec for m in spec.models}, datamodule, data_name, device=device
    )
    checksums = {name: state_checksum(model) for name, model in models.items()}
    _refuse_identical_replicates(spec.models, checksums)
    result = benchmark(
        {m.name: m.spec for m in spec.models},
        spec.data,
        spec.suite,
        data_root=spec.data_root,
        split=spec.split,
        num_images=spec.num_images,
        batch_size=spec.batch_size,
        seed=spec.seed,
        device=device,
        output=output / "benchmark",
        progress=progress,
        whole_split_if_smaller=spec.whole_split_if_smaller,
    )
    image, _ = subset[0]
    flops = {name: count_flops(model, tuple(image.shape), device) for name, model in models.items()}
    transfer = None
    if attack is not None:
        identity = {
            "attack": attack.config,
            "models": {
                m.name: {"weights": checksums[m.name], **model_identity(m.spec, models[m.name])}
                for m in spec.models
            },
            "data": data_name,
            "split": spec.split,
            "num_images": len(subset),
            "seed": spec.seed,
        }
        stored = _read_json(output / "transfer.json")
        if stored is not None and stored.get("identity") == identity:
            transfer = _transfer_from_dict(stored["result"])
        else:
            images = torch.stack([subset[i][0] for i in range(len(subset))]).to(device)
            labels = torch.as_tensor([int(subset[i][1]) for i in range(len(subset))], device=device)
            transfer = evaluate_transfer(
                models, images, labels, attack, seed=spec.seed, batch_size=spec.batch_size
            )
            atomic_write_json(
                output / "transfer.json", {"identity": identity, "result": transfer.to_dict()}
            )
    study = StudyResult(spec, result, flops, transfer, notes=list(result.notes))
    saved = study.save(output)
    if spec.wandb is not None:
        log_study_to_wandb(study, output, spec.wandb, figures=saved)
    return study


def _refuse_identical_replicates(models: list[StudyModel], checksums: dict[str, str]) -> None:
    """Raise :class:`ConfigError` when two models of the study have the same weights
    (``checksums``: ``{model name: state checksum}``): replicates of one group, or one
    checkpoint listed under two groups (techniques), which the study would compare as if they
    were different networks."""
    for i, first in enumerate(models):
        for second in models[i + 1 :]:
            if checksums[first.name] != checksums[second.name]:
                continue
            why = f"hold the same weights (sha256 {checksums[first.name][:12]}...)"
            raise ConfigError(_same_weights(first, second, why))


def _same_weights(first: StudyModel, second: StudyModel, why: str) -> str:
    """The message for two study models with the same weights: replicates of one group, or
    one network under two groups (techniques)."""
    if first.group == second.group:
        return _same_replicates(first.group, first, second, why)
    return _same_model_twice(first, second, why)


def _same_model_twice(first: StudyModel, second: StudyModel, why: str) -> str:
    return (
        f"study models {first.name!r} ({first.spec}; group {first.group!r}, technique "
        f"{first.technique!r}) and {second.name!r} ({second.spec}; group {second.group!r}, "
        f"technique {second.technique!r}) {why}: the study would compare a network with "
        "itself under two names. List each trained model once, under the technique it was "
        "trained with"
    )


def _read_json(path: Path) -> dict[str, Any] | None:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _transfer_from_dict(data: Mapping[str, Any]) -> TransferResult:
    return TransferResult(
        sources=list(data["sources"]),
        targets=list(data["targets"]),
        matrix=torch.tensor(data["matrix"], dtype=torch.float64),
        clean=torch.tensor(data["clean"], dtype=torch.float64),
        num_images=int(data["num_images"]),
        attack=dict(data["attack"]),
        seed=int(data["seed"]),
    )


def log_study_to_wandb(
    study: StudyResult,
    output: Path,
    settings: Mapping[str, Any],
    figures: Mapping[str, Path] | None = None,
) -> None:
    """One W&B run (job type ``study``, group: the study's name unless given) with the
    leaderboard, the scaling-law fits and the transfer matrix as tables and the figures.

    Args:
        study: The study's results.
        output: The study's output folder (the run's directory unless ``settings["dir"]``).
        settings: The study's ``wandb:`` section.
        figures: The files :meth:`StudyResult.save` wrote; its PNGs are logged (``None``:
            draw them again with ``save``), never other PNGs that happen to be in ``output``.
    """
    import wandb

    table = study.leaderboard()
    run = wandb.init(
        project=settings.get("project", "robustart"),
        entity=settings.get("entity"),
        dir=str(settings.get("dir", output)),
        group=settings.get("group", study.spec.name),
        job_type="study",
        name=settings.get("name", study.spec.name),
        mode=settings.get("mode"),
        tags=settings.get("tags"),
        notes=settings.get("notes"),
        config={
            "study": study.spec.name,
            "models": {
                m.name: {"spec": m.spec, "family": m.family, "technique": m.technique}
                for m in study.spec.models
            },
            "benchmark": study.benchmark.settings,
        },
        reinit="create_new",
    )
    try:
        data: dict[str, Any] = {
            "study/leaderboard": wandb.Table(columns=table.headers, data=table.rows),
        }
        laws = study.scaling_laws()
        if laws:
            data["study/scaling_law"] = wandb.Table(
                columns=["norm", "slope", "intercept", "r2", "n"],
                data=[[n, f.slope, f.intercept, f.r2, f.n] for n, (f, _) in laws.items()],
            )
        if study.transfer is not None:
            headers, rows = study.transfer.table()
            data["study/transfer"] = wandb.Table(columns=headers, data=rows)
        saved = study.save(output) if figures is None else figures
        for png in sorted(p for p in saved.values() if Path(p).suffix == ".png"):
            data[f"study_figures/{Path(png).stem}"] = wandb.Image(str(png))
        run.log(data)
    finally:
        run.finish()
