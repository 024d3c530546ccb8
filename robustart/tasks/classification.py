"""Supervised image classification: the base task of robustart."""

from __future__ import annotations

import inspect
import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

import robustart
from robustart.augment import build_batch_augmentations, hard_labels, jensen_shannon
from robustart.errors import ConfigError
from robustart.models import create_model
from robustart.models.weights import check_checkpoint_matches, check_state_fits
from robustart.tasks.ema import ModelEma
from robustart.tasks.optim import build_optimizer, check_optimization, lr_multiplier
from robustart.utils import check_finite_logits, check_images, check_labels


class ClassificationTask(LightningModule):
    """Train a classifier with cross-entropy; every other training recipe subclasses this.

    The network is ``self.model``, a :class:`~robustart.models.NormalizedClassifier` that takes
    images in [0, 1]. Metrics: ``{train,val,test}/loss``, ``/acc`` (top-1) and ``/acc_top5``
    (micro averages, i.e. the fraction of correct images), and ``val_ema/...`` with EMA.

    Args:
        model: Architecture: a robustart model (``resnet20``, ``preact_resnet18``,
            ``wrn34_10``, ...) or any timm model name.
        model_kwargs: Extra architecture arguments (e.g. ``drop_rate``, ``drop_path_rate``).
        weights: Local checkpoint to initialise the model from (safetensors, state dict or
            Lightning ``.ckpt``; loaded with ``weights_only=True``).
        weights_sha256: Expected SHA-256 of ``weights``.
        pretrained: Let timm download pretrained weights (internet needed; off by default).
        num_classes: Number of classes (linked from the datamodule by the CLI).
        in_channels: Image channels (linked from the datamodule).
        mean: Normalisation mean applied inside the model (linked from the datamodule).
        std: Normalisation std applied inside the model (linked from the datamodule).
        optimizer: ``sgd``, ``adamw`` or ``adam``.
        lr: Peak learning rate.
        momentum: SGD momentum.
        weight_decay: Weight decay (L2 for SGD, decoupled for AdamW).
        nesterov: Nesterov momentum for SGD.
        lr_schedule: ``cosine``, ``multistep``, ``cyclic`` or ``constant``, stepped per batch.
        warmup_epochs: Linear warm-up length in epochs (may be fractional).
        min_lr: Final learning rate of the cosine schedule.
        milestones: ``multistep`` decay points as fractions of training.
        gamma: ``multistep`` decay factor.
        label_smoothing: Label smoothing of the cross-entropy (0 = none).
        ema_decay: Keep an EMA of the weights with this decay (e.g. 0.999), evaluated as
            ``val_ema/*`` and saved in checkpoints; ``None`` disables it.
        batch_augment: Batch-level training augmentations applied on the device, in order,
            e.g. ``[{name: mixup, alpha: 0.2}]`` (see ``robustart.augment``).
        consistency_weight: Weight of the Jensen–Shannon consistency loss on multi-view
            batches (N, V, C, H, W), which the datamodule yields with
            ``augment_policy: {name: augmix}`` (12 in the AugMix paper); unused otherwise.

    Multi-view batches (AugMix): all views go through the network in one forward pass, the
    cross-entropy is taken on the clean view (view 0) and ``consistency_weight ·`` the
    Jensen–Shannon divergence among the views' predictions is added; ``train/acc`` scores the
    clean view. Tasks that replace :meth:`training_loss` (adversarial training) refuse them.
    """

    def __init__(
        self,
        model: str = "resnet20",
        model_kwargs: dict[str, Any] | None = None,
        weights: str | None = None,
        weights_sha256: str | None = None,
        pretrained: bool = False,
        num_classes: int = 10,
        in_channels: int = 3,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        optimizer: Literal["sgd", "adamw", "adam"] = "sgd",
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        nesterov: bool = False,
        lr_schedule: Literal["cosine", "multistep", "cyclic", "constant"] = "cosine",
        warmup_epochs: float = 0.0,
        min_lr: float = 0.0,
        milestones: tuple[float, ...] = (0.5, 0.75),
        gamma: float = 0.1,
        label_smoothing: float = 0.0,
        ema_decay: float | None = None,
        batch_augment: list[dict[str, Any]] | None = None,
        consistency_weight: float = 12.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        for name, value, low in (("num_classes", num_classes, 2), ("in_channels", in_channels, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
        if not 0 <= label_smoothing < 1:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        if not 0 <= consistency_weight < math.inf:
            raise ConfigError(
                f"consistency_weight must be a finite number >= 0, got {consistency_weight}"
            )
        check_optimization(
            optimizer,
            lr,
            momentum,
            weight_decay,
            nesterov,
            lr_schedule,
            warmup_epochs,
            min_lr,
            milestones,
            gamma,
        )
        self.model = create_model(
            model,
            num_classes=num_classes,
            in_chans=in_channels,
            mean=mean,
            std=std,
            pretrained=pretrained,
            weights=weights,
            weights_sha256=weights_sha256,
            **(model_kwargs or {}),
        )
        self.ema = ModelEma(self.model, ema_decay) if ema_decay is not None else None
        self.batch_augment = build_batch_augmentations(batch_augment, num_classes)
        smoothing = [a.name for a in self.batch_augment if a.label_smoothing > 0]
        if label_smoothing > 0 and smoothing:
            raise ConfigError(
                f"label smoothing is set twice: label_smoothing={label_smoothing} on the task "
                f"and label_smoothing in batch augmentation {', '.join(smoothing)}; they would "
                "compound. Set it in one place."
            )
        metrics = {"acc": MulticlassAccuracy(num_classes, average="micro")}
        if num_classes > 5:
            metrics["acc_top5"] = MulticlassAccuracy(num_classes, top_k=5, average="micro")
        collection = MetricCollection(metrics)
        self.train_metrics = collection.clone(prefix="train/")
        self.val_metrics = collection.clone(prefix="val/")
        self.test_metrics = collection.clone(prefix="test/")
        self.val_ema_metrics = collection.clone(prefix="val_ema/") if self.ema else None

    def forward(self, images: Tensor) -> Tensor:
        """Logits (N, K) for images (N, C, H, W) in [0, 1]."""
        return self.model(images)

    def criterion(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Mean cross-entropy with the configured label smoothing.

        ``targets`` are labels (N,) or soft label distributions (N, K) (after Mixup/CutMix).
        """
        return F.cross_entropy(logits, targets, label_smoothing=self.hparams.label_smoothing)

    def augment_batch(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Apply the batch augmentations; returns images and (possibly soft) targets."""
        targets = labels
        for augmentation in self.batch_augment:
            images, targets = augmentation(images, targets)
        return images, targets

    def training_loss(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """The loss to minimise and the logits to score training accuracy with.

        Args:
            images: Augmented training images (N, C, H, W) in [0, 1].
            targets: Labels (N,) or soft label distributions (N, K).

        Training recipes (adversarial training, ...) override this.
        """
        logits = self.model(images)
        return self.criterion(logits, targets), logits

    def multi_view_loss(self, views: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Loss of a multi-view (AugMix) batch: clean cross-entropy plus weighted JSD.

        Args:
            views: (N, V, C, H, W) in [0, 1]; view 0 is the clean image.
            labels: (N,) int64.

        Returns:
            The loss, the clean view's logits (N, K) and its targets.
        """
        n, v = views.shape[:2]
        self.check_multi_view_support(v)
        images = views.transpose(0, 1).reshape(v * n, *views.shape[2:])  # view-major
        images, targets = self.augment_batch(images, labels.repeat(v))
        logits = self.model(images)  # one pass: BatchNorm normalises all views together
        loss = self.criterion(logits[:n], targets[:n])
        consistency = jensen_shannon(logits.view(v, n, -1))
        self.log("train/loss_consistency", consistency.detach(), on_step=False, on_epoch=True)
        return loss + self.hparams.consistency_weight * consistency, logits[:n], targets[:n]

    def check_multi_view_support(self, views: int) -> None:
        """Raise :class:`ConfigError` if this task cannot train on ``views`` views per image."""
        if views < 2:
            return
        if type(self).training_loss is not ClassificationTask.training_loss:
            raise ConfigError(
                f"AugMix with its consistency loss (batches of {views} views per image) needs "
                f"standard training, but {type(self).__name__} replaces the training loss "
                "(adversarial training crafts its own inputs; the Jensen–Shannon term is not "
                "defined for them). Use robustart.tasks.ClassificationTask, or "
                "`augment_policy: {name: augmix, views: 1}` to train on AugMix images without "
                "the consistency loss."
            )
        mixing = [a.name for a in self.batch_augment if a.mixes_images]
        if mixing:
            raise ConfigError(
                f"batch augmentation {', '.join(mixing)} mixes different images, but AugMix's "
                f"{views} views of each image must stay views of that image for the "
                "consistency loss. Use one or the other (or AugMix with views: 1)."
            )

    def check_training_data(self, datamodule: Any) -> None:
        """Refuse training data this task cannot use as configured, before training: AugMix's
        multi-view batches on a task that replaces the loss (:meth:`check_multi_view_support`),
        or a ``consistency_weight`` other than the default where no batch has several views
        (the weight would be ignored).

        Raises:
            ConfigError: naming the setting and the fix.
        """
        views = getattr(datamodule, "train_views", 1)
        self.check_multi_view_support(views)
        weight = self.hparams.consistency_weight
        default = inspect.signature(ClassificationTask).parameters["consistency_weight"].default
        if views < 2 and weight != default:
            raise ConfigError(
                f"consistency_weight {weight:g} weighs AugMix's Jensen–Shannon loss over the "
                "views of each image, but the training batches have one view per image: it "
                "would be ignored. Add `augment_policy: {name: augmix}` to the data (views "
                "default to 3), or drop consistency_weight"
            )

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
        if stage == "fit" and datamodule is not None:
            self.check_training_data(datamodule)

    def check_training_batch(self, images: Tensor, labels: Tensor, batch_idx: int) -> None:
        """Check the first training batch of every epoch: images in [0, 1] (NCHW, or
        (N, V, C, H, W) AugMix views) and class labels the model has.

        Images after ``Normalize()`` or in 0–255, and labels counted from 1, come from the
        data pipeline, so the first batch shows them; checking once per epoch costs no
        per-step host synchronisation.

        Raises:
            InputRangeError: naming what is wrong and what to do.
        """
        if batch_idx != 0:
            return
        check_images(images.flatten(0, 1) if images.ndim == 5 else images, "training images")
        check_labels(labels, len(images), self.hparams.num_classes, "training labels")

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch
        self.check_training_batch(images, labels, batch_idx)
        if images.ndim == 5:
            loss, logits, targets = self.multi_view_loss(images, labels)
        else:
            images, targets = self.augment_batch(images, labels)
            loss, logits = self.training_loss(images, targets)
        self.train_metrics(logits.detach(), hard_labels(targets))
        self.log("train/loss", loss, prog_bar=True)
        self.log_dict(self.train_metrics, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.ema is not None:
            self.ema.update(self.model)

    def _evaluate(self, batch: tuple[Tensor, Tensor], stage: str) -> None:
        images, labels = batch
        # images after Normalize() or in 0-255 would be scored as if they were images
        check_images(images, f"{stage} images")
        logits = self.model(images)
        # refuse rather than score NaN logits (argmax picks an arbitrary class) or labels the
        # model cannot predict (torchmetrics would raise a bare RuntimeError)
        if self._trainer is not None and self.trainer.state.fn == "fit":
            check_finite_logits(
                logits,
                f"training diverged: after step {self.global_step} the model's {stage} logits",
                "Lower the learning rate, add warm-up or gradient clipping.",
            )
        else:
            check_finite_logits(logits, f"the model's {stage} logits")
        check_labels(labels, len(images), logits.shape[1], f"{stage} labels")
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        metrics(logits, labels)
        self.log(
            f"{stage}/loss", self.criterion(logits, labels), prog_bar=stage == "val", sync_dist=True
        )
        self.log_dict(metrics, prog_bar=stage == "val")
        if self.ema is not None and stage == "val":
            self.val_ema_metrics(self.ema(images), labels)
            self.log_dict(self.val_ema_metrics)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self.model(batch[0]).softmax(dim=1)

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        optimizer = build_optimizer(
            hp.optimizer, self.model, hp.lr, hp.momentum, hp.weight_decay, hp.nesterov
        )
        total = int(self.trainer.estimated_stepping_batches)
        epochs = max(self.trainer.max_epochs or 1, 1)
        warmup = round(hp.warmup_epochs * total / epochs)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lr_multiplier(hp.lr_schedule, total, warmup, hp.lr, hp.min_lr, hp.milestones, hp.gamma),
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    # Checkpoints record what they were trained on, so that loading them into another
    # architecture fails with a clear message instead of a wall of state-dict errors.
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["robustart"] = {
            "version": robustart.__version__,
            "task": type(self).__name__,
            "model": self.hparams.model,
            "num_classes": self.hparams.num_classes,
            "in_channels": self.hparams.in_channels,
        }
        trainer = self._trainer
        datamodule = getattr(trainer, "datamodule", None) if trainer is not None else None
        if hasattr(datamodule, "training_settings"):
            checkpoint["robustart"]["data"] = datamodule.training_settings()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        check_checkpoint_matches(checkpoint, self.hparams.model, self.hparams.num_classes)
        # The record above can be missing (a checkpoint of another LightningModule) or wrong
        # (an edited file): the weights themselves must fit too, before Lightning loads them.
        state = checkpoint.get("state_dict")
        if isinstance(state, dict):
            check_state_fits(self, state, "the checkpoint", self.hparams.model)
