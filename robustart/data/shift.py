"""The one registry of the distribution-shift and pre-generated robustness datasets kept on
disk, and the spelling rule of their names.

Every dataset has one name, the spelling of ``robustart shift --benchmark``: ``cifar10-c``,
``cifar10.1``, ``imagenet-a``, ... Lookups ignore case, ``-``, ``_``, ``.`` and spaces, so
``CIFAR10_C`` and ``imagenet_a`` find ``cifar10-c`` and ``imagenet-a``; a user never meets a
second spelling.

Example:
    >>> from robustart.data import create_shift_dataset
    >>> data = create_shift_dataset("cifar10-c", root="data/CIFAR-10-C",
    ...                             corruption="fog", severity=3)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch.utils.data import Dataset

from robustart.errors import UnknownNameError
from robustart.registry import Registry

T = TypeVar("T")


def spelling_key(name: str) -> str:
    """``name`` without case, ``-``, ``_``, ``.`` and spaces: two names with the same key are
    the same name.

    Example:
        >>> spelling_key("CIFAR10_C") == spelling_key("cifar10-c")
        True
    """
    return "".join(c for c in str(name).lower() if c not in "-_. ")


class SpellingTolerantRegistry(Registry[T]):
    """A :class:`~robustart.registry.Registry` whose lookups accept any spelling of a name
    (:func:`spelling_key`); registering two spellings of one name is refused."""

    def register(self, name: str) -> Callable[[T], T]:
        twin = self.canonical(name)
        if twin is not None and twin != name:
            raise ValueError(f"{self.kind} {name!r} is registered twice, as {twin!r}")
        return super().register(name)

    def canonical(self, name: str) -> str | None:
        """The registered spelling of ``name``, or ``None`` if it is not registered."""
        if Registry.__contains__(self, name):
            return name
        key = spelling_key(name)
        return next((known for known in self.names() if spelling_key(known) == key), None)

    def get(self, name: str) -> T:
        """The object registered under any spelling of ``name``.

        Raises:
            UnknownNameError: listing close names and every known one.
        """
        known = self.canonical(name)
        if known is None:
            raise UnknownNameError(self.unknown_message(name))
        return super().get(known)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.canonical(name) is not None


#: Dataset name → class (``cifar10-c``, ``imagenet-a``, ...); each module registers its own,
#: under the name of its ``robustart shift`` benchmark where it has one.
SHIFT_DATASETS: SpellingTolerantRegistry[type[Dataset]] = SpellingTolerantRegistry("shift dataset")


def create_shift_dataset(name: str, root: str, **kwargs: Any) -> Dataset:
    """Instantiate the dataset registered as ``name`` (any spelling) on the files under
    ``root``; ``kwargs`` go to its constructor (``corruption``, ``severity``, ...)."""
    return SHIFT_DATASETS.get(name)(root=root, **kwargs)
