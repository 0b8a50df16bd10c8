"""The tests' one support layer: shared fixtures, and helpers the test modules import from here.

Every test runs with one torch thread: the networks here are tiny, and on a shared 2-core
machine torch's second thread made a step 50× slower (300–390 ms against 5–7 ms). No test
measures threading; one that did would set its own count. OMP_NUM_THREADS also reaches the
processes the tests start (the CLI, the dashboard's runs)."""

import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def float64():
    """Exact comparisons in double precision, for a module (`pytestmark`); restored after it."""
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def wait_until(predicate, timeout: float = 60.0, what: str = "the condition was not met", interval: float = 0.05):
    """`predicate()`'s first true value, polled until `timeout` seconds have passed; an
    AssertionError naming `what` after that. Waits on an event with a generous bound, never a
    fixed sleep: a loaded machine is slow, not wrong."""
    t0 = time.monotonic()
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"waited {timeout} s: {what}")
        time.sleep(interval)
