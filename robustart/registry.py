"""A small name → object registry with helpful errors.

Every pluggable family (models, attacks, corruptions, threat-model norms, ...) has one
:class:`Registry`. Looking up an unknown name raises :class:`~robustart.errors.UnknownNameError`
listing the closest known names.

Example:
    >>> COLORS = Registry("color")
    >>> @COLORS.register("red")
    ... def red() -> str:
    ...     return "#f00"
    >>> COLORS.get("red")()
    '#f00'
    >>> COLORS.get("rde")
    Traceback (most recent call last):
    ...
    robustart.errors.UnknownNameError: unknown color 'rde'. Did you mean: red? Known colors: red
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from robustart.errors import UnknownNameError

T = TypeVar("T")


def close_matches(name: str, candidates: Iterable[str], n: int = 5) -> list[str]:
    """Return up to ``n`` candidates similar to ``name`` (best first)."""
    candidates = list(candidates)
    matches = difflib.get_close_matches(name, candidates, n=n, cutoff=0.6)
    lowered = name.lower()
    for c in candidates:  # substring matches help with prefixes such as "resnet"
        if len(matches) >= n:
            break
        if lowered and lowered in c.lower() and c not in matches:
            matches.append(c)
    return matches


class Registry(Generic[T]):
    """Maps names to objects (usually classes or factory functions).

    Args:
        kind: What the registry holds, used in error messages (e.g. ``"attack"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers ``obj`` under ``name``."""

        def decorator(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        """Return the object registered as ``name``.

        Raises:
            UnknownNameError: if ``name`` is not registered; the message lists close matches.
        """
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str, extra: Iterable[str] = ()) -> str:
        """The error message for an unknown ``name`` (``extra``: more valid names to suggest)."""
        known = sorted(self._items)
        suggestions = close_matches(str(name), [*known, *extra])
        hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
        return f"unknown {self.kind} {name!r}.{hint} Known {self.kind}s: {', '.join(known)}"

    def names(self) -> list[str]:
        """All registered names, in registration order."""
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
