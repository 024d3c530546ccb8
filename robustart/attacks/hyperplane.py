"""Minimal-norm steps onto a hyperplane inside a box: the projection FAB takes every iteration.

Given a hyperplane normal ``w``, an offset ``c`` and a box ``lower ≤ δ ≤ upper`` that contains
0, :func:`hyperplane_projection` returns, per sample, the δ of smallest L∞ or L2 norm with
``⟨w, δ⟩ = c``. For an image ``x`` in [0, 1] the box is ``lower = −x``, ``upper = 1 − x``.

Both norms reduce to the same one-dimensional problem. Flip ``w`` so that ``c ≥ 0`` and let
``b_i ≥ 0`` be the room coordinate i has in the direction of ``w`` (``upper_i`` where
``w_i > 0``, ``−lower_i`` where ``w_i < 0``). The optimal δ moves every coordinate towards
``sign(w_i)`` by ``min(b_i, t · m_i)`` for one level ``t ≥ 0`` per sample:

* L∞: ``m_i = 1`` (every coordinate moves by the same amount t unless its room is smaller; ``t``
  is the norm, and ``⟨w, δ⟩`` grows monotonically with it);
* L2: ``m_i = |w_i|`` (the KKT conditions give ``δ = clip(t · w, lower, upper)``).

Then ``⟨w, δ(t)⟩ = Σ_i a_i · min(r_i, t)`` with ``a_i = |w_i| m_i`` and ``r_i = b_i / m_i``: a
non-decreasing, piecewise-linear, concave function of ``t`` with breakpoints ``r_i``.
:func:`smallest_level` finds the smallest ``t`` where it reaches ``c`` exactly, by sorting the
breakpoints once (no iteration count, no tolerance). Where the hyperplane is out of reach inside
the box, ``t`` is the largest breakpoint: δ is the box corner in the direction of ``w``, the
point of the box closest to the hyperplane.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from robustart.errors import ConfigError

#: Guards divisions by a slope or a scale that can be zero.
_TINY = 1e-30

#: Per-coordinate speed ``m_i`` of the optimal δ along its level ``t``, from ``|w_i|`` (N, D).
_SPEEDS: dict[str, Callable[[Tensor], Tensor]] = {
    "linf": torch.ones_like,
    "l2": lambda magnitude: magnitude,
}


def smallest_level(weights: Tensor, ceilings: Tensor, targets: Tensor) -> Tensor:
    """Per row, the smallest ``t ≥ 0`` with ``Σ_i weights_i · min(ceilings_i, t) = targets``.

    The left-hand side is non-decreasing and piecewise linear in ``t``; the breakpoints are
    sorted once and the linear piece that contains the target is solved exactly (sums in
    float64). Rows whose target exceeds the largest reachable value (``Σ weights_i ·
    ceilings_i``) get the largest ceiling.

    Args:
        weights: Slopes ``a`` (N, D), ≥ 0.
        ceilings: Breakpoints ``r`` (N, D), ≥ 0 and finite.
        targets: Values to reach (N,), ≥ 0.

    Returns:
        Levels ``t`` (N,), ≥ 0, in the dtype of ``weights``.

    Example:
        >>> smallest_level(torch.tensor([[2.0, 1.0]]), torch.tensor([[0.25, 1.0]]),
        ...                torch.tensor([1.5]))
        tensor([1.])
    """
    size, dtype = ceilings.shape[1], weights.dtype
    ceilings, order = ceilings.double().sort(dim=1)
    weights = weights.double().gather(1, order)
    saturated = weights * ceilings  # each coordinate's contribution once it is capped
    capped = saturated.cumsum(dim=1)  # Σ_{j≤k} a_j r_j
    free = weights.sum(dim=1, keepdim=True) - weights.cumsum(dim=1)  # Σ_{j>k} a_j
    at_breakpoint = capped + ceilings * free  # the function's value at t = r_k
    target = targets.double().reshape(-1, 1)
    first = (at_breakpoint < target).sum(dim=1, keepdim=True)  # first breakpoint reaching it
    reachable = first < size
    k = first.clamp(max=size - 1)
    # between r_{k−1} and r_k: Σ_{j<k} a_j r_j + t · Σ_{j≥k} a_j
    before = capped.gather(1, k) - saturated.gather(1, k)
    slope = free.gather(1, k) + weights.gather(1, k)
    low = torch.where(k > 0, ceilings.gather(1, (k - 1).clamp_min(0)), 0.0)
    level = ((target - before) / slope.clamp_min(_TINY)).clamp(low, ceilings.gather(1, k))
    level = torch.where(reachable, level, ceilings[:, -1:])
    return level.squeeze(1).to(dtype)


def hyperplane_projection(w: Tensor, c: Tensor, lower: Tensor, upper: Tensor, norm: str) -> Tensor:
    """The minimal-norm δ with ``⟨w, δ⟩ = c`` and ``lower ≤ δ ≤ upper``, per sample.

    Where the hyperplane cannot be reached inside the box, δ is the box corner in the direction
    of ``sign(c) · w`` (coordinates with ``w_i = 0`` stay 0), which minimises ``|⟨w, δ⟩ − c|``.

    Args:
        w: Hyperplane normals (N, ...) (e.g. (N, C, H, W) input gradients).
        c: Offsets (N,): the required value of ``⟨w, δ⟩``; any sign.
        lower: Lower bounds of δ, shape of ``w``, ≤ 0 (``−x`` for an image x in [0, 1]).
        upper: Upper bounds of δ, shape of ``w``, ≥ 0 (``1 − x``).
        norm: ``"linf"`` or ``"l2"``.

    Returns:
        δ, shape and dtype of ``w``, inside the box.

    Raises:
        ConfigError: for another norm.

    Example:
        >>> w = torch.tensor([[1.0, 1.0]])
        >>> hyperplane_projection(w, torch.tensor([1.5]), -torch.ones(1, 2),
        ...                       torch.tensor([[0.5, 2.0]]), "l2")
        tensor([[0.5000, 1.0000]])
    """
    if norm not in _SPEEDS:
        raise ConfigError(
            f"the hyperplane projection supports {', '.join(_SPEEDS)}, not norm {norm!r}"
        )
    n = w.shape[0]
    direction = w.reshape(n, -1) * c.reshape(n, 1).sign()  # now ⟨direction, δ⟩ = |c|
    room = torch.where(direction > 0, upper.reshape(n, -1), -lower.reshape(n, -1))
    room = torch.where(direction != 0, room.clamp_min(0), 0.0)
    magnitude = direction.abs()
    speed = _SPEEDS[norm](magnitude)
    weights = magnitude * speed
    ceilings = torch.where(weights > 0, room / speed.clamp_min(_TINY), 0.0)
    level = smallest_level(weights, ceilings, c.reshape(n).abs())
    delta = direction.sign() * torch.minimum(room, level.reshape(n, 1) * speed)
    return delta.reshape(w.shape).to(w.dtype)
