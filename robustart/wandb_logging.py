"""What robustart logs to Weights & Biases besides the scalars: the run's nested config,
robustness tables and charts keyed by epoch, and the figures, each at the step of its scalars.

Every evaluation of :class:`~robustart.callbacks.RobustnessEvaluation` logs, in one
``wandb.log`` call at the ``trainer/global_step`` of its scalars (with ``epoch``):

* ``robustness_curves/history``: a table with one row per evaluation of this run so far
  (``epoch``, ``step``, then accuracies in %: clean, each attack at each ε, each worst case,
  the corruption mean; corruption errors in %: mCE or unnormalised mCE);
* ``robustness_curves/accuracy_over_epochs`` (and ``corruption_error_over_epochs``): line
  plots of the history against the epoch;
* ``robustness_curves/accuracy_vs_eps_<attack>`` and ``accuracy_vs_severity``: accuracy vs ε
  (L∞ in units of 1/255) and vs corruption severity, one line per evaluated epoch, backed by the
  long tables ``eps_curves`` (``epoch, attack, norm, eps, eps_255, accuracy``) and
  ``severity_curves`` (``epoch, corruption, severity, accuracy``);
* ``figures/<name>``: the PNGs written next to the run (robustness curves, accuracy over epochs,
  corruption heat map; the gallery at test time).

At test time the sections are ``test_robustness_curves/`` and ``test_figures/`` (without the
over-epochs charts: a test evaluates one checkpoint). Every
section holds one unit (accuracies and errors in percent in the tables and charts, as the
column names say; the scalar sections hold fractions).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robustart.utils import format_eps

if TYPE_CHECKING:
    from lightning.pytorch import Trainer
    from lightning.pytorch.loggers import WandbLogger

    from robustart.evaluation.report import RobustnessReport

#: The most epochs drawn as separate lines in an accuracy-vs-ε or -severity chart (evenly
#: spaced over the history, the latest always among them).
MAX_CURVE_EPOCHS = 8

_FRACTION = re.compile(r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)\s*/\s*\d+(\.\d*)?\s*$")


@dataclass
class Evaluation:
    """One robustness evaluation of a run, as the W&B tables and charts draw it.

    Attributes:
        epoch: ``trainer.current_epoch`` when it ran (the ``epoch`` Lightning logs).
        step: The ``trainer/global_step`` of its scalars.
        report: Its results.
        summary: Its corruption summary metrics (``corruption_error/mce``, ...; see
            :meth:`~robustart.callbacks.RobustnessEvaluation.corruption_summary_metrics`).
    """

    epoch: int
    step: int
    report: RobustnessReport
    summary: Mapping[str, float] = field(default_factory=dict)


# ----------------------------------------------------------------------------- config
def numeric_config(value: Any) -> Any:
    """A config made for W&B's filters: mappings (and jsonargparse namespaces) as nested
    dicts, ``class_path``/``init_args`` pairs as ``{"class": "Name", **init_args}``, and
    fractions written as text (``"16/255"``) as numbers.

    Example:
        >>> numeric_config({"class_path": "robustart.tasks.AdversarialTrainingTask",
        ...                 "init_args": {"eps": "16/255", "steps": 7}})
        {'class': 'AdversarialTrainingTask', 'eps': 0.06274509803921569, 'steps': 7}
    """
    if hasattr(value, "as_dict"):
        value = value.as_dict()
    if isinstance(value, Mapping):
        if "class_path" in value:
            init_args = value.get("init_args") or {}
            if hasattr(init_args, "as_dict"):
                init_args = init_args.as_dict()
            name = str(value["class_path"]).rpartition(".")[2]
            return {"class": name, **numeric_config(dict(init_args))}
        return {str(k): numeric_config(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [numeric_config(v) for v in value]
    if isinstance(value, str) and _FRACTION.match(value):
        top, bottom = value.split("/")
        return float(top) / float(bottom)
    if isinstance(value, Path):
        return str(value)
    return value


def run_config(config: Any) -> dict[str, Any]:
    """The nested W&B config of a ``robustart fit|validate|test`` run from its parsed
    (jsonargparse) config: ``model``, ``data``, ``trainer`` (without its logger and callbacks),
    ``robustness`` (the robustness callback's settings), ``checkpoint`` and the seed, all with
    numeric ε (see :func:`numeric_config`)."""
    raw = config.as_dict() if hasattr(config, "as_dict") else dict(config)
    out: dict[str, Any] = {}
    for key in ("model", "data", "checkpoint", "seed_everything", "ckpt_path"):
        if raw.get(key) is not None:
            out[key] = numeric_config(raw[key])
    trainer = dict(raw.get("trainer") or {})
    callbacks = trainer.pop("callbacks", None) or []
    trainer.pop("logger", None)
    out["trainer"] = numeric_config({k: v for k, v in trainer.items() if v is not None})
    for callback in callbacks if isinstance(callbacks, list) else [callbacks]:
        if isinstance(callback, Mapping) and str(callback.get("class_path", "")).endswith(
            "RobustnessEvaluation"
        ):
            out["robustness"] = numeric_config(callback)
            break
    return out


# ----------------------------------------------------------------------------- trainer
def wandb_loggers(trainer: Trainer) -> list[WandbLogger]:
    """The trainer's W&B loggers (none: an empty list)."""
    from lightning.pytorch.loggers import WandbLogger

    return [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]


def logging_step(trainer: Trainer) -> int:
    """The ``trainer/global_step`` that Lightning gives the metrics logged now with
    ``self.log``: the number of optimizer steps taken (during validation at an epoch's end it
    is one less than ``trainer.global_step`` reads after the step)."""
    loop = getattr(getattr(trainer, "fit_loop", None), "epoch_loop", None)
    steps = getattr(loop, "_batches_that_stepped", None)
    return int(trainer.global_step if steps is None else steps)


# ----------------------------------------------------------------------------- tables
def _pct(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(100.0 * value, 4)


def _norm(report: RobustnessReport, label: str) -> str:
    return report.attack_settings.get(label, {}).get("norm", "linf")


def eps_in_units(eps: float, norm: str) -> float:
    """ε as drawn: in units of 1/255 for L∞, as is for other norms."""
    return eps * 255 if norm == "linf" else eps


def history_columns(history: Sequence[Evaluation]) -> dict[str, list[float | None]]:
    """``{column: values}`` of the history table (percent), one value per evaluation, in
    order: clean, each attack at each ε, each worst case, corruption mean, mCE."""
    columns: dict[str, list[float | None]] = {}

    def put(row: int, name: str, value: float | None) -> None:
        columns.setdefault(name, [None] * len(history))[row] = value

    for row, evaluation in enumerate(history):
        report, summary = evaluation.report, evaluation.summary
        put(row, "clean (%)", _pct(report.clean))
        for label, curve in report.attacks.items():
            for eps, accuracy in curve.items():
                put(row, f"{label} ε={format_eps(eps, _norm(report, label))} (%)", _pct(accuracy))
        for name, value in report.worst_case.items():
            label, _, eps = name.removeprefix("robust/").partition("/eps=")
            put(row, f"{label} ε={eps.replace('_', '/')} (%)", _pct(value))
        mean = report.corruption_mean()
        if mean is not None:
            put(row, "corruption mean (%)", _pct(mean))
        for name, column in (("mce", "mCE (%)"), ("unnormalized_mce", "unnormalized mCE (%)")):
            value = next(
                (v for k, v in summary.items() if k.endswith(f"corruption_error/{name}")), None
            )
            if value is not None:
                put(row, column, round(float(value), 4))
    return columns


def curve_evaluations(count: int, limit: int = MAX_CURVE_EPOCHS) -> list[int]:
    """The evaluations (indices) drawn as lines: all ``count``, or ``limit`` evenly spaced
    ones from the first to the latest.

    Example:
        >>> curve_evaluations(20, 4)
        [0, 6, 13, 19]
    """
    if count <= limit:
        return list(range(count))
    return sorted({round(i * (count - 1) / (limit - 1)) for i in range(limit)})


def wandb_payload(
    history: Sequence[Evaluation],
    figures: Mapping[str, Path],
    prefix: str = "",
    title: str = "",
) -> dict[str, Any]:
    """Everything one evaluation logs to W&B besides its scalars (see the module docstring).

    Args:
        history: Every evaluation of the run so far (this one last); at test time only the
            test evaluations.
        figures: ``{name: PNG path}`` uploaded as ``<prefix>figures/<name>``.
        prefix: ``""`` during fit and validate, ``"test_"`` at test time.
        title: Prefix of the chart titles (model and run).
    """
    import wandb

    section = f"{prefix}robustness_curves"
    head = f"{title}: " if title else ""
    epochs = [evaluation.epoch for evaluation in history]
    data: dict[str, Any] = {}

    columns = history_columns(history)
    table = wandb.Table(columns=["epoch", "step", *columns])
    for row, evaluation in enumerate(history):
        values = (column[row] for column in columns.values())
        table.add_data(evaluation.epoch, evaluation.step, *values)
    data[f"{section}/history"] = table
    if not prefix:  # a test evaluates one checkpoint: no line over epochs
        errors = [c for c in columns if "mCE" in c]
        accuracy = [c for c in columns if c not in errors]
        for name, chosen, unit in (
            ("accuracy_over_epochs", accuracy, "accuracy (%)"),
            ("corruption_error_over_epochs", errors, "corruption error (%)"),
        ):
            if chosen:
                data[f"{section}/{name}"] = wandb.plot.line_series(
                    xs=epochs,
                    ys=[columns[c] for c in chosen],
                    keys=[c.removesuffix(" (%)") for c in chosen],
                    title=f"{head}{unit} over epochs",
                    xname="epoch",
                )

    shown = [history[i] for i in curve_evaluations(len(history))]
    latest = history[-1].report
    eps_rows, severity_rows = [], []
    for evaluation in history:
        epoch, report = evaluation.epoch, evaluation.report
        for label, curve in report.attacks.items():
            norm = _norm(report, label)
            for eps, acc in {0.0: report.clean, **curve}.items():
                eps_rows.append([epoch, label, norm, eps, eps * 255, _pct(acc)])
        for name, curve in report.corruptions.items():
            for severity, acc in {0: report.clean, **curve}.items():
                severity_rows.append([epoch, name, severity, _pct(acc)])
    if eps_rows:
        data[f"{section}/eps_curves"] = wandb.Table(
            columns=["epoch", "attack", "norm", "eps", "eps_255", "accuracy (%)"], data=eps_rows
        )
    if severity_rows:
        data[f"{section}/severity_curves"] = wandb.Table(
            columns=["epoch", "corruption", "severity", "accuracy (%)"], data=severity_rows
        )
    for label in latest.attacks:
        norm = _norm(latest, label)
        xs, ys, keys = [], [], []
        for evaluation in shown:
            report = evaluation.report
            points = {0.0: report.clean, **report.attacks.get(label, {})}
            xs.append([eps_in_units(e, norm) for e in points])
            ys.append([_pct(a) for a in points.values()])
            keys.append(f"epoch {evaluation.epoch}")
        data[f"{section}/accuracy_vs_eps_{label}"] = wandb.plot.line_series(
            xs=xs,
            ys=ys,
            keys=keys,
            title=f"{head}{label}: accuracy (%) vs ε",
            xname="ε (×1/255)" if norm == "linf" else f"ε ({norm})",
        )
    if latest.corruptions:
        xs, ys, keys = [], [], []
        for evaluation in shown:
            report = evaluation.report
            severities = sorted({s for c in report.corruptions.values() for s in c})
            means = [
                sum(c[s] for c in report.corruptions.values() if s in c)
                / sum(1 for c in report.corruptions.values() if s in c)
                for s in severities
            ]
            xs.append([0, *severities])
            ys.append([_pct(report.clean), *(_pct(m) for m in means)])
            keys.append(f"epoch {evaluation.epoch}")
        data[f"{section}/accuracy_vs_severity"] = wandb.plot.line_series(
            xs=xs,
            ys=ys,
            keys=keys,
            title=f"{head}mean accuracy (%) over {len(latest.corruptions)} corruptions vs "
            "severity (0 = clean)",
            xname="severity",
        )
    for name, path in figures.items():
        data[f"{prefix}figures/{name}"] = wandb.Image(str(path))
    return data


def log_to_wandb(trainer: Trainer, data: Mapping[str, Any]) -> None:
    """Log ``data`` to every W&B logger of ``trainer`` at the step (and epoch) of the scalars
    logged now; no W&B logger: nothing."""
    loggers = wandb_loggers(trainer)
    if not loggers or not data:
        return
    payload = {**data, "trainer/global_step": logging_step(trainer), "epoch": trainer.current_epoch}
    for logger in loggers:
        logger.experiment.log(payload)
