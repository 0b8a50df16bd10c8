"""Hard faults: a Stop during one long step, a server killed under its runs, signals to
`creditlab serve`. Every process these tests start is ended in their teardown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from engine.config import RunConfig

from app import runner
from app.runner import RunHandle

sys.path.insert(0, str(Path(__file__).parent))
from browser_helpers import CHROMIUM, chromium_context, free_port, wait_for_bokeh  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# One step of this takes 10–60 s on two cores: far longer than Stop's grace.
LONG_STEP = dict(dataset="digits", rule="np", depth=3, width=2048, batch_size=16384, steps=10,
                 device="cpu")


def wait_for(predicate, timeout: float, what: str):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} within {timeout} s")


def gone(pid: int) -> bool:
    """True when the process has ended (a zombie waiting for its reaper has ended too)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_all(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


# --------------------------------------------------------------------------- Stop
def test_stop_ends_a_run_stuck_in_one_long_step():
    run = RunHandle(RunConfig(**LONG_STEP)).start()
    try:
        wait_for(lambda: run.status == "running", 120, "the run did not start its first step")
        time.sleep(0.5)                       # well inside that step
        t0 = time.time()
        run.stop()
        assert run.join(runner.STOP_GRACE + runner.KILL_GRACE + 30), "Stop did not end the run"
        took = time.time() - t0
        print(f"\nStop during a long step → process ended in {took:.1f} s")
        assert run.status == "stopped" and not run.alive
        assert "did not answer Stop" in run.error
        assert took < runner.STOP_GRACE + runner.KILL_GRACE + 30
    finally:
        run.stop()
        run.join(30)


# --------------------------------------------------------------------------- a killed server
SERVER_SCRIPT = textwrap.dedent("""
    import json, sys, time
    from multiprocessing import forkserver
    from engine.config import RunConfig
    from app.runner import RunHandle

    if __name__ == "__main__":
        run = RunHandle(RunConfig(dataset="digits", depth=1, width=8, steps=10_000_000,
                                  device="cpu")).start()
        while run.status != "running":
            time.sleep(0.05)
        print(json.dumps({"run": run._process.pid,
                          "forkserver": forkserver._forkserver._forkserver_pid}), flush=True)
        time.sleep(600)
""")


def test_runs_end_when_their_server_is_killed(tmp_path):
    script = tmp_path / "server.py"
    script.write_text(SERVER_SCRIPT)
    server = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True)
    pids: list[int] = []
    try:
        pids = list(json.loads(server.stdout.readline()).values())
        assert not any(gone(pid) for pid in pids)
        server.kill()
        server.wait(10)
        wait_for(lambda: all(gone(pid) for pid in pids), 20,
                 "the run or its forkserver outlived the killed server")
    finally:
        server.kill()
        server.wait(10)
        kill_all(pids)


# --------------------------------------------------------------------------- creditlab serve
def _serve(port: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "engine", "serve", "--port", str(port),
                             "--address", "127.0.0.1"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _listening(port: int) -> bool:
    import socket
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
def test_sigterm_to_serve_ends_its_server():
    port = free_port()
    serve = _serve(port)
    family: list[int] = []
    try:
        wait_for(lambda: _listening(port), 120, "the dashboard server did not listen")
        family = descendants(serve.pid)
        assert family
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(30) == 128 + signal.SIGTERM
        wait_for(lambda: all(gone(pid) for pid in family), 30, "the panel server outlived serve")
        assert not _listening(port)
    finally:
        serve.kill()
        serve.wait(10)
        kill_all(family)


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent")
def test_killing_serve_ends_the_server_and_its_running_run(tmp_path):
    """kill -9 of `creditlab serve` while a run trains: the panel server gets SIGTERM from the
    kernel, and the run and the forkserver end with it."""
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    port = free_port()
    serve = _serve(port)
    family: list[int] = []
    try:
        wait_for(lambda: _listening(port), 120, "the dashboard server did not listen")
        with chromium_context(tmp_path / "profile") as browser:
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/app?steps=10000000")
            wait_for_bokeh(page, 60)
            page.get_by_role("button", name="Start").click()
            page.get_by_text("— running").first.wait_for(timeout=120_000)
            family = descendants(serve.pid)
            assert len(family) >= 3              # the panel server, the forkserver, the run
            serve.kill()
            serve.wait(10)
            wait_for(lambda: all(gone(pid) for pid in family), 30,
                     "a process outlived the killed serve")
    finally:
        serve.kill()
        serve.wait(10)
        kill_all(family)
