"""Adversarial training objectives, chosen by name in the task's YAML (``objective: trades``).

An objective crafts training examples against the current weights and returns the loss to
minimise. All objectives share one attack construction (a :class:`~robustart.attacks.PGD`
crafting the last iterate, never touching the parameter gradients); they differ in the attack's
published defaults, the loss it maximises and the training loss:

=========  ==========================================  =========================================
name       crafting (published defaults)               training loss
=========  ==========================================  =========================================
pgd_at     PGD-CE, 10 steps of 2.5·ε/steps (2/255 at   CE on adversarial examples (optionally
           8/255), uniform start, BatchNorm in train   mixed with clean CE, ``adv_weight``)
           mode (Madry et al.)
fgsm_rs    one step of 1.25·ε from a uniform start,    as ``pgd_at`` (Wong et al., 2020)
           BatchNorm in train mode
trades     PGD on ``KL(f(x) ‖ f(x'))``, 10 steps of    ``CE(f(x), y) + β · KL(f(x) ‖ f(x'))``
           2.5·ε/steps, start ``x + 0.001·N(0, 1)``,   (Zhang et al., 2019), β = 6
           BatchNorm in eval mode
mart       PGD-CE, otherwise as ``trades``             ``BCE(f(x'), y) + β · KL(f(x) ‖ f(x')) ·
                                                       (1 − f_y(x))`` (Wang et al., 2020), β = 6
=========  ==========================================  =========================================

Settings of the attack (``norm``, ``eps``, ``step_size``, ``steps``, ``random_start``,
``bn_mode``) are task settings shared by every objective; ``None`` takes the objective's
published default above. Objective-specific settings (``beta``) go with the name:
``objective: {name: trades, beta: 6.0}``.

Example:
    >>> objective = build_objective("trades", eps="8/255", steps=2)
    >>> objective.attack.steps, objective.attack.loss_name, objective.attack.mode
    (2, 'kl', 'eval')
    >>> loss, logits, terms = objective(model, images, labels, criterion)  # doctest: +SKIP
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustart.attacks import PGD
from robustart.augment.base import hard_labels
from robustart.errors import ConfigError, UnknownNameError
from robustart.registry import Registry
from robustart.utils import preserve_mode

Criterion = Callable[[Tensor, Tensor], Tensor]

#: Registry of adversarial training objectives (classes), keyed by name.
AT_OBJECTIVES: Registry[type[ATObjective]] = Registry("adversarial training objective")

#: Settings of the crafting attack, shared by all objectives and set on the task.
ATTACK_SETTINGS = ("norm", "eps", "step_size", "steps", "random_start", "bn_mode")


class UnknownObjectiveError(UnknownNameError, ConfigError):
    """An objective name that :data:`AT_OBJECTIVES` does not know (a configuration error)."""


class ObjectiveOutput(NamedTuple):
    """What an objective returns for one training batch."""

    #: The scalar loss to minimise.
    loss: Tensor
    #: Logits (N, K) that score the training accuracy (those of the adversarial examples).
    logits: Tensor
    #: Detached parts of the loss and extra metrics, logged as ``train/<name>``.
    terms: dict[str, Tensor]


def kl_per_sample(reference_logits: Tensor, logits: Tensor) -> Tensor:
    """``KL(softmax(reference_logits) ‖ softmax(logits))`` per sample, shape (N,).

    Gradients flow into both arguments (as in the TRADES and MART reference code).
    """
    log_p = F.log_softmax(reference_logits.float(), dim=1)
    log_q = F.log_softmax(logits.float(), dim=1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=1)


def trades_loss(
    clean_logits: Tensor,
    adv_logits: Tensor,
    targets: Tensor,
    beta: float,
    criterion: Criterion = F.cross_entropy,
) -> tuple[Tensor, Tensor, Tensor]:
    """TRADES (Zhang et al., 2019): ``criterion(f(x), y) + β · mean_i KL(f(x_i) ‖ f(x'_i))``.

    Args:
        clean_logits: Logits of the clean images (N, K).
        adv_logits: Logits of the adversarial images (N, K).
        targets: Labels (N,) or soft label distributions (N, K) for ``criterion``.
        beta: Weight β of the robustness (KL) term.
        criterion: The natural loss (mean cross-entropy by default).

    Returns:
        The loss, the natural term and the (unweighted) KL term.
    """
    natural = criterion(clean_logits, targets)
    robust = kl_per_sample(clean_logits, adv_logits).mean()
    return natural + beta * robust, natural, robust


def mart_loss(
    clean_logits: Tensor, adv_logits: Tensor, labels: Tensor, beta: float
) -> tuple[Tensor, Tensor, Tensor]:
    """MART (Wang et al., 2020): boosted CE on adversarial examples plus a KL term that weighs
    misclassified clean examples more.

    With ``p = softmax(f(x))`` and ``p' = softmax(f(x'))``::

        BCE_i = −log p'_{y_i} − log(1 − max_{k≠y_i} p'_k)
        loss  = mean_i BCE_i + β · mean_i KL(p_i ‖ p'_i) · (1 − p_{i,y_i})

    ``log(1 − p'_k)`` is computed as a log-sum-exp over the other classes, so it stays finite
    when ``p'_k`` rounds to 1.

    Args:
        clean_logits: Logits of the clean images (N, K).
        adv_logits: Logits of the adversarial images (N, K).
        labels: Class indices (N,).
        beta: Weight β of the robustness term.

    Returns:
        The loss, the BCE term and the (unweighted by β) weighted-KL term.
    """
    if labels.ndim != 1:
        raise ConfigError(
            "MART needs hard labels (N,), got soft targets: do not combine objective 'mart' "
            "with Mixup/CutMix or label smoothing"
        )
    adv = adv_logits.float()
    true_class = F.one_hot(labels, adv.shape[1]).bool()
    ce = F.cross_entropy(adv, labels, reduction="none")
    best_wrong = adv.masked_fill(true_class, float("-inf")).argmax(dim=1)
    others = adv.masked_fill(F.one_hot(best_wrong, adv.shape[1]).bool(), float("-inf"))
    log_not_wrong = torch.logsumexp(others, dim=1) - torch.logsumexp(adv, dim=1)
    bce = (ce - log_not_wrong).mean()
    clean_true_prob = F.softmax(clean_logits.float(), dim=1).gather(1, labels[:, None])[:, 0]
    robust = (kl_per_sample(clean_logits, adv_logits) * (1 - clean_true_prob)).mean()
    return bce + beta * robust, bce, robust


class ATObjective:
    """Base class: builds the crafting attack from the shared settings and its defaults.

    Args:
        norm: Threat model, ``linf`` or ``l2``.
        eps: Budget ε (float or fraction string).
        step_size: Absolute PGD step; ``None``: the objective's default (:attr:`defaults`):
            ``2.5·ε/steps`` (Madry et al.'s rule, 2/255 for 10 steps at 8/255, the published
            CIFAR setting), which lets the steps cross the ball at any ε, norm and step count.
            Explicit settings with ``steps · step_size < ε`` get a warning.
        steps: PGD iterations; ``None``: the objective's default.
        random_start: ``True``/``"uniform"``, ``"normal"`` (``x + 0.001·N(0, 1)``) or
            ``False``; ``None``: the objective's default.
        bn_mode: BatchNorm/dropout mode while crafting, ``train`` or ``eval``; ``None``: the
            objective's default.

    Subclasses set :attr:`name`, :attr:`defaults` and :attr:`attack_loss` and implement
    :meth:`loss` (and :meth:`adversarial_examples` when the attack needs other labels).
    """

    #: Registry name.
    name: ClassVar[str] = ""
    #: Published crafting settings used where a setting is ``None``; ``rel_step_size`` (a
    #: fraction of ε) applies when ``step_size`` ends up ``None``, and ``None`` for both is
    #: PGD's ``2.5·ε/steps``.
    defaults: ClassVar[dict[str, Any]] = {
        "steps": 10,
        "step_size": None,
        "rel_step_size": None,
        "random_start": True,
        "bn_mode": "train",
    }
    #: The per-sample loss the attack maximises (see ``robustart.attacks.ATTACK_LOSSES``).
    attack_loss: ClassVar[str] = "ce"

    def __init__(
        self,
        norm: str = "linf",
        eps: float | str = "8/255",
        step_size: float | str | None = None,
        steps: int | None = None,
        random_start: bool | str | None = None,
        bn_mode: str | None = None,
    ) -> None:
        given = {"step_size": step_size, "steps": steps, "random_start": random_start}
        settings = {**self.defaults, **{k: v for k, v in given.items() if v is not None}}
        if step_size is not None:
            settings["rel_step_size"] = None
        bn_mode = self.defaults["bn_mode"] if bn_mode is None else bn_mode
        if bn_mode not in ("train", "eval"):
            raise ConfigError(f"bn_mode must be 'train' or 'eval', got {bn_mode!r}")
        self.bn_mode = bn_mode
        self.attack = PGD(
            eps=eps,
            norm=norm,
            steps=settings["steps"],
            step_size=settings["step_size"],
            rel_step_size=settings["rel_step_size"],
            random_start=settings["random_start"],
            track_best=False,
            loss=self.attack_loss,
            mode=bn_mode,
        )
        if self.attack.eps == 0:
            raise ConfigError(
                f"{type(self).__name__}: eps is 0, which trains on clean images (standard "
                "training at the cost of the attack); set the budget, e.g. eps: 8/255, or use "
                "the standard recipe"
            )

    def __repr__(self) -> str:
        config = self.attack.config
        return (
            f"{type(self).__name__}(eps={self.attack.eps:g}, norm={self.attack.norm!r}, "
            f"steps={config['steps']}, step_size={config['step_size']}, "
            f"random_start={config['random_start']!r}, bn_mode={self.bn_mode!r})"
        )

    def check_task(self, label_smoothing: float, soft_targets: list[str]) -> None:
        """Raise :class:`ConfigError` if the objective cannot train with this task setup.

        Args:
            label_smoothing: The task's label smoothing.
            soft_targets: Names of batch augmentations that produce soft targets.
        """

    def craft(self, model: nn.Module, images: Tensor, labels: Tensor) -> Tensor:
        """Adversarial examples for ``images`` against ``model`` (detached, in [0, 1])."""
        return self.attack(model, images, labels)

    def adversarial_examples(self, model: nn.Module, images: Tensor, targets: Tensor) -> Tensor:
        """The inputs the objective's loss is taken on: its attack on ``images`` (N, C, H, W)
        with the training ``targets`` (N,) or (N, K); detached, in [0, 1]."""
        return self.craft(model, images, targets)

    def loss(
        self,
        model: nn.Module,
        images: Tensor,
        adversarial: Tensor,
        targets: Tensor,
        criterion: Criterion,
    ) -> ObjectiveOutput:
        """The training loss of one batch, given its adversarial examples.

        Separate from crafting so that the loss can be taken again at other weights (AWP,
        see :mod:`robustart.tasks.awp`).

        Args:
            model: The classifier (train mode), images in [0, 1] → logits.
            images: Clean training images (N, C, H, W) in [0, 1].
            adversarial: Their adversarial examples (N, C, H, W), from
                :meth:`adversarial_examples`.
            targets: Labels (N,) or soft label distributions (N, K).
            criterion: The task's cross-entropy (with its label smoothing).
        """
        raise NotImplementedError

    def __call__(
        self, model: nn.Module, images: Tensor, targets: Tensor, criterion: Criterion
    ) -> ObjectiveOutput:
        """The training loss of one batch: crafting, then :meth:`loss`.

        Args:
            model: The classifier (train mode), images in [0, 1] → logits.
            images: Clean training images (N, C, H, W) in [0, 1].
            targets: Labels (N,) or soft label distributions (N, K).
            criterion: The task's cross-entropy (with its label smoothing).
        """
        adversarial = self.adversarial_examples(model, images, targets)
        return self.loss(model, images, adversarial, targets, criterion)


def _check_beta(beta: float) -> float:
    if not 0 <= beta < math.inf:  # also refuses NaN; inf makes the loss inf
        raise ConfigError(f"beta must be a finite number >= 0, got {beta}")
    return float(beta)


def _accuracy(logits: Tensor, targets: Tensor) -> Tensor:
    return (logits.detach().argmax(1) == hard_labels(targets)).float().mean()


@AT_OBJECTIVES.register("pgd_at")
class PGDAdversarialTraining(ATObjective):
    """PGD-AT (Madry et al., 2018): minimise the cross-entropy on PGD examples.

    Args:
        adv_weight: Weight of the adversarial loss in (0, 1]; ``1`` trains on adversarial
            examples only, ``0.5`` averages clean and adversarial losses (RobustART's ImageNet
            recipe). A task setting (``adv_weight``).
        **settings: The attack settings of :class:`ATObjective`.
    """

    name = "pgd_at"

    def __init__(self, adv_weight: float = 1.0, **settings: Any) -> None:
        if not 0 < adv_weight <= 1:
            raise ConfigError(f"adv_weight must be in (0, 1], got {adv_weight}")
        super().__init__(**settings)
        self.adv_weight = float(adv_weight)

    def loss(
        self,
        model: nn.Module,
        images: Tensor,
        adversarial: Tensor,
        targets: Tensor,
        criterion: Criterion,
    ) -> ObjectiveOutput:
        logits = model(adversarial)
        loss = criterion(logits, targets)
        terms = {"loss_adv": loss.detach()}
        if self.adv_weight < 1:
            clean_logits = model(images)
            loss = self.adv_weight * loss + (1 - self.adv_weight) * criterion(clean_logits, targets)
            terms["acc_clean"] = _accuracy(clean_logits, targets)
        return ObjectiveOutput(loss, logits, terms)


@AT_OBJECTIVES.register("fgsm_rs")
class FastAdversarialTraining(PGDAdversarialTraining):
    """FGSM with random start, "fast" adversarial training (Wong et al., 2020).

    One signed-gradient step of α = 1.25·ε (``step_size: null``) from a uniform random point of
    the ε-ball, projected back onto the ball and [0, 1]; BatchNorm in train mode. Pair it with a
    cyclic learning rate (``lr_schedule: cyclic``) and
    :class:`~robustart.callbacks.CatastrophicOverfittingGuard`.

    Args:
        adv_weight: As for ``pgd_at``.
        **settings: The attack settings; ``steps`` must be 1.
    """

    name = "fgsm_rs"
    defaults: ClassVar[dict[str, Any]] = {
        "steps": 1,
        "step_size": None,
        "rel_step_size": 1.25,
        "random_start": "uniform",
        "bn_mode": "train",
    }

    def __init__(self, adv_weight: float = 1.0, **settings: Any) -> None:
        steps = settings.get("steps")
        if steps is not None and steps != 1:
            raise ConfigError(
                f"objective 'fgsm_rs' takes exactly one step, got steps={steps}; "
                "use objective 'pgd_at' for more"
            )
        super().__init__(adv_weight=adv_weight, **settings)


@AT_OBJECTIVES.register("trades")
class TRADES(ATObjective):
    """TRADES (Zhang et al., 2019): ``CE(f(x), y) + β · KL(f(x) ‖ f(x'))``.

    ``x'`` maximises ``KL(f(x) ‖ f(x'))`` against the clean prediction ``f(x)``, computed in
    the crafting BatchNorm mode (eval by default, as the reference code), starting from
    ``x + 0.001·N(0, 1)``. The loss runs the clean and the adversarial batch through the
    network separately (train mode), gradients flowing through both.

    Args:
        beta: Weight β > 0 of the KL term (6 in the paper: the best robustness on CIFAR-10;
            1 favours clean accuracy). β = 0 (clean training at the attack's cost) is refused.
        **settings: The attack settings of :class:`ATObjective`.
    """

    name = "trades"
    attack_loss = "kl"
    defaults: ClassVar[dict[str, Any]] = {
        **ATObjective.defaults,
        "random_start": "normal",
        "bn_mode": "eval",
    }

    def __init__(self, beta: float = 6.0, **settings: Any) -> None:
        self.beta = _check_beta(beta)
        if self.beta == 0:  # as eps 0 (refused by every objective)
            raise ConfigError(
                "objective 'trades' with beta 0 trains on clean images only: the KL term is "
                "the only use of its adversarial examples, which would be crafted at every step "
                "for nothing. For the β = 0 point of an ablation train the standard recipe "
                "(robustart.tasks.ClassificationTask); otherwise set beta > 0 (6 in the paper)"
            )
        super().__init__(**settings)
        if self.attack.random_start is False:
            raise ConfigError(
                "objective 'trades' needs a random start (random_start: normal or uniform): "
                "the KL divergence has a zero gradient at x' = x, so the attack would not move"
            )

    def reference_probabilities(self, model: nn.Module, images: Tensor) -> Tensor:
        """The clean prediction ``softmax(f(x))`` the attack moves away from (no gradient,
        fp32, in the crafting BatchNorm mode)."""
        device_type = images.device.type
        with (
            preserve_mode(model, self.bn_mode == "train"),
            torch.no_grad(),
            torch.autocast(device_type, enabled=False),
        ):
            return F.softmax(model(images.float()).float(), dim=1)

    def adversarial_examples(self, model: nn.Module, images: Tensor, targets: Tensor) -> Tensor:
        return self.craft(model, images, self.reference_probabilities(model, images))

    def loss(
        self,
        model: nn.Module,
        images: Tensor,
        adversarial: Tensor,
        targets: Tensor,
        criterion: Criterion,
    ) -> ObjectiveOutput:
        clean_logits = model(images)
        adv_logits = model(adversarial)
        loss, natural, robust = trades_loss(clean_logits, adv_logits, targets, self.beta, criterion)
        terms = {
            "loss_natural": natural.detach(),
            "loss_robust": robust.detach(),
            "acc_clean": _accuracy(clean_logits, targets),
        }
        return ObjectiveOutput(loss, adv_logits, terms)


@AT_OBJECTIVES.register("mart")
class MART(ATObjective):
    """MART (Wang et al., 2020): boosted CE on PGD-CE examples plus β · KL weighted by the
    clean misclassification probability ``1 − f_y(x)`` (see :func:`mart_loss`).

    Crafting as the reference code: PGD on the cross-entropy from ``x + 0.001·N(0, 1)`` with
    BatchNorm in eval mode. Needs hard labels: no Mixup/CutMix, no label smoothing.

    Args:
        beta: Weight β ≥ 0 of the weighted KL term (6 for CIFAR-10 in the paper).
        **settings: The attack settings of :class:`ATObjective`.
    """

    name = "mart"
    defaults: ClassVar[dict[str, Any]] = {
        **ATObjective.defaults,
        "random_start": "normal",
        "bn_mode": "eval",
    }

    def __init__(self, beta: float = 6.0, **settings: Any) -> None:
        self.beta = _check_beta(beta)
        super().__init__(**settings)

    def check_task(self, label_smoothing: float, soft_targets: list[str]) -> None:
        if label_smoothing > 0 or soft_targets:
            cause = (
                f"label_smoothing={label_smoothing}"
                if label_smoothing > 0
                else f"batch augmentation {', '.join(soft_targets)} (soft targets)"
            )
            raise ConfigError(
                f"objective 'mart' needs hard labels: its boosted cross-entropy and its weight "
                f"1 − p_y(x) are defined for one true class, but the task uses {cause}. "
                "Remove it, or use objective 'trades' or 'pgd_at'."
            )

    def adversarial_examples(self, model: nn.Module, images: Tensor, targets: Tensor) -> Tensor:
        if targets.ndim != 1:
            self.check_task(0.0, ["(soft targets in the batch)"])
        return self.craft(model, images, targets)

    def loss(
        self,
        model: nn.Module,
        images: Tensor,
        adversarial: Tensor,
        targets: Tensor,
        criterion: Criterion,
    ) -> ObjectiveOutput:
        clean_logits = model(images)
        adv_logits = model(adversarial)
        loss, bce, robust = mart_loss(clean_logits, adv_logits, targets, self.beta)
        terms = {
            "loss_adv": bce.detach(),
            "loss_robust": robust.detach(),
            "acc_clean": _accuracy(clean_logits, targets),
        }
        return ObjectiveOutput(loss, adv_logits, terms)


def build_objective(
    spec: str | Mapping[str, Any] = "pgd_at",
    *,
    adv_weight: float = 1.0,
    **settings: Any,
) -> ATObjective:
    """Build an objective from its name or ``{name: ..., <objective settings>}``.

    Args:
        spec: ``"trades"`` or ``{"name": "trades", "beta": 6.0}``.
        adv_weight: The task's ``adv_weight``, for the objectives that mix clean and adversarial
            cross-entropy (``pgd_at``, ``fgsm_rs``); must stay 1 for the others.
        **settings: The shared attack settings (:data:`ATTACK_SETTINGS`).

    Raises:
        UnknownObjectiveError: for an unknown name (a :class:`ConfigError` listing the known
            objectives).
        ConfigError: for a setting the objective does not take or a bad value.
    """
    if isinstance(spec, str):
        name, options = spec, {}
    elif isinstance(spec, Mapping):
        options = dict(spec)
        name = options.pop("name", None)
        if not isinstance(name, str):
            raise ConfigError(
                f"objective must be a name or a mapping with a 'name' (e.g. "
                f"{{name: trades, beta: 6.0}}), got {dict(spec)!r}"
            )
    else:
        raise ConfigError(f"objective must be a name or a mapping, got {spec!r}")
    if name not in AT_OBJECTIVES:
        raise UnknownObjectiveError(AT_OBJECTIVES.unknown_message(name))
    cls = AT_OBJECTIVES.get(name)
    params = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self",)]
    accepted = [p for p in params if p not in ("settings", "adv_weight")]
    task_level = sorted(set(options) & {*ATTACK_SETTINGS, "adv_weight"})
    if task_level:
        raise ConfigError(
            f"{', '.join(task_level)} of objective {name!r} are task settings: set them next to "
            f"'objective' (e.g. --model.init_args.{task_level[0]}), not inside it"
        )
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(
            f"objective {name!r} has no setting {', '.join(unknown)}; its settings: "
            f"{', '.join(accepted) or 'none'} (attack settings are task settings: "
            f"{', '.join(ATTACK_SETTINGS)})"
        )
    if "adv_weight" in params:
        options["adv_weight"] = adv_weight
    elif adv_weight != 1:
        raise ConfigError(
            f"adv_weight={adv_weight} mixes clean and adversarial cross-entropy in objectives "
            f"pgd_at and fgsm_rs; objective {name!r} weighs its terms with beta. Leave "
            "adv_weight at 1."
        )
    return cls(**settings, **options)
