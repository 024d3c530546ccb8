"""Doctest namespace for ``pytest --doctest-modules`` over ``robustart/`` (see setup.cfg).

Examples may use ``torch`` without importing it, as in PyTorch's and kornia's documentation.
"""

import pytest
import torch


@pytest.fixture(autouse=True)
def _doctest_torch(doctest_namespace: dict) -> None:
    doctest_namespace["torch"] = torch
