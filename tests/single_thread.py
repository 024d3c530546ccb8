"""A module-scoped fixture running tests with one intra-op thread: for the tiny batches of
these tests one thread is faster than two, and much faster when the cores are shared. Use it
with ``from single_thread import one_thread`` and
``pytestmark = pytest.mark.usefixtures("one_thread")``."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
