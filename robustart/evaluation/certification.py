"""Certified ℓ2 robustness by randomized smoothing (Cohen, Rosenfeld & Kolter, ICML 2019).

The smoothed classifier ``g(x) = argmax_c P(f(x + ε) = c)``, ``ε ~ N(0, σ² I)``, is robust
around ``x`` within the ℓ2 radius ``σ · Φ⁻¹(p_A)`` whenever the top class has probability
``p_A > 1/2`` under the noise (Theorem 1 of the paper). This module implements the paper's
two Monte Carlo procedures exactly as published:

* :meth:`SmoothedClassifier.certify` (CERTIFY): ``n0`` noisy samples guess the top class
  ``ĉ_A``; ``n`` fresh samples count it; ``p_A`` is bounded from below by the one-sided
  Clopper–Pearson bound at level ``1 − α``; abstain if that bound is below 1/2, else return
  ``(ĉ_A, σ · Φ⁻¹(p_A lower))``.
* :meth:`SmoothedClassifier.predict` (PREDICT): ``n`` samples, the two largest counts
  ``n_A``, ``n_B``; abstain if the two-sided binomial test of ``n_A`` out of ``n_A + n_B`` at
  ``p = 1/2`` has a p-value above ``α``.

The noise is added to the images in [0, 1] (the model normalises its input itself) and is
*not* clamped to [0, 1], as in the paper. Published defaults: ``n0 = 100``, ``n = 100,000``,
``α = 0.001``; CIFAR-10 ``σ ∈ {0.12, 0.25, 0.5, 1.0}``. The statistics (Clopper–Pearson bound,
binomial test) are computed here without scipy.

Example:
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    >>> images, labels = torch.rand(2, 3, 2, 2), torch.tensor([0, 1])
    >>> result = certify_images(model, images, labels, 3, sigma=0.25, n0=8, n=32)
    >>> sorted(result.certified_accuracy([0.0, 0.5]))
    [0.0, 0.5]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from robustart.errors import ConfigError, EmptyInputError
from robustart.utils import (
    check_finite_logits,
    check_images,
    check_labels,
    eps_key,
    make_generator,
    preserve_mode,
    stable_seed,
)

__all__ = [
    "ABSTAIN",
    "CERTIFICATION_DEFAULTS",
    "CertificationResult",
    "SmoothedClassifier",
    "binomial_test_half",
    "certification_metric_names",
    "certified_radius",
    "certify_chunks",
    "certify_images",
    "check_certification_settings",
    "clopper_pearson_lower",
]

#: The class index that stands for "abstain".
ABSTAIN = -1

#: Settings of a benchmark suite's ``certification:`` section and their defaults (the
#: paper's n0 and α; n = 1,000 rather than 100,000 to keep a benchmark affordable).
CERTIFICATION_DEFAULTS: dict[str, Any] = {
    "sigma": 0.25,
    "n0": 100,
    "n": 1000,
    "alpha": 0.001,
    "radii": [0.0, 0.25, 0.5, 0.75, 1.0],
    "batch_size": 500,
    "n_predict": 0,
}

#: Section of the certification metrics (see :meth:`CertificationResult.metrics`).
METRIC_SECTION = "certified"


# ----------------------------------------------------------------------------- statistics
def _log_choose(n: int, k: np.ndarray) -> np.ndarray:
    """log C(n, k) for integer ``k`` (float64 array)."""
    lgamma = torch.lgamma(torch.from_numpy(np.stack([k + 1, n - k + 1]))).numpy()
    return math.lgamma(n + 1) - lgamma[0] - lgamma[1]


def _log_upper_tail(log_choose: np.ndarray, k: np.ndarray, n: int, p: float) -> float:
    """log P(Bin(n, p) ≥ k_0) where ``k = [k_0, ..., n]`` (float64) and ``log_choose`` holds
    log C(n, k); 0 < p < 1; summed in log space."""
    terms = log_choose + k * math.log(p) + (n - k) * math.log1p(-p)
    top = float(terms.max())
    return top + math.log(float(np.exp(terms - top).sum()))


def _check_counts(k: int, n: int, alpha: float) -> None:
    if n < 1:
        raise EmptyInputError(f"a binomial bound needs n >= 1 samples, got n={n}")
    if not 0 <= k <= n:
        raise ConfigError(f"the count k must lie in [0, n={n}], got {k}")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must lie in (0, 1), got {alpha}")


def clopper_pearson_lower(k: int, n: int, alpha: float) -> float:
    """One-sided Clopper–Pearson lower confidence bound on a binomial proportion.

    The ``p`` with ``P(Bin(n, p) ≥ k) = α`` (the ``α`` quantile of Beta(k, n − k + 1)): with
    probability at least ``1 − α`` the true proportion is at least this value. Equal to
    ``statsmodels.proportion_confint(k, n, alpha=2 * alpha, method="beta")[0]`` of Cohen et
    al.'s code. Closed forms at the ends (0 for ``k = 0``, ``α^(1/n)`` for ``k = n``); else
    64 bisection steps on ``p`` of the exact upper tail computed in log space.

    Args:
        k: Successes, 0 ≤ k ≤ n.
        n: Trials, ≥ 1.
        alpha: Error probability in (0, 1).

    Returns:
        The bound in [0, 1).

    Raises:
        ConfigError: ``k`` outside [0, n] or ``alpha`` outside (0, 1).
        EmptyInputError: ``n < 1``.
    """
    _check_counts(k, n, alpha)
    if k == 0:
        return 0.0
    if k == n:
        return alpha ** (1.0 / n)
    log_alpha = math.log(alpha)
    j = np.arange(k, n + 1, dtype=np.float64)
    log_choose = _log_choose(n, j)
    lo, hi = 0.0, 1.0  # the tail grows with p: tail(lo) < α ≤ tail(hi)
    for _ in range(64):  # |hi - lo| = 2^-64
        mid = 0.5 * (lo + hi)
        if _log_upper_tail(log_choose, j, n, mid) < log_alpha:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def binomial_test_half(k: int, n: int) -> float:
    """Two-sided exact binomial test p-value of ``k`` successes in ``n`` trials at ``p = 1/2``.

    ``min(1, 2 · P(Bin(n, 1/2) ≥ max(k, n − k)))``: by symmetry the sum of the probabilities
    of every outcome no more likely than ``k``, as ``scipy.stats.binomtest(k, n, 0.5)``
    (``binom_test`` in Cohen et al.'s code).

    Args:
        k: Successes, 0 ≤ k ≤ n.
        n: Trials, ≥ 1.

    Returns:
        The p-value in (0, 1].
    """
    _check_counts(k, n, 0.5)
    m = max(k, n - k)
    j = np.arange(m, n + 1, dtype=np.float64)
    log_tail = _log_upper_tail(_log_choose(n, j), j, n, 0.5)
    return min(1.0, 2.0 * math.exp(log_tail))


#: Largest noise level accepted, on the [0, 1] pixel scale. Randomized smoothing uses 0.12–1
#: (Cohen et al., 2019); above 2 the noise drowns any image, and the value was most likely
#: given in 8-bit pixel units (64 for 0.25).
MAX_SIGMA = 2.0


def check_sigma_scale(sigma: float, name: str) -> None:
    """Refuse a smoothing σ above :data:`MAX_SIGMA` (pixel units instead of the [0, 1] scale).

    Raises:
        ConfigError: naming the setting and the value on the [0, 1] scale.
    """
    if sigma > MAX_SIGMA:
        raise ConfigError(
            f"{name} is {sigma:g}, but noise levels are on the [0, 1] pixel scale (at most "
            f"{MAX_SIGMA:g}; Cohen et al. use 0.12-1): in 8-bit units {sigma:g} would be "
            f"{sigma / 255:.4g}. Give sigma on the [0, 1] scale, e.g. 0.25"
        )


def certified_radius(p_lower: float, sigma: float) -> float:
    """The ℓ2 radius ``σ · Φ⁻¹(p_lower)`` of Theorem 1 (with ``p_B = 1 − p_A``).

    Args:
        p_lower: Lower bound on the top class's probability under the noise, in [1/2, 1).
        sigma: Noise standard deviation, > 0.

    Returns:
        The radius, ≥ 0 (0 at ``p_lower = 1/2``).

    Raises:
        ConfigError: ``p_lower`` outside [1/2, 1) (below 1/2 nothing is certified) or
            ``sigma <= 0``.
    """
    if not 0.5 <= p_lower < 1:
        raise ConfigError(f"p_lower must lie in [0.5, 1) to certify, got {p_lower}")
    if not sigma > 0:
        raise ConfigError(f"sigma must be > 0, got {sigma}")
    return sigma * NormalDist().inv_cdf(p_lower)


# ----------------------------------------------------------------------------- smoothing
class SmoothedClassifier:
    """The Gaussian-smoothed version ``g`` of a base classifier ``f`` (Cohen et al., 2019).

    Args:
        model: The base classifier: images (B, C, H, W) in [0, 1] (and beyond, with noise) →
            logits (B, num_classes); it normalises its input itself.
        num_classes: Width of the logits, ≥ 2.
        sigma: Noise standard deviation in units of the [0, 1] pixel scale, > 0.
        batch_size: Noisy copies per forward pass, ≥ 1.
        device: Where the model runs (default: its parameters' device).

    Raises:
        ConfigError: a setting out of range.
    """

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        sigma: float,
        batch_size: int = 500,
        device: torch.device | str | None = None,
    ) -> None:
        from robustart.evaluation.loop import model_device

        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ConfigError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
            raise ConfigError(f"sigma must be a number > 0, got {sigma!r}")
        check_sigma_scale(sigma, "sigma")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.model = model
        self.num_classes = num_classes
        self.sigma = float(sigma)
        self.batch_size = batch_size
        self.device = model_device(model, device)

    def sample_counts(
        self, image: Tensor, num: int, generator: torch.Generator | None = None
    ) -> Tensor:
        """How often the base classifier predicts each class on ``num`` noisy copies.

        Args:
            image: One image (C, H, W) in [0, 1].
            num: Noisy copies ``image + N(0, σ² I)`` (not clamped), ≥ 1.
            generator: Source of the noise, on the model's device (``None``: the global one).

        Returns:
            Counts (num_classes,) int64 on the CPU, summing to ``num``.

        Raises:
            ConfigError: logits of the wrong width.
            NonFiniteError: NaN or infinite logits.
        """
        if num < 1:
            raise ConfigError(f"the number of noise samples must be >= 1, got {num}")
        image = image.to(self.device)
        counts = torch.zeros(self.num_classes, dtype=torch.int64, device=self.device)
        remaining = num
        with preserve_mode(self.model, train=False), torch.inference_mode():
            while remaining > 0:
                b = min(self.batch_size, remaining)
                noise = torch.randn(
                    (b, *image.shape), generator=generator, device=self.device, dtype=image.dtype
                )
                logits = self.model(image.unsqueeze(0) + self.sigma * noise)
                if logits.ndim != 2 or logits.shape != (b, self.num_classes):
                    raise ConfigError(
                        f"the model's logits have shape {tuple(logits.shape)}, expected "
                        f"({b}, {self.num_classes}): num_classes must be the model's"
                    )
                check_finite_logits(logits, "the logits of the noisy images")
                counts += torch.bincount(logits.argmax(dim=1), minlength=self.num_classes)
                remaining -= b
        return counts.cpu()

    def predict(
        self, image: Tensor, n: int, alpha: float, generator: torch.Generator | None = None
    ) -> int:
        """PREDICT: the smoothed classifier's class, or :data:`ABSTAIN`.

        Returns a class other than ``g(x)`` with probability at most ``α``.

        Args:
            image: One image (C, H, W) in [0, 1].
            n: Noise samples, ≥ 1.
            alpha: Error probability in (0, 1).
            generator: Source of the noise (see :meth:`sample_counts`).

        Returns:
            The class index, or −1 when the binomial test of the top two counts is not
            significant at ``α``.
        """
        _check_counts(0, n, alpha)
        counts = self.sample_counts(image, n, generator)
        top = torch.topk(counts, 2)
        n_a, n_b = int(top.values[0]), int(top.values[1])
        if binomial_test_half(n_a, n_a + n_b) > alpha:
            return ABSTAIN
        return int(top.indices[0])

    def certify(
        self,
        image: Tensor,
        n0: int,
        n: int,
        alpha: float,
        generator: torch.Generator | None = None,
    ) -> tuple[int, float, int]:
        """CERTIFY: the class and ℓ2 radius within which ``g`` is constant, or abstain.

        With probability at least ``1 − α`` over the noise, a returned class is ``g(x)`` and
        ``g`` predicts it everywhere within the radius.

        Args:
            image: One image (C, H, W) in [0, 1].
            n0: Samples to guess the top class ``ĉ_A``, ≥ 1.
            n: Samples to estimate ``p_A``, ≥ 1.
            alpha: Error probability in (0, 1).
            generator: Source of the noise (see :meth:`sample_counts`).

        Returns:
            ``(class, radius, guess)``: the certified class (−1 = abstain), its radius ≥ 0
            (0.0 when abstaining) and the guessed top class ``ĉ_A`` (never −1).
        """
        _check_counts(0, n, alpha)
        guess = int(self.sample_counts(image, n0, generator).argmax())
        n_a = int(self.sample_counts(image, n, generator)[guess])
        p_lower = clopper_pearson_lower(n_a, n, alpha)
        if p_lower < 0.5:
            return ABSTAIN, 0.0, guess
        return guess, certified_radius(p_lower, self.sigma), guess


# ----------------------------------------------------------------------------- results
@dataclass
class CertificationResult:
    """Per-image outcome of CERTIFY (and optionally PREDICT) over a set of images.

    Attributes:
        sigma, n0, n, alpha: The settings.
        labels: True classes (N,) int64.
        predictions: CERTIFY's classes (N,) int64, −1 = abstain.
        radii: Certified ℓ2 radii (N,) float64 in units of the [0, 1] pixel scale; 0.0 for an
            abstention. A wrong prediction keeps its radius (a certificate of the wrong class).
        guesses: CERTIFY's guessed top classes ``ĉ_A`` from the ``n0`` samples (N,) int64.
        smoothed_predictions: PREDICT's classes (N,) int64 (−1 = abstain), or ``None`` when
            PREDICT was not run.
    """

    sigma: float
    n0: int
    n: int
    alpha: float
    labels: Tensor
    predictions: Tensor
    radii: Tensor
    guesses: Tensor
    smoothed_predictions: Tensor | None = None

    @property
    def num_images(self) -> int:
        return int(self.labels.numel())

    @property
    def correct(self) -> Tensor:
        """(N,) bool: CERTIFY returned the true class (abstentions are wrong)."""
        return self.predictions == self.labels

    @property
    def abstention_rate(self) -> float:
        """Fraction of images on which CERTIFY abstained."""
        return int((self.predictions == ABSTAIN).sum()) / self.num_images

    @property
    def guess_accuracy(self) -> float:
        """Accuracy of CERTIFY's guesses ``ĉ_A`` without abstention: an upper bound on the
        certified accuracy at every radius (radius 0 included)."""
        return int((self.guesses == self.labels).sum()) / self.num_images

    @property
    def smoothed_accuracy(self) -> float | None:
        """Accuracy of PREDICT (abstentions wrong): the smoothed classifier's clean accuracy,
        ``None`` if PREDICT was not run."""
        if self.smoothed_predictions is None:
            return None
        return int((self.smoothed_predictions == self.labels).sum()) / self.num_images

    def certified_accuracy(self, radii: Sequence[float]) -> dict[float, float]:
        """Certified accuracy at each ℓ2 radius ``r``: the fraction of images that CERTIFY
        classifies correctly with a radius ≥ ``r`` (abstentions count as wrong).

        Non-increasing in ``r``. At ``r = 0`` it is CERTIFY's accuracy, which is at most
        :attr:`guess_accuracy` (CERTIFY only returns its guess or abstains) and, up to Monte
        Carlo error, at most PREDICT's :attr:`smoothed_accuracy`.

        Args:
            radii: Radii ≥ 0.

        Returns:
            ``{radius: accuracy in [0, 1]}``.
        """
        correct = self.correct
        out = {}
        for r in radii:
            if not r >= 0:
                raise ConfigError(f"radii must be >= 0, got {r}")
            out[float(r)] = int((correct & (self.radii >= r)).sum()) / self.num_images
        return out

    def metrics(self, radii: Sequence[float], prefix: str = "") -> dict[str, float]:
        """The results as flat metrics, named as :func:`certification_metric_names` lists them:
        ``certified/r=<r>`` (certified accuracy at each radius), ``certified/abstention_rate``,
        ``certified/guess_accuracy`` and, when PREDICT ran, ``certified/smoothed_accuracy``.

        Args:
            radii: Radii ≥ 0.
            prefix: Put before each name (``test_`` at test time).

        Returns:
            ``{name: value in [0, 1]}``.
        """
        values = [
            *self.certified_accuracy(radii).values(),
            self.abstention_rate,
            self.guess_accuracy,
        ]
        if self.smoothed_accuracy is not None:
            values.append(self.smoothed_accuracy)
        names = certification_metric_names(radii, self.smoothed_accuracy is not None, prefix)
        return dict(zip(names, values, strict=True))

    def to_dict(self, radii: Sequence[float]) -> dict[str, Any]:
        """JSON-ready: settings, certified accuracy per radius (keys ``f"{r:g}"``),
        abstention rate, guess and smoothed accuracy, and the per-image outcomes."""
        accuracy = self.certified_accuracy(radii)
        out: dict[str, Any] = {
            "settings": {"sigma": self.sigma, "n0": self.n0, "n": self.n, "alpha": self.alpha},
            "num_images": self.num_images,
            "certified_accuracy": {f"{r:g}": a for r, a in accuracy.items()},
            "abstention_rate": self.abstention_rate,
            "guess_accuracy": self.guess_accuracy,
            "smoothed_accuracy": self.smoothed_accuracy,
            "per_image": {
                "label": self.labels.tolist(),
                "prediction": self.predictions.tolist(),
                "radius": self.radii.tolist(),
            },
        }
        if self.smoothed_predictions is not None:
            out["per_image"]["smoothed_prediction"] = self.smoothed_predictions.tolist()
        return out


def certify_images(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    num_classes: int,
    *,
    sigma: float,
    n0: int = 100,
    n: int = 100_000,
    alpha: float = 0.001,
    batch_size: int = 500,
    seed: int = 0,
    n_predict: int = 0,
    first_index: int = 0,
    device: torch.device | str | None = None,
) -> CertificationResult:
    """Run CERTIFY (and PREDICT if ``n_predict > 0``) on every image.

    Image ``i`` draws its noise from its own generator seeded with ``(seed, first_index + i)``,
    so results do not depend on how the images are split into calls or processes.

    Args:
        model: Base classifier, images in [0, 1] → logits (B, num_classes).
        images: (N, C, H, W) float in [0, 1].
        labels: (N,) int64 in [0, num_classes).
        num_classes: Width of the logits.
        sigma: Noise standard deviation (> 0).
        n0: CERTIFY's selection samples (paper: 100).
        n: CERTIFY's estimation samples (paper: 100,000).
        alpha: Error probability (paper: 0.001); also PREDICT's.
        batch_size: Noisy copies per forward pass.
        seed: Seed of the noise.
        n_predict: PREDICT's samples (0: PREDICT is not run).
        first_index: Global index of ``images[0]`` (for per-image seeds of a shard).
        device: Where the model runs (default: its parameters' device).

    Returns:
        A :class:`CertificationResult`.

    Raises:
        EmptyInputError: no images.
        InputRangeError: images not NCHW in [0, 1], labels not integers in range.
        NonFiniteError: NaN or infinite logits.
        ConfigError: a setting out of range.
    """
    check_certification_settings(
        {"sigma": sigma, "n0": n0, "n": n, "alpha": alpha, "batch_size": batch_size},
        check_radii=False,
    )
    if isinstance(n_predict, bool) or not isinstance(n_predict, int) or n_predict < 0:
        raise ConfigError(f"n_predict must be an integer >= 0, got {n_predict!r}")
    check_images(images)
    if images.shape[0] == 0:
        raise EmptyInputError("no images to certify")
    check_labels(labels, images.shape[0], num_classes)
    smoothed = SmoothedClassifier(model, num_classes, sigma, batch_size, device)
    predictions, radii, guesses, votes = [], [], [], []
    for i, image in enumerate(images):
        index = first_index + i
        generator = make_generator(stable_seed(seed, "certify", index), smoothed.device)
        label, radius, guess = smoothed.certify(image, n0, n, alpha, generator)
        predictions.append(label)
        radii.append(radius)
        guesses.append(guess)
        if n_predict:
            generator = make_generator(stable_seed(seed, "predict", index), smoothed.device)
            votes.append(smoothed.predict(image, n_predict, alpha, generator))
    return CertificationResult(
        sigma=float(sigma),
        n0=n0,
        n=n,
        alpha=float(alpha),
        labels=labels.detach().cpu().long(),
        predictions=torch.tensor(predictions, dtype=torch.int64),
        radii=torch.tensor(radii, dtype=torch.float64),
        guesses=torch.tensor(guesses, dtype=torch.int64),
        smoothed_predictions=torch.tensor(votes, dtype=torch.int64) if n_predict else None,
    )


def certify_chunks(
    model: nn.Module,
    chunks: Iterable[tuple[int, Tensor, Tensor]],
    num_images: int,
    chunk_size: int,
    settings: Mapping[str, Any],
    *,
    seed: int = 0,
    num_classes: int | None = None,
    device: torch.device | str | None = None,
) -> CertificationResult:
    """Run :func:`certify_images` on this process's chunks of a subset and gather the outcomes
    of all images from every DDP process (a collective call: every process must make it).

    Image ``i`` of the subset (chunk ``i // chunk_size``) draws its noise from its own seed, so
    the result does not depend on how the chunks are spread over processes.

    Args:
        model: Base classifier, images in [0, 1] → logits (B, num_classes).
        chunks: ``(chunk_id, images, labels)`` of this process
            (:func:`~robustart.evaluation.loop.iterate_chunks`).
        num_images: Images in the whole subset (over all processes), ≥ 1.
        chunk_size: Images per chunk (all chunks but the last are full).
        settings: Completed settings (:func:`check_certification_settings`): ``sigma``,
            ``n0``, ``n``, ``alpha``, ``batch_size`` and ``n_predict``.
        seed: Seed of the noise.
        num_classes: Width of the logits (``None``: read from the model's first output).
        device: Where the model runs (default: its parameters' device).

    Returns:
        A :class:`CertificationResult` over all ``num_images`` images, on every process.

    Raises:
        EmptyInputError: ``num_images < 1``.
    """
    from robustart.evaluation.loop import (
        batch_logits,
        model_device,
        sum_over_processes,
    )

    if num_images < 1:
        raise EmptyInputError("no images to certify")
    device = model_device(model, device)
    cfg = settings  # short for the calls below
    labels = torch.zeros(num_images, dtype=torch.int64, device=device)
    shifted = torch.zeros(num_images, dtype=torch.int64, device=device)  # prediction + 1
    radii = torch.zeros(num_images, dtype=torch.float64, device=device)
    guesses = torch.zeros(num_images, dtype=torch.int64, device=device)
    votes = torch.zeros(num_images, dtype=torch.int64, device=device)  # PREDICT + 1
    for chunk_id, images, chunk_labels in chunks:
        start = chunk_id * chunk_size
        images = images.to(device)
        if num_classes is None:
            num_classes = int(batch_logits(model, images[:1]).shape[-1])
        part = certify_images(
            model,
            images,
            chunk_labels.long().to(device),
            num_classes,
            sigma=cfg["sigma"],
            n0=cfg["n0"],
            n=cfg["n"],
            alpha=cfg["alpha"],
            batch_size=cfg["batch_size"],
            seed=seed,
            n_predict=cfg["n_predict"],
            first_index=start,
            device=device,
        )
        end = start + part.num_images
        labels[start:end] = part.labels.to(device)
        shifted[start:end] = part.predictions.to(device) + 1
        radii[start:end] = part.radii.to(device)
        guesses[start:end] = part.guesses.to(device)
        if part.smoothed_predictions is not None:
            votes[start:end] = part.smoothed_predictions.to(device) + 1
    return CertificationResult(
        sigma=float(cfg["sigma"]),
        n0=cfg["n0"],
        n=cfg["n"],
        alpha=float(cfg["alpha"]),
        labels=sum_over_processes(labels).cpu(),
        predictions=sum_over_processes(shifted).cpu() - 1,
        radii=sum_over_processes(radii).cpu(),
        guesses=sum_over_processes(guesses).cpu(),
        smoothed_predictions=sum_over_processes(votes).cpu() - 1 if cfg["n_predict"] else None,
    )


# ----------------------------------------------------------------------------- settings
def check_certification_settings(spec: Any, check_radii: bool = True) -> dict[str, Any]:
    """Validate a ``certification:`` section of a benchmark suite; returns it completed with
    :data:`CERTIFICATION_DEFAULTS` (``radii`` sorted, as floats; the default grid only up to
    :func:`largest_certifiable_radius`).

    Args:
        spec: The section.
        check_radii: Refuse radii that ``n`` samples cannot certify (off for callers that
            report no radii, e.g. :func:`certify_images`).

    Raises:
        ConfigError: not a mapping, an unknown key, a value out of range, or a radius no
            image can reach with these ``sigma``, ``n`` and ``alpha`` (one line each).
    """
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"certification must be a mapping of {', '.join(CERTIFICATION_DEFAULTS)}, got {spec!r}"
        )
    unknown = sorted(set(spec) - set(CERTIFICATION_DEFAULTS))
    if unknown:
        raise ConfigError(
            f"certification has unknown keys {unknown}; known: {', '.join(CERTIFICATION_DEFAULTS)}"
        )
    out = {**CERTIFICATION_DEFAULTS, **spec}

    def number(key: str) -> float:
        value = out[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"certification.{key} must be a number, got {value!r}")
        return float(value)

    sigma = number("sigma")
    if not (math.isfinite(sigma) and sigma > 0):
        raise ConfigError(f"certification.sigma must be > 0, got {out['sigma']!r}")
    check_sigma_scale(sigma, "certification.sigma")
    alpha = number("alpha")
    if not 0 < alpha < 1:
        raise ConfigError(f"certification.alpha must lie in (0, 1), got {out['alpha']!r}")
    for key, low in (("n0", 1), ("n", 1), ("batch_size", 1), ("n_predict", 0)):
        value = out[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"certification.{key} must be an integer >= {low}, got {value!r}")
    radii = out["radii"]
    if not isinstance(radii, (list, tuple)) or not radii:
        raise ConfigError(f"certification.radii must be a non-empty list, got {radii!r}")
    for r in radii:
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 <= r < math.inf:
            raise ConfigError(f"certification.radii must be numbers >= 0, got {r!r}")
    out.update(sigma=sigma, alpha=alpha, radii=sorted({float(r) for r in radii}))
    names = [eps_key(r, "l2") for r in out["radii"]]
    if len(set(names)) != len(names):  # one metric name per radius: a result would be lost
        raise ConfigError(
            f"certification.radii {out['radii']} holds radii that round to the same metric "
            "name (six significant digits): give radii that differ within six digits"
        )
    largest = largest_certifiable_radius(sigma, out["n"], alpha)
    if "radii" not in spec:  # the default grid, up to what n samples can certify
        out["radii"] = [r for r in out["radii"] if r <= largest] or [0.0]
    beyond = [r for r in out["radii"] if r > largest]
    if beyond and check_radii:
        reach = (
            f"no radius can be certified (α^(1/n) = {alpha ** (1 / out['n']):.3g} ≤ 1/2)"
            if largest < 0
            else f"the largest certifiable radius is σ·Φ⁻¹(α^(1/n)) = {largest:.3g}"
        )
        raise ConfigError(
            f"certification.radii {beyond}: with sigma {sigma:g}, n {out['n']} and alpha "
            f"{alpha:g} {reach}, even for an image whose every noise sample is classified "
            "right, so the column would read 0 whatever the model. Raise n (or sigma), or "
            "drop those radii"
        )
    return out


def largest_certifiable_radius(sigma: float, n: int, alpha: float) -> float:
    """``σ · Φ⁻¹(α^(1/n))``: the radius of an image whose ``n`` noise samples all vote for
    its class (the Clopper–Pearson bound with ``k = n``); −1 when even that is not certified
    (``α^(1/n) ≤ 1/2``).

    Example:
        >>> round(largest_certifiable_radius(0.25, 100_000, 0.001), 3)  # Cohen et al.'s n
        0.953
    """
    p_lower = alpha ** (1 / n)
    return certified_radius(p_lower, sigma) if p_lower >= 0.5 else -1.0


def certification_metric_names(
    radii: Sequence[float], smoothed: bool = False, prefix: str = ""
) -> list[str]:
    """The names under which :meth:`CertificationResult.metrics` reports, in its order.

    ``certified/r=<r>`` for each radius (``%g``, as the benchmark's ``certified @r=<r>``
    columns), ``certified/abstention_rate``, ``certified/guess_accuracy`` and, with
    ``smoothed`` (PREDICT ran, ``n_predict > 0``), ``certified/smoothed_accuracy``.

    Example:
        >>> certification_metric_names([0, 0.25], prefix="test_")[:2]
        ['test_certified/r=0', 'test_certified/r=0.25']
    """
    section = f"{prefix}{METRIC_SECTION}"
    names = [f"{section}/r={eps_key(float(r), 'l2')}" for r in radii]
    names += [f"{section}/abstention_rate", f"{section}/guess_accuracy"]
    if smoothed:
        names.append(f"{section}/smoothed_accuracy")
    return names
