"""Doctest namespace for ``pytest --doctest-modules`` over ``robustart/`` (see setup.cfg); it lives
in the package, not at the repository root, so that ``import conftest`` in the tests (and in the
processes DDP tests spawn) finds ``tests/conftest.py``.

Examples may use ``torch`` without importing it, as in PyTorch's and kornia's documentation.
A collection hook rather than a fixture, so that the package does not import pytest (a test-only
dependency; tests/test_optional_dependencies.py checks the package's imports).
"""

from typing import Any


def pytest_collection_modifyitems(items: list[Any]) -> None:
    """Put ``torch`` into the globals of every doctest of the package."""
    import torch

    for item in items:
        test = getattr(item, "dtest", None)
        if test is not None:
            test.globs.setdefault("torch", torch)
