"""The epoch-end robustness evaluation callback."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn
from lightning.pytorch.utilities.seed import isolate_rng

from robustart.callbacks.run_dir import run_directory
from robustart.corruptions import SEVERITIES
from robustart.errors import ConfigError, RobustartWarning
from robustart.evaluation import (
    DEFAULT_ATTACKS,
    CachedChunks,
    RobustnessReport,
    RobustnessSuite,
    chunk_ids_for_rank,
    evaluate_robustness,
    iterate_chunks,
    load_suite,
)
from robustart.evaluation.certification import (
    CertificationResult,
    certification_metric_names,
    certify_chunks,
    check_certification_settings,
)
from robustart.metrics.corruption import summarize_report, summary_metrics
from robustart.utils import atomic_write_json, check_seed
from robustart.wandb_logging import (
    Evaluation,
    log_to_wandb,
    logging_step,
    wandb_loggers,
    wandb_payload,
)

#: The default epoch-end corruptions (cheap and covering noise, blur, colour and digital).
DEFAULT_CORRUPTIONS = [
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "gaussian_blur",
    "brightness",
    "contrast",
    "jpeg_compression",
]


def check_one_validation_per_epoch(trainer: Trainer) -> None:
    """Refuse a fit that validates more than once per training epoch (``val_check_interval``
    below 1, a number of batches shorter than the epoch, or a time interval).

    The robustness evaluation runs at the end of every validation and records it as one
    epoch, the unit of ``every_n_epochs``, of the history and of the curves over epochs: two
    evaluations in one epoch would run every attack twice and be drawn as one epoch. Called
    when training starts, once the epoch's number of batches is known.

    Raises:
        ConfigError: naming the setting and the fix.
    """
    every, batches = trainer.val_check_batch, trainer.num_training_batches
    if getattr(trainer, "_val_check_time_interval", None) is not None:  # no public accessor
        within = f"val_check_interval {trainer.val_check_interval!r} (a time interval)"
    elif (
        isinstance(every, (int, float))
        and isinstance(batches, (int, float))
        and math.isfinite(batches)
        and every < batches
    ):
        within = (
            f"val_check_interval {trainer.val_check_interval!r}: a validation every {every} "
            f"of the epoch's {batches} training batches"
        )
    else:
        return
    raise ConfigError(
        f"trainer.{within}, but the RobustnessEvaluation callback runs at every validation "
        "and records one evaluation per epoch: it would run its attacks several times an "
        "epoch and record them as one. Validate once per epoch (--trainer.val_check_interval "
        "1.0, the default), or with check_val_every_n_epoch null every N >= "
        f"{batches} batches"
    )


class RobustnessEvaluation(Callback):
    """Measure robustness on a fixed subset every few epochs, and at ``validate``/``test``.

    On a fixed, seeded subset of the validation split (the test split under ``test``), it
    computes clean accuracy, accuracy under each attack at each budget (the robustness curve)
    and accuracy per corruption × severity with their means, and logs them to every logger
    under the names of :mod:`robustart.evaluation.report` (prefixed ``test/`` at test time).
    It works inside Lightning's inference-mode validation loop, leaves the model's mode and
    gradients as it found them, and gives the same numbers under DDP as on one device.

    After each evaluation it also writes, on rank zero, ``robustness.json`` (the history of all
    evaluations) and ``robustness_curves.png`` into the logger's directory, and logs the curves
    as line plots to Weights & Biases when a ``WandbLogger`` is used.

    Suites can be named: ``suite: epoch_end`` (PGD-10 at three ε, APGD-CE-20 and seven
    corruptions) for training, and ``test_suite: autoattack_linf`` (FGSM, PGD-50, AutoAttack
    "standard" and every corruption) for the final ``robustart test``; see ``recipes/suites/``.

    When a suite has corruptions, each evaluation also writes a heat map of accuracy per
    corruption × severity (``corruption_heatmap.png``) and logs the corruption summary (mCE
    normalised by AlexNet's ImageNet-C errors when all 15 benchmark corruptions ran,
    unnormalised mCE, per-category accuracy) as ``corruption_error/mce``,
    ``corruption_error/<name>``, ...; at test time a gallery of the corrupted subset images
    (``corruption_gallery.png``).

    With ``certification`` (off by default), each evaluation also certifies the ℓ2 robustness
    of the Gaussian-smoothed model on the same subset (randomized smoothing, Cohen et al.,
    2019; :mod:`robustart.evaluation.certification`, as a benchmark suite's ``certification:``
    item) and logs ``certified/r=<r>`` (certified accuracy at each radius),
    ``certified/abstention_rate``, ``certified/guess_accuracy`` and, with ``n_predict > 0``,
    ``certified/smoothed_accuracy`` (the smoothed classifier's clean accuracy, PREDICT). It
    costs ``n0 + n + n_predict`` forward passes per image (1,100 per image by default, against
    about ``steps + 1`` forward and backward passes per image and budget for an attack).

    Args:
        suite: The suite run during ``fit``/``validate`` (and ``test`` unless ``test_suite``
            is given): a shipped suite's name, a YAML file or a mapping with ``attacks``,
            ``corruptions`` and ``severities``. Replaces ``attacks``/``corruptions``/
            ``severities``, which must then be left unset.
        test_suite: The suite run at ``test`` (default: the same as during fit), e.g. the
            full ``autoattack_linf``.
        attacks: Attack specifications, e.g. ``[{name: pgd, norm: linf, eps: [2/255, 8/255],
            steps: 10}]``; ``None`` → PGD-10 L∞ at 2, 4 and 8/255; ``[]`` → no attacks.
        corruptions: Corruption names or ``"all"``; ``None`` → seven fast corruptions;
            ``[]`` → none.
        severities: Corruption severities to run (default 1–5).
        num_images: Size of the fixed subset (``None``: the whole split).
        batch_size: Images per evaluation chunk.
        seed: Seed of the subset selection and of all random tests.
        every_n_epochs: Evaluate after every n-th training epoch (and after the last).
        split: Split evaluated during ``fit`` and ``validate``.
        test_split: Split evaluated during ``test``.
        log_curves: Log the curves as W&B line plots (when a WandbLogger is attached).
        save_dir: Where to write ``robustness.json`` and the plot (default: the run's
            directory, next to ``checkpoints/``). A ``fast_dev_run`` writes nothing, as
            Lightning's loggers and checkpoints, unless ``save_dir`` is given.
        progress: Show a progress bar during the evaluation.
        certification: Settings of the randomized-smoothing certification run at each
            evaluation (``None``, the default: none), the keys of a benchmark suite's
            ``certification:`` section, each optional: ``sigma`` (noise standard deviation on
            the [0, 1] pixel scale, > 0; the σ the model was trained with, default 0.25),
            ``n0`` (samples guessing the class, ≥ 1; default 100), ``n`` (samples bounding its
            probability, ≥ 1; default 1,000; no radius exceeds σ·Φ⁻¹(α^(1/n))), ``alpha``
            (error probability in (0, 1); default 0.001), ``radii`` (ℓ2 radii ≥ 0 at which the
            certified accuracy is logged; default 0, 0.25, 0.5, 0.75 and 1), ``batch_size``
            (noisy copies per forward pass; default 500) and ``n_predict`` (PREDICT's samples
            for ``certified/smoothed_accuracy``, 0 = not run; default 0). The noise is seeded
            by ``seed`` and each image's index, so every evaluation draws the same noise.

    Raises:
        ConfigError: A setting out of range (checked here, before any training).
    """

    def __init__(
        self,
        attacks: list[dict[str, Any]] | None = None,
        corruptions: list[str] | str | None = None,
        severities: list[int] | None = None,
        suite: str | dict[str, Any] | None = None,
        test_suite: str | dict[str, Any] | None = None,
        num_images: int | None = 256,
        batch_size: int = 128,
        seed: int = 0,
        every_n_epochs: int = 1,
        split: str = "val",
        test_split: str = "test",
        log_curves: bool = True,
        save_dir: str | None = None,
        progress: bool = True,
        certification: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if every_n_epochs < 1:
            raise ConfigError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if num_images is not None and (
            isinstance(num_images, bool) or num_images != int(num_images) or num_images < 1
        ):
            raise ConfigError(
                f"RobustnessEvaluation num_images must be a whole number >= 1 (or null: the "
                f"whole split), got {num_images!r}"
            )
        for name, value in (("split", split), ("test_split", test_split)):
            if value not in ("train", "val", "test"):
                raise ConfigError(f"{name} must be 'train', 'val' or 'test', got {value!r}")
        if suite is not None:
            given = [
                n
                for n, v in (
                    ("attacks", attacks),
                    ("corruptions", corruptions),
                    ("severities", severities),
                )
                if v is not None
            ]
            if given:
                raise ConfigError(
                    f"give either suite or {'/'.join(given)} to RobustnessEvaluation, not both"
                )
            self.suite = load_suite(suite)
        else:
            self.suite = RobustnessSuite(
                attacks=DEFAULT_ATTACKS if attacks is None else attacks,
                corruptions=DEFAULT_CORRUPTIONS if corruptions is None else corruptions,
                severities=SEVERITIES if severities is None else severities,
            )
        self.test_suite = self.suite if test_suite is None else load_suite(test_suite)
        self.num_images = num_images
        self.batch_size = batch_size
        self.seed = check_seed(seed, "RobustnessEvaluation seed")
        self.every_n_epochs = every_n_epochs
        self.split = split
        self.test_split = test_split
        self.log_curves = log_curves
        self.save_dir = save_dir
        self.progress = progress
        #: The completed certification settings (``None``: no certification).
        self.certification = (
            None if certification is None else check_certification_settings(certification)
        )
        self._chunks: dict[str, CachedChunks] = {}
        #: The report of the latest evaluation.
        self.last_report: RobustnessReport | None = None
        #: The certification of the latest evaluation (with ``certification``).
        self.last_certification: CertificationResult | None = None
        #: ``robustness.json`` of this run and the number of entries it holds (rank zero).
        self._history_path: Path | None = None
        self._history_entries = 0
        #: What the checkpoint being resumed recorded about the history, until applied.
        self._resume_history: dict[str, Any] | None = None
        #: The epoch of the checkpoint loaded for validate/test (``None``: none loaded).
        self._checkpoint_epoch: int | None = None

    @property
    def state_key(self) -> str:
        return self._generate_state_key(
            split=self.split, test_split=self.test_split, save_dir=self.save_dir
        )

    def metric_names(
        self, prefix: str = "", test: bool = False, image_size: int | None = None
    ) -> set[str]:
        """Every metric name an evaluation logs (the fit suite, or the test suite with
        ``test``), e.g. to check a checkpoint's ``monitor`` before training starts.
        ``image_size``: side of the evaluated images, where known (AlexNet-normalised
        corruption errors exist only for ImageNet-scale images)."""
        suite = self.test_suite if test else self.suite
        size = None if image_size is None else (image_size, image_size)
        report = RobustnessReport.placeholder(suite, size)
        names = {*report.metrics(prefix), *self.corruption_summary_metrics(report, prefix)}
        if self.certification is not None:
            names.update(
                certification_metric_names(
                    self.certification["radii"], self.certification["n_predict"] > 0, prefix
                )
            )
        return names

    # ---------------------------------------------------------------- prerequisites
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Check, before any training or attack, that the evaluation can run: a robustart
        datamodule, and evaluation splits that hold images (during ``fit`` also the test split
        that a later ``robustart test`` or ``compare`` evaluates)."""
        splits = {
            "fit": [self.split, self.test_split],
            "validate": [self.split],
            "test": [self.test_split],
        }.get(stage, [])
        for split in dict.fromkeys(splits):
            self._check_split(trainer, split)

    def _check_split(self, trainer: Trainer, split: str) -> None:
        datamodule = trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "robustness_subset"):
            raise ConfigError(
                "RobustnessEvaluation needs a robustart datamodule (with robustness_subset); "
                f"got {type(datamodule).__name__}"
            )
        size = len(datamodule.robustness_subset(split, None, self.seed))
        if size == 0:
            raise ConfigError(
                f"the {split} split of {type(datamodule).__name__} holds no images, so its "
                "robustness cannot be evaluated; check the dataset (or set RobustnessEvaluation "
                "split/test_split to a split that has images)"
            )
        if self.num_images is not None and self.num_images > size:
            rank_zero_warn(
                f"RobustnessEvaluation num_images={self.num_images} but the {split} split holds "
                f"{size} images: all {size} are evaluated",
                category=RobustartWarning,
            )

    # ---------------------------------------------------------------- resume
    def state_dict(self) -> dict[str, Any]:
        path = None if self._history_path is None else str(self._history_path)
        return {"history_path": path, "history_entries": self._history_entries}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume_history = dict(state_dict)

    def on_load_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Remember the epoch of a checkpoint being tested, for the figures' titles."""
        epoch = checkpoint.get("epoch")
        self._checkpoint_epoch = int(epoch) if isinstance(epoch, int) else None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Refuse validations within an epoch (:func:`check_one_validation_per_epoch`); find
        this run's history and, when resuming a killed run, drop the entries written after the
        checkpoint (the resumed run evaluates those epochs again)."""
        check_one_validation_per_epoch(trainer)
        directory = Path(self.save_dir) if self.save_dir else run_directory(trainer)  # collective
        path = directory / "robustness.json"
        resume, self._resume_history = self._resume_history, None
        if not trainer.is_global_zero or not self.writes_files(trainer):
            return
        self._history_path = path
        history = self._read_history(path)
        recorded = (resume or {}).get("history_path")
        if recorded is not None and Path(recorded).resolve() == path.resolve():
            keep = int(resume.get("history_entries", 0))  # type: ignore[union-attr]
            if len(history) > keep:
                history = history[:keep]
                atomic_write_json(path, history)
        self._history_entries = len(history)

    def writes_files(self, trainer: Trainer) -> bool:
        """Whether evaluations are written to disk: not in a ``fast_dev_run`` (a debug run,
        which has no run directory: Lightning falls back to the working directory, where runs
        would append to each other's history) unless ``save_dir`` is given."""
        return self.save_dir is not None or not trainer.fast_dev_run

    @staticmethod
    def _read_history(path: Path) -> list[dict[str, Any]]:
        if not path.is_file():
            return []
        try:
            history = json.loads(path.read_text())
        except json.JSONDecodeError:
            rank_zero_warn(
                f"{path} is not valid JSON; starting a new history", category=RobustartWarning
            )
            return []
        return history if isinstance(history, list) else []

    # ---------------------------------------------------------------- hooks
    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        if trainer.state.fn == "fit":
            epoch = trainer.current_epoch + 1
            last = trainer.max_epochs is not None and epoch >= trainer.max_epochs
            if epoch % self.every_n_epochs and not last:
                return
        self.run(trainer, pl_module, self.split, prefix="")

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.run(trainer, pl_module, self.test_split, prefix="test_", suite=self.test_suite)

    # ---------------------------------------------------------------- work
    def _chunks_for(self, trainer: Trainer, split: str) -> tuple[CachedChunks, int, int]:
        """This process's chunks of the split's subset, their number and the subset's size."""
        datamodule = trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "robustness_subset"):
            self._check_split(trainer, split)  # raises the explanation
        subset = datamodule.robustness_subset(split, self.num_images, self.seed)
        rank, world = trainer.global_rank, trainer.world_size
        n_chunks = len(chunk_ids_for_rank(len(subset), self.batch_size, rank, world))
        if split not in self._chunks:
            workers = getattr(datamodule, "num_workers", 0)
            self._chunks[split] = CachedChunks(
                lambda: iterate_chunks(subset, self.batch_size, rank, world, workers)
            )
        return self._chunks[split], n_chunks, len(subset)

    def run(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        split: str,
        prefix: str = "",
        suite: RobustnessSuite | None = None,
    ) -> RobustnessReport:
        """Evaluate ``suite`` (default: the fit suite) now and log the results.

        The global random-number states are left as found: the evaluation seeds its own
        generators, and training continues with the same data order and augmentation whether
        or not (and however often) it evaluates, which also keeps resumed runs exact.
        """
        with isolate_rng(include_cuda=True):
            return self._run(trainer, pl_module, split, prefix, suite)

    def _run(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        split: str,
        prefix: str,
        suite: RobustnessSuite | None,
    ) -> RobustnessReport:
        chunks, n_chunks, num_images = self._chunks_for(trainer, split)
        suite = self.suite if suite is None else suite

        report = evaluate_robustness(
            pl_module,
            chunks,
            suite,
            device=pl_module.device,
            seed=self.seed,
            progress=(
                self.progress
                and trainer.is_global_zero
                and trainer.progress_bar_callback is not None
            ),
            num_chunks=n_chunks,
        )
        self.last_report = report
        metrics = {**report.metrics(prefix), **self.corruption_summary_metrics(report, prefix)}
        if self.certification is not None:
            certified = self._certify(pl_module, chunks, num_images)
            self.last_certification = certified
            metrics.update(certified.metrics(self.certification["radii"], prefix))
        for key, value in metrics.items():
            pl_module.log(key, value, on_step=False, on_epoch=True, sync_dist=False)
        directory = Path(self.save_dir) if self.save_dir else run_directory(trainer)  # collective
        for message in report.sanity_warnings():
            rank_zero_warn(f"robustness sanity check: {message}", category=RobustartWarning)
        if trainer.is_global_zero and self.writes_files(trainer):
            history = self._save(directory, trainer, report, metrics, split, prefix)
            figures = self._save_figures(
                directory, trainer, pl_module, history, chunks, split, prefix, suite
            )
            if self.log_curves and wandb_loggers(trainer):
                title = describe_model(trainer, pl_module, self._checkpoint_epoch, prefix)
                log_to_wandb(trainer, wandb_payload(history, figures, prefix, title))
        return report

    def _certify(
        self, pl_module: LightningModule, chunks: CachedChunks, num_images: int
    ) -> CertificationResult:
        """Certify the smoothed model on this process's chunks of a subset of ``num_images``
        images; every process gets the outcomes of all of them (a collective call)."""
        assert self.certification is not None
        return certify_chunks(
            pl_module,
            chunks,
            num_images,
            self.batch_size,
            self.certification,
            seed=self.seed,
            num_classes=getattr(pl_module, "hparams", {}).get("num_classes"),
            device=pl_module.device,
        )

    @staticmethod
    def corruption_summary_metrics(report: RobustnessReport, prefix: str = "") -> dict[str, float]:
        """``{name: value}`` of the corruption summary (mCE, CE per corruption, category means)
        of ``report``; empty when the report has no corruption accuracies."""
        if not any(report.corruptions.values()):
            return {}
        metrics = summary_metrics(summarize_report(report), prefix=prefix)
        metrics.pop(f"{prefix}corruption/mean_accuracy", None)  # == corruption/mean
        return metrics

    def _save(
        self,
        directory: Path,
        trainer: Trainer,
        report: RobustnessReport,
        metrics: dict[str, float],
        split: str,
        prefix: str,
    ) -> list[Evaluation]:
        """Append this evaluation to ``robustness.json``; return the evaluations of the same
        kind (test, or fit/validate) that the file holds, this one last."""
        history_path = directory / "robustness.json"
        entries = self._read_history(history_path)
        entries.append(
            {
                "stage": trainer.state.fn.value if trainer.state.fn else None,
                "split": split,
                "epoch": trainer.current_epoch,
                "global_step": trainer.global_step,
                "step": logging_step(trainer),
                "metrics": metrics,
                "report": report.to_dict(),
            }
        )
        atomic_write_json(history_path, entries)
        if history_path == self._history_path:
            self._history_entries = len(entries)
        testing = prefix != ""
        return [
            Evaluation(
                epoch=int(entry.get("epoch", 0)),
                step=int(entry.get("step", entry.get("global_step", 0))),
                report=RobustnessReport.from_dict(entry["report"]),
                summary=entry.get("metrics", {}),
            )
            for entry in entries
            if (entry.get("stage") == "test") == testing and "report" in entry
        ]

    def _save_figures(
        self,
        directory: Path,
        trainer: Trainer,
        pl_module: LightningModule,
        history: list[Evaluation],
        chunks: CachedChunks,
        split: str,
        prefix: str,
        suite: RobustnessSuite,
    ) -> dict[str, Path]:
        """Write the figures of this evaluation next to the run (``*_test.png`` at test time):
        accuracy vs ε and severity, accuracy over the epochs so far (fit), the corruption heat
        map, and at test time the gallery with the model's predictions."""
        from robustart.plots import (
            plot_robustness_curves,
            save_accuracy_heatmap,
            save_corruption_gallery,
            save_robustness_over_epochs,
        )

        report = history[-1].report
        suffix = "_test" if prefix else ""
        model = describe_model(trainer, pl_module, self._checkpoint_epoch, prefix)
        subset = f"{split} subset, {report.num_images} images"
        figures = {
            "robustness_curves": plot_robustness_curves(
                {model: report},
                directory / f"robustness_curves{suffix}.png",
                title=f"{model} ({subset})",
            )
        }
        if not prefix:
            figures["robustness_over_epochs"] = save_robustness_over_epochs(
                [(e.epoch, e.report) for e in history],
                directory / "robustness_over_epochs.png",
                title=f"{describe_model(trainer, pl_module)}: robustness over epochs ({subset})",
            )
        if any(report.corruptions.values()):
            figures["corruption_heatmap"] = save_accuracy_heatmap(
                report,
                directory / f"corruption_heatmap{suffix}.png",
                title=f"{model}: accuracy under corruption ({subset})",
            )
            first = next(iter(chunks), None) if prefix else None
            if first is not None:
                _, images, labels = first
                figures["corruption_gallery"] = save_corruption_gallery(
                    images[:3].float().to(pl_module.device),
                    directory / "corruption_gallery.png",
                    corruptions=suite.corruption_names,
                    severities=suite.severities,
                    seed=self.seed,
                    model=pl_module,
                    labels=labels[:3].to(pl_module.device),
                    title=f"{model}: corrupted {split} images and predictions",
                )
        return figures


def describe_model(
    trainer: Trainer,
    pl_module: LightningModule,
    checkpoint_epoch: int | None = None,
    prefix: str = "",
) -> str:
    """What a figure shows, for its title: the architecture, the run's name and, at test time,
    the checkpoint (or weights) tested, during fit the epoch.

    Example: ``resnet20 digits_pgd_at, epoch 7`` or
    ``resnet20 digits_pgd_at, checkpoint epoch=7-step=96.ckpt (epoch 7)``.
    """
    hparams = getattr(pl_module, "hparams", {}) or {}
    arch = hparams.get("model") if isinstance(hparams.get("model"), str) else None
    network = getattr(pl_module, "model", pl_module)
    parts = [arch or type(getattr(network, "model", network)).__name__]
    logger = trainer.loggers[0] if trainer.loggers else None
    name = getattr(logger, "name", None) if logger is not None else None
    runs = wandb_loggers(trainer)
    if runs:  # a W&B logger's name is the project; its run has the recipe's name
        name = getattr(runs[0].experiment, "name", None) or name
    if name and name not in ("default", "lightning_logs"):
        parts.append(str(name))
    head = " ".join(parts)
    if not prefix:
        return f"{head}, epoch {trainer.current_epoch}"
    ckpt = getattr(trainer, "ckpt_path", None)
    if ckpt:
        epoch = "" if checkpoint_epoch is None else f" (epoch {checkpoint_epoch})"
        return f"{head}, checkpoint {Path(ckpt).name}{epoch}"
    weights = hparams.get("weights")
    if weights:
        return f"{head}, weights {weights}"
    if trainer.current_epoch > 0:
        return f"{head}, weights after epoch {trainer.current_epoch}"
    return f"{head}, initial weights"
