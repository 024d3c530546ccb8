"""The :class:`Attack` base class and the attack registry.

An attack maps clean images in [0, 1] to adversarial images in [0, 1] inside an ε-ball of a
threat model. The base class does everything that is the same for all attacks:

* checks the input (float NCHW in [0, 1], non-negative ε, at most 1 for L∞, a supported
  norm) and converts integer labels of any dtype to int64,
* checks every numeric setting when the attack is built (:func:`check_number`,
  :func:`check_integer`, :func:`check_flag`), so a setting that would stop the attack from
  attacking is an error, not a robust accuracy of 100 %,
* puts the model in eval mode (or train mode for adversarial training, see ``mode``) and restores
  the previous ``training`` flag of every submodule afterwards,
* re-enables autograd even inside Lightning's ``torch.inference_mode`` validation loop,
* runs in fp32 by default (autocast off), and never touches the model's parameter gradients
  (input gradients come from :func:`torch.autograd.grad`),
* returns the clean images unchanged where ε = 0, so ε = 0 reproduces clean accuracy exactly.

Subclasses implement :meth:`Attack.perturb`.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from robustart import utils
from robustart.attacks.losses import ATTACK_LOSSES, check_logits
from robustart.attacks.threat import ThreatModel, get_threat_model
from robustart.errors import ConfigError, InputRangeError
from robustart.registry import Registry
from robustart.utils import (
    check_images,
    check_labels,
    check_logits_shape,
    parse_eps,
    parse_fraction,
    preserve_mode,
)

#: Registry of attack classes, keyed by name ("fgsm", "pgd", ...).
ATTACKS: Registry[type[Attack]] = Registry("attack")

#: The largest meaningful L∞ budget for images in [0, 1]: ε = 1 already allows every image.
MAX_LINF_EPS = 1.0


def _as_real(value: Any) -> float | None:
    """``value`` as a float if it is a real number or a numeric string (``"8/255"``,
    ``"0.5"``), else ``None``. Booleans are not numbers here."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":  # numpy's boolean too
        return None
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, str):
        try:
            return parse_fraction(value)
        except ConfigError:
            return None
    return None


def _range_text(
    low: float | None, high: float | None, low_open: bool = False, high_open: bool = False
) -> str:
    """``"> 0"``, ``">= 1"``, ``"<= 1"`` or ``"in (0, 1]"``."""
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high:g}"
    return "(any finite value)"


def check_number(
    attack: str,
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Check a real-valued attack setting (step size, decay, κ, learning rate, ...).

    A NaN or infinite setting, or one outside its range, would let the attack run without
    attacking (a zero or NaN step) and report 100 % robust accuracy, so it is refused when the
    attack is built.

    Args:
        attack: The attack's registry name, for the message.
        name: The setting's name.
        value: A real number or a numeric string such as ``"2/255"``.
        low: Smallest accepted value (``None``: no lower bound).
        high: Largest accepted value (``None``: no upper bound).
        low_open: Exclude ``low`` itself.
        high_open: Exclude ``high`` itself.

    Returns:
        The value as a float.

    Raises:
        ConfigError: naming the attack, the setting, the value and the accepted range.

    Example:
        >>> check_number("mifgsm", "decay", "0.5", low=0.0)
        0.5
    """
    number = _as_real(value)
    ok = number is not None and math.isfinite(number)
    if ok and low is not None:
        ok = number > low if low_open else number >= low
    if ok and high is not None:
        ok = number < high if high_open else number <= high
    if not ok:
        raise ConfigError(
            f"attack {attack!r}: {name} must be a finite number "
            f"{_range_text(low, high, low_open, high_open)}, got {value!r}"
        )
    return float(number)  # type: ignore[arg-type]


def check_integer(attack: str, name: str, value: Any, minimum: int = 1) -> int:
    """Check an integer attack setting (steps, restarts, queries, target classes, ...).

    Integral floats such as ``10.0`` are accepted; ``2.7``, ``"ten"`` and booleans are refused
    rather than truncated or left to fail inside the attack.

    Args:
        attack: The attack's registry name, for the message.
        name: The setting's name.
        value: An integer, an integral float or an integer string (``"10"``).
        minimum: Smallest accepted value.

    Returns:
        The value as an int.

    Raises:
        ConfigError: naming the attack, the setting, the value and the accepted range.

    Example:
        >>> check_integer("pgd", "steps", 10.0)
        10
    """
    number = _as_real(value)
    if number is None or not math.isfinite(number) or not number.is_integer() or number < minimum:
        raise ConfigError(
            f"attack {attack!r}: {name} must be an integer >= {minimum}, got {value!r}"
        )
    return int(number)


def check_flag(attack: str, name: str, value: Any, accepted: str = "true or false") -> bool:
    """Check an on/off attack setting: ``True`` or ``False`` (``1``/``0`` too); see
    :func:`robustart.utils.check_flag`.

    Raises:
        ConfigError: naming the attack, the setting and the value.
    """
    return utils.check_flag(f"attack {attack!r}", name, value, accepted)


def check_budget(attack: str, norm: str, value: float | int | str, what: str = "eps") -> float:
    """Parse a finite budget ε ≥ 0 and refuse an L∞ budget above 1.

    Images are in [0, 1], so an L∞ budget larger than 1 is almost certainly written in pixel
    units (``8`` instead of ``8/255``); it would break every image and report 0 % under a
    column such as ``@2040/255``. L2 and L1 budgets may exceed 1.

    Raises:
        ConfigError: for a negative, non-finite or non-numeric budget, or an L∞ budget > 1.

    Example:
        >>> round(check_budget("pgd", "linf", "8/255") * 255)
        8
    """
    eps = parse_eps(value, what)
    if norm == "linf" and eps > MAX_LINF_EPS:
        raise ConfigError(
            f"attack {attack!r}: an L∞ {what} must be at most 1 for images in [0, 1], got "
            f"{value!r}. Budgets are in [0, 1] image units: write e.g. 8/255, not 8."
        )
    return eps


def check_budget_fits_images(attack: str, norm: str, eps: float, images: Tensor) -> None:
    """Refuse an L2 or L1 budget larger than the distance between a black and a white image of
    ``images``' size (√n and n for n = C·H·W values): no two images in [0, 1] are that far
    apart, so the budget is almost certainly written in pixel units (``128`` for ``128/255``).

    Raises:
        ConfigError: naming the attack, the budget and the largest meaningful one.

    Example:
        >>> check_budget_fits_images("pgd", "l2", 0.5, torch.zeros(1, 3, 32, 32))  # fine
        >>> try:
        ...     check_budget_fits_images("pgd", "l2", 128.0, torch.zeros(1, 3, 32, 32))
        ... except ConfigError as error:
        ...     print(str(error).split(",")[0])
        attack 'pgd': an L2 eps of 128 exceeds √(3·32·32) = 55.4
    """
    if images.ndim < 2 or norm not in ("l2", "l1"):
        return
    values = images[0].numel()
    largest = math.sqrt(values) if norm == "l2" else float(values)
    if eps <= largest:
        return
    shape = "·".join(str(v) for v in images.shape[1:])
    bound = f"√({shape})" if norm == "l2" else shape
    raise ConfigError(
        f"attack {attack!r}: an {norm.upper()} eps of {eps:g} exceeds {bound} = {largest:.3g}, "
        "the distance between a black and a white image, so no budget can be larger. Budgets "
        f"are in [0, 1] image units: write e.g. {eps:g}/255 ({eps / 255:.3g})"
    )


Model = Callable[[Tensor], Tensor]
ModelMode = Literal["eval", "train", "keep"]


def as_model_input(model: Model, images: Tensor) -> Tensor:
    """``images`` as ``model`` takes them: float64 for a float64 module, else unchanged (the
    cast is differentiable, so gradients come back in the images' dtype)."""
    dtype = float64_model_input(model)
    return images if dtype is None else images.to(dtype)


def float64_model_input(model: Model) -> torch.dtype | None:
    """``torch.float64`` for a module whose floating-point parameters are float64 (it needs
    float64 input), else ``None`` (float32 input; functions and float32 modules).

    Raises:
        InputRangeError: a half-precision module (float16 / bfloat16 parameters): attacks and
            metrics need float32 logits and perturbations finer than half precision resolves
            (bfloat16 has 8 bits of mantissa: 1/255 steps round away); evaluate it in float32
            (``model.float()``), with autocast for mixed precision on a GPU.
    """
    if not isinstance(model, nn.Module):
        return None
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        if tensor.is_floating_point():
            if tensor.dtype in (torch.float16, torch.bfloat16):
                raise InputRangeError(
                    f"the model's parameters are {tensor.dtype}: evaluate it in float32 "
                    "(model.float(); mixed precision on a GPU with torch.autocast) - half "
                    "precision rounds perturbations of 1/255 away, so attacks and corruptions "
                    "would not be the ones reported"
                )
            return torch.float64 if tensor.dtype == torch.float64 else None
    return None


def checked_input_gradient(
    model: Model, images: Tensor, labels: Tensor, what: str, required: bool = True
) -> Tensor | None:
    """The cross-entropy's input gradient of ``model`` at ``images``, refused where gradient
    attacks could not run: outputs without an autograd graph, or NaN / infinite gradients.
    With ``required=False`` (only gradient-free attacks run) nothing is refused: such outputs
    give ``None`` and the gradient is returned as it is.

    Either way a gradient attack would not move the images (or would move them to NaN), and
    the robust accuracy reported would be the clean one, a 100 % for a correct model: the
    attack failing, not the model resisting.

    Args:
        model: Classifier taking images in [0, 1] (its mode is left as it is).
        images: (N, C, H, W) in [0, 1].
        labels: (N,) class indices.
        what: Names the model and images in the messages ("model 'x' on the clean images").

    Returns:
        (N, C, H, W) gradient of the summed cross-entropy, in the images' dtype (``None``:
        no graph, not required).

    Raises:
        ConfigError: the outputs carry no gradient (the forward runs under ``torch.no_grad``,
            detaches, or goes through NumPy).
        NonFiniteError: NaN or infinite gradients for some images.
    """
    from robustart.errors import NonFiniteError

    with torch.inference_mode(False), torch.enable_grad():
        x = images.detach().clone().requires_grad_(True)
        logits = model(as_model_input(model, x))
        check_logits_shape(logits, len(x))
        check_labels(labels, len(x), logits.shape[1])
        if not logits.requires_grad:
            if not required:
                return None
            raise ConfigError(
                f"the outputs of {what} carry no gradient with respect to the images (the "
                "forward runs under torch.no_grad(), detaches its result or goes through "
                "NumPy): gradient-based attacks cannot run on it. Make the forward "
                "differentiable, or evaluate the model with the gradient-free square attack only"
            )
        loss = torch.nn.functional.cross_entropy(logits.float(), labels, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    broken = int((~torch.isfinite(grad)).flatten(1).any(dim=1).sum()) if required else 0
    if broken:
        raise NonFiniteError(
            f"the input gradients of {what} are NaN or infinite for {broken} of {len(grad)} "
            "images: gradient-based attacks cannot run there, so no robust accuracy is reported "
            "(it would be the attack failing, not the model resisting). Make the model "
            "differentiable everywhere (e.g. an epsilon under a square root or a norm), or "
            "evaluate it with the gradient-free square attack only"
        )
    return grad


class Attack(ABC):
    """Base class of all attacks.

    Args:
        eps: Budget ε (float or a fraction string such as ``"8/255"``), ≥ 0; at most 1 for
            L∞ (images are in [0, 1]: 8/255, not 8).
        norm: Threat model, one of :attr:`norms`.
        loss: Name of the per-sample loss to maximise (see ``ATTACK_LOSSES``).
        mode: Model mode while attacking: ``"eval"`` (evaluation), ``"train"`` (BatchNorm in
            training mode, used by some adversarial-training recipes) or ``"keep"``.
        precision: ``"fp32"`` disables autocast while attacking (default, strongest
            gradients); ``"amp"`` keeps the caller's autocast.
    """

    #: Registry name, set by subclasses.
    name: ClassVar[str] = ""
    #: Norms the attack supports.
    norms: ClassVar[tuple[str, ...]] = ("linf", "l2")

    def __init__(
        self,
        eps: float | str = 8 / 255,
        norm: str = "linf",
        loss: str = "ce",
        mode: ModelMode = "eval",
        precision: Literal["fp32", "amp"] = "fp32",
    ) -> None:
        if norm not in self.norms:
            raise ConfigError(
                f"attack {self.name!r} does not support norm {norm!r}; "
                f"supported: {', '.join(self.norms)}"
            )
        if mode not in ("eval", "train", "keep"):
            raise ConfigError(f"mode must be 'eval', 'train' or 'keep', got {mode!r}")
        if precision not in ("fp32", "amp"):
            raise ConfigError(f"precision must be 'fp32' or 'amp', got {precision!r}")
        self.eps = check_budget(self.name, norm, eps)
        self.norm = norm
        self.threat: ThreatModel = get_threat_model(norm)
        self.loss_name = loss
        self.loss_fn = ATTACK_LOSSES.get(loss)
        self.mode = mode
        self.precision = precision

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(eps={self.eps:g}, norm={self.norm!r}, loss={self.loss_name!r})"
        )

    def warn_if_short_of_budget(self, eps: float | None = None) -> None:
        """Warn when the attack's steps cannot reach the edge of the budget ``eps`` (default:
        the attack's ε). Attacks with a fixed step schedule (PGD and its variants) override
        this; the others adapt their steps to the budget and never warn."""
        return None

    @property
    def config(self) -> dict[str, Any]:
        """Settings that must be reported with every number (iterations, restarts, ...)."""
        return {"attack": self.name, "norm": self.norm, "eps": self.eps, "loss": self.loss_name}

    @property
    def label_stem(self) -> str:
        """What the label starts with: the attack's name, or a variant of it (``apgd_ce``)."""
        return self.name

    @property
    def label(self) -> str:
        """Name used in metric keys, stating the iterations and restarts, e.g. ``pgd10_linf``,
        ``pgd50x10_linf`` (10 restarts), ``apgd_ce100_linf``."""
        config = self.config
        iterations = config.get("steps") or config.get("queries") or ""
        restarts = config.get("restarts", 1)
        suffix = f"x{restarts}" if restarts and restarts > 1 else ""
        return f"{self.label_stem}{iterations}{suffix}_{self.norm}"

    def __call__(
        self,
        model: Model,
        images: Tensor,
        labels: Tensor,
        *,
        eps: float | str | Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Craft adversarial examples.

        Args:
            model: Maps images (N, C, H, W) in [0, 1] to logits (N, K).
            images: Clean images, float (N, C, H, W) in [0, 1].
            labels: True labels (N,) int64, or soft label distributions (N, K).
            eps: Overrides the budget for this call: a float, a fraction string or a
                per-sample tensor (N,).
            generator: Random generator on the images' device for random starts.

        Returns:
            Adversarial images, same shape and dtype as ``images``, in [0, 1], detached.
        """
        check_images(images)
        if images.dtype in (torch.float16, torch.bfloat16):
            raise InputRangeError(
                f"attacks need float32 (or float64) images, got {images.dtype}: half precision "
                "cannot hold the perturbation, so the returned images would leave the ε-ball "
                "(bfloat16: 8.47/255 at ε = 8/255). Pass images.float(); run a half model "
                "under torch.autocast"
            )
        check_attack_labels(labels, images.shape[0])
        if labels.ndim == 1 and labels.dtype != torch.int64:
            labels = labels.long()  # int32, uint8, ...: the losses index with int64
        budget = self._budget(eps, images)
        if not bool((budget > 0).any()):
            return images.detach().clone()
        # Check every call: the same attack may see another model. The labels' upper bound
        # needs the model's number of classes, known at the first forward pass.
        self._logits_checked = False
        self._labels_to_check: Tensor | None = labels
        try:
            with self._attack_context(model):
                x = images.detach().clone().float()
                y = labels.detach().clone()
                adversarial = self.perturb(model, x, y, budget, generator).to(images.dtype)
        finally:
            self._labels_to_check = None
        zero = (budget == 0).view(-1, 1, 1, 1)
        return torch.where(zero, images.detach(), adversarial.detach())

    def _budget(self, eps: float | str | Tensor | None, images: Tensor) -> Tensor:
        if eps is None:
            eps = self.eps
        if isinstance(eps, Tensor):
            if eps.dtype == torch.bool or eps.is_complex():
                # a bool mask would be read as ε = 1 on the marked images
                raise ConfigError(
                    f"attack {self.name!r}: a per-sample eps must hold real budgets, got a "
                    f"{eps.dtype} tensor"
                )
            if eps.ndim > 1 or (eps.ndim == 1 and len(eps) not in (1, images.shape[0])):
                raise ConfigError(
                    f"attack {self.name!r}: a per-sample eps must have shape () or "
                    f"({images.shape[0]},), one budget per image, got {tuple(eps.shape)}"
                )
            budget = eps.detach().to(device=images.device, dtype=torch.float32).flatten()
            if budget.numel() == 1:
                budget = budget.expand(images.shape[0])
            if not bool(torch.isfinite(budget).all()) or bool((budget < 0).any()):
                raise ConfigError("eps must be finite and >= 0")
            if budget.numel():
                check_budget(self.name, self.norm, float(budget.max()))  # L∞: at most 1
                check_budget_fits_images(self.name, self.norm, float(budget.max()), images)
            return budget.clone()
        eps_value = check_budget(self.name, self.norm, eps)
        check_budget_fits_images(self.name, self.norm, eps_value, images)
        return torch.full((images.shape[0],), eps_value, device=images.device)

    @contextlib.contextmanager
    def _attack_context(self, model: Model) -> Iterator[None]:
        train = {"eval": False, "train": True, "keep": None}[self.mode]
        mode_ctx = (
            preserve_mode(model, train)
            if isinstance(model, nn.Module)
            else contextlib.nullcontext()
        )
        autocast_ctx = (
            torch.autocast(device_type(model), enabled=False)
            if self.precision == "fp32"
            else contextlib.nullcontext()
        )
        with mode_ctx, torch.inference_mode(False), torch.enable_grad(), autocast_ctx:
            yield

    def forward(self, model: Model, images: Tensor) -> Tensor:
        """Run the model; at the first pass of a call, check that it returns logits and that
        the labels name its classes (one check per call, no per-step synchronisation).
        The attack works on float32 images; a float64 model gets them as float64."""
        logits = model(as_model_input(model, images))  # looks at one parameter: O(1)
        if not getattr(self, "_logits_checked", False):
            check_logits(logits)
            labels = getattr(self, "_labels_to_check", None)
            if labels is not None:
                check_attack_labels(labels, labels.shape[0], logits.shape[1])
            self._logits_checked = True
        return logits.float()

    def loss_and_grad(
        self, model: Model, images: Tensor, labels: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Per-sample loss (N,), logits (N, K) and the loss gradient w.r.t. ``images``."""
        images = images.detach().requires_grad_(True)
        logits = self.forward(model, images)
        loss = self.loss_fn(logits, labels)
        (grad,) = torch.autograd.grad(loss.sum(), images)
        return loss.detach(), logits.detach(), grad.detach()

    @abstractmethod
    def perturb(
        self,
        model: Model,
        images: Tensor,
        labels: Tensor,
        eps: Tensor,
        generator: torch.Generator | None,
    ) -> Tensor:
        """Return adversarial images for ``images`` (N, C, H, W) with budgets ``eps`` (N,).

        Called with autograd enabled, the model in the requested mode and fp32 inputs.
        """


def is_unbounded(eps: object) -> bool:
    """``"inf"``, ``"infinity"`` or ``math.inf``: the unbounded budget of the
    minimal-distortion attacks.

    Example:
        >>> is_unbounded("inf"), is_unbounded(math.inf), is_unbounded("8/255")
        (True, True, False)
    """
    if isinstance(eps, str):
        return eps.strip().lower() in ("inf", "infinity")
    return isinstance(eps, float) and math.isinf(eps) and eps > 0


class MinimalDistortionAttack(Attack):
    """Base class of attacks that minimise the perturbation (C&W, DeepFool).

    They accept the unbounded budget ``eps="inf"`` (the default), under which every image
    gets its smallest perturbation found; with a finite budget, points whose perturbation
    exceeds ε are returned clean.

    Args:
        eps: Budget ε ≥ 0, or ``"inf"``/``math.inf`` for unbounded.
        norm: Threat model, one of :attr:`norms`.
        **kwargs: ``loss``, ``mode`` and ``precision`` of :class:`Attack`.
    """

    def __init__(self, eps: float | str = "inf", norm: str = "l2", **kwargs: Any) -> None:
        unbounded = is_unbounded(eps)
        super().__init__(eps=0.0 if unbounded else eps, norm=norm, **kwargs)
        if unbounded:
            self.eps = math.inf

    def _budget(self, eps: float | str | Tensor | None, images: Tensor) -> Tensor:
        if (eps is None and math.isinf(self.eps)) or is_unbounded(eps):
            return torch.full((images.shape[0],), math.inf, device=images.device)
        return super()._budget(parse_fraction(eps) if isinstance(eps, str) else eps, images)


def check_attack_labels(labels: Tensor, num_images: int, num_classes: int | None = None) -> None:
    """Check the labels given to an attack: class indices (N,) in [0, num_classes), or soft
    label distributions (N, num_classes).

    Out-of-range labels would otherwise be attacked and scored as wrong predictions, giving a
    robust accuracy of 0 for a data problem.

    Args:
        labels: (N,) integer class indices or (N, K) float soft labels.
        num_images: N.
        num_classes: Width of the model's logits; ``None`` checks only what is known before the
            first forward pass (dtype, shape, labels >= 0).

    Raises:
        InputRangeError: wrong dtype, shape, or labels out of range.
    """
    if isinstance(labels, Tensor) and labels.ndim == 2:
        if not labels.is_floating_point() and labels.shape[1] == 1:
            raise InputRangeError(
                f"labels must have shape ({num_images},), one class index per image, got "
                f"{tuple(labels.shape)}: flatten them (labels.flatten())"
            )
        if not labels.is_floating_point():
            raise InputRangeError(
                f"soft labels (N, K) must be float probability rows, got dtype {labels.dtype}"
            )
        if labels.shape[0] != num_images:
            raise InputRangeError(
                f"labels must have shape ({num_images},) or ({num_images}, K) for soft labels, "
                f"got {tuple(labels.shape)}"
            )
        if num_classes is not None and labels.shape[1] != num_classes:
            raise InputRangeError(
                f"soft labels have {labels.shape[1]} classes but the model has {num_classes}"
            )
        return
    check_labels(labels, num_images, num_classes)


def device_type(model: Model) -> str:
    """The device type (``"cpu"``, ``"cuda"``, ...) of the model's parameters, for autocast;
    for a plain function, ``"cuda"`` when available."""
    if isinstance(model, nn.Module):
        for p in model.parameters():
            return p.device.type
    return "cuda" if torch.cuda.is_available() else "cpu"


def create_attack(name: str, **kwargs: Any) -> Attack:
    """Build the attack registered as ``name`` with keyword settings.

    Raises:
        UnknownNameError: for an unknown name (close matches are suggested).
        ConfigError: for a setting the attack does not accept or a bad value.

    Example:
        >>> attack = create_attack("pgd", eps="8/255", steps=10)
        >>> attack.steps
        10
    """
    cls = ATTACKS.get(name)
    try:
        return cls(**kwargs)
    except TypeError as err:
        import inspect

        params = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self",)]
        raise ConfigError(
            f"bad settings for attack {name!r}: {err}. Accepted settings: {', '.join(params)}"
        ) from None
