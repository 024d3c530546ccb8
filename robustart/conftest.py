"""Doctest namespace for ``pytest --doctest-modules`` over ``robustart/`` (see setup.cfg); it lives
in the package, not at the repository root, so that ``import conftest`` in the tests (and in the
processes DDP tests spawn) finds ``tests/conftest.py``.

Examples may use ``torch`` without importing it, as in PyTorch's and kornia's documentation.
"""

import pytest
import torch


@pytest.fixture(autouse=True)
def _doctest_torch(doctest_namespace: dict) -> None:
    doctest_namespace["torch"] = torch
