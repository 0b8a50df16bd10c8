"""The tests' one support layer: shared fixtures, and helpers the test modules import from here.

Every test runs with one torch thread: the networks here are tiny, and on a shared 2-core
machine torch's second thread made a step 50× slower (300–390 ms against 5–7 ms). No test
measures threading; one that did would set its own count. OMP_NUM_THREADS also reaches the
processes the tests start (the CLI, the dashboard's runs)."""

import contextlib
import os
import resource
import signal
import time
import tracemalloc

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
def browser(tmp_path_factory):
    """A context of Debian's Chromium for a module's browser tests, closed in teardown."""
    from browser_helpers import chromium_context
    with chromium_context(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


@pytest.fixture(scope="module")
def server():
    """The dashboard served on a free port for a module's browser tests: (url, the Dashboards of
    its sessions); the server and its runs are stopped in teardown."""
    from browser_helpers import serve_dashboard
    with serve_dashboard() as (url, dashboards):
        yield url, dashboards


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


MiB = 1 << 20


class Overran(BaseException):
    """Raised by `bounded`'s timer: not an OSError (as TimeoutError is) nor an Exception, so that no
    handler in the code under test turns it into an ordinary error."""


@contextlib.contextmanager
def bounded(seconds: float = 30.0, peak_mib: int | None = 32):
    """Fail, rather than hang or exhaust the machine, when the code inside runs past `seconds`
    or its peak allocation passes `peak_mib` (past 1 GiB more than the process holds, an
    allocation is a MemoryError). peak_mib=None: not measured (tracemalloc slows PyYAML's deep
    recursion 30-fold)."""
    def alarm(*_):
        raise Overran(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        held = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    cap = held + (1 << 30)
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
    if peak_mib is not None:
        tracemalloc.start()
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    assert peak_mib is None or peak < peak_mib * MiB, f"peak allocation {peak / MiB:.0f} MiB"
