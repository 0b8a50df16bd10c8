"""Hard faults: a Stop during one long step, a server killed under its runs, signals to
`creditlab serve`. Every process these tests start is ended in their teardown."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import select
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import creditlab_serve, listening, wait_until

from engine.config import RunConfig

from engine.host import runner
from engine.host.runner import RunHandle

from browser import CHROMIUM, chromium_context, free_port, serve_dashboard, wait_for_bokeh

ROOT = Path(__file__).resolve().parents[1]

# One step of this takes 10–60 s on two cores: far longer than Stop's grace.
LONG_STEP = dict(dataset="digits", rule="np", depth=3, width=2048, batch_size=16384, steps=10,
                 device="cpu")


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
        wait_until(lambda: run.status == "running", 120, "the run did not start its first step")
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
    from engine.host.runner import RunHandle

    if __name__ == "__main__":
        run = RunHandle(RunConfig(dataset="digits", depth=1, width=8, steps=10_000_000,
                                  device="cpu")).start()
        deadline = time.time() + 120
        while run.status != "running":
            if not run.alive or time.time() > deadline:     # say why, instead of leaving the test waiting
                print(json.dumps({"error": f"the run is {run.status}: {run.error}"}), flush=True)
                sys.exit(1)
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
        ready, _, _ = select.select([server.stdout], [], [], 180)
        assert ready, "the server script said nothing in 180 s"
        said = json.loads(server.stdout.readline())
        assert "error" not in said, said["error"]
        pids = list(said.values())
        assert not any(gone(pid) for pid in pids)
        server.kill()
        server.wait(10)
        wait_until(lambda: all(gone(pid) for pid in pids), 20,
                 "the run or its forkserver outlived the killed server")
    finally:
        server.kill()
        server.wait(10)
        kill_all(pids)


# --------------------------------------------------------------------------- creditlab serve
def _start_button(page, log: Path, timeout_s: float = 120) -> None:
    """Wait for the Start button; on a timeout, say what the page and the server showed."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    try:
        page.get_by_role("button", name="Start").wait_for(timeout=timeout_s * 1000)
    except PlaywrightTimeout:
        pytest.fail(f"no Start button after {timeout_s} s; the page shows "
                    f"{page.inner_text('body')[:300]!r}; the server wrote:\n"
                    f"{log.read_text()[-3000:]}")


@pytest.mark.slow
def test_sigterm_to_serve_ends_its_server():
    port = free_port()
    serve = creditlab_serve(port)
    family: list[int] = []
    try:
        wait_until(lambda: listening(port), 120, "the dashboard server did not listen")
        family = descendants(serve.pid)
        assert family
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(30) == 128 + signal.SIGTERM
        wait_until(lambda: all(gone(pid) for pid in family), 30, "the panel server outlived serve")
        assert not listening(port)
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
    port, log = free_port(), tmp_path / "serve.log"
    serve = creditlab_serve(port, log)
    family: list[int] = []
    try:
        wait_until(lambda: listening(port), 120, "the dashboard server did not listen")
        with chromium_context(tmp_path / "profile") as browser:
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/app?steps=10000000")
            wait_for_bokeh(page, 60)
            _start_button(page, log)
            page.get_by_role("button", name="Start").click()
            page.get_by_text("— running").first.wait_for(timeout=120_000)
            family = descendants(serve.pid)
            assert len(family) >= 3              # the panel server, the forkserver, the run
            serve.kill()
            serve.wait(10)
            wait_until(lambda: all(gone(pid) for pid in family), 30,
                     "a process outlived the killed serve")
    finally:
        serve.kill()
        serve.wait(10)
        kill_all(family)


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent")
def test_a_page_slower_than_a_session_lives_still_loads_offline(tmp_path):
    """A page whose scripts take longer to arrive than an unused session lives (a busy laptop):
    Bokeh builds its session again when it connects. That session, whose HTML page was never
    rendered, must still take Panel's stylesheets from this server, not from the internet."""
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    port, log = free_port(), tmp_path / "serve.log"
    serve = creditlab_serve(port, log)
    try:
        wait_until(lambda: listening(port), 120, "the dashboard server did not listen")
        with chromium_context(tmp_path / "profile") as browser:
            page = browser.new_page()
            outside: list[str] = []
            page.on("request", lambda r: None if r.url.startswith(f"http://127.0.0.1:{port}/")
                    or r.url.startswith(f"ws://127.0.0.1:{port}/") else outside.append(r.url))
            # Past the 10 s lifetime and its 1 s check: the page's own session is gone.
            page.route("**/static/js/bokeh.min.js*",
                       lambda route: (time.sleep(12), route.continue_()))
            page.goto(f"http://127.0.0.1:{port}/app", timeout=120_000)
            wait_for_bokeh(page, 120)
            _start_button(page, log)
            page.wait_for_load_state("networkidle")
            assert outside == [], outside[:5]
    finally:
        serve.kill()
        serve.wait(10)


# --------------------------------------------------------------------------- write errors
def _fail_writes_after(monkeypatch, n: int, err: int = errno.EROFS):
    """Every atomic write of a run file after the first n raises OSError(err)."""
    from engine.runs.writer import RunWriter

    real, calls = RunWriter.write_file, []

    def write(path, fn):
        calls.append(path)
        if len(calls) > n:
            raise OSError(err, os.strerror(err), str(path))
        return real(path, fn)

    monkeypatch.setattr(RunWriter, "write_file", staticmethod(write))


def _cli(capsys, *argv):
    from engine.cli.main import main
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("extra,rc_expected,outcome", [
    ([], 1, "failed"),                                               # it ends the run
    (["--optimizer", "sgd", "--lr", "1e6"], 3, "diverged"),           # 3 stays 3
])
def test_a_write_error_ends_the_run_in_one_line_and_keeps_its_exit_status(
        capsys, monkeypatch, tmp_path, extra, rc_expected, outcome):
    # config, summary, then the first flush (metrics, summary, checkpoint) succeed
    _fail_writes_after(monkeypatch, 5)
    rc, out, err = _cli(capsys, "train", "--steps", "100000", "--metric-interval", "1",
                        "--quiet", "--out", str(tmp_path), "--json", *extra)
    assert rc == rc_expected and "Traceback" not in err
    lines = [line for line in err.splitlines() if "cannot write" in line]
    assert len(lines) == 1 and "Read-only file system" in lines[0], err
    result = json.loads(out)
    assert result["status"] == outcome and result["steps"] < 100000
    run_dir = Path(result["run_dir"])
    assert str(run_dir) in lines[0] and "its checkpoint at step 1" in lines[0]
    # What was written before the failure is intact and readable.
    from engine.runs.reader import list_runs, load_run
    cfg, metrics = load_run(run_dir)
    assert cfg.steps == 100000 and list(metrics["step"]) == [1]
    import torch
    assert torch.load(run_dir / "checkpoint.pt", weights_only=False)["step"] == 1
    # The final summary could not be written either: the folder still says "running" (and
    # "interrupted" once this process has gone), which --resume continues from its checkpoint.
    assert list(list_runs(tmp_path)["status"]) == ["running"]


def test_an_unexpected_error_during_a_run_is_one_line_and_the_run_says_failed(
        capsys, monkeypatch, tmp_path):
    from engine.trainer import Trainer

    real, count = Trainer.step, []

    def step(self):
        count.append(1)
        if len(count) == 30:
            raise RuntimeError("CUDA out of memory.\nTried to allocate 2 GiB")
        return real(self)

    monkeypatch.setattr(Trainer, "step", step)
    rc, out, err = _cli(capsys, "train", "--steps", "100", "--quiet", "--out", str(tmp_path))
    assert rc == 1 and "Traceback" not in err
    assert err.strip().splitlines() == [
        "creditlab: error: the run failed at step 29: RuntimeError: CUDA out of memory. Tried "
        "to allocate 2 GiB"]
    run_dir = next(tmp_path.iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["steps"] == 29
    assert "CUDA out of memory" in summary["error"]


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "400k"):
        pytest.skip("cannot mount a small tmpfs here (needs root and CAP_SYS_ADMIN)")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_full_disk_ends_the_run_with_one_line_and_the_checkpoint_survives(small_disk):
    """A real full disk: a 400 kB tmpfs that the metrics outgrow."""
    proc = subprocess.run([sys.executable, "-m", "engine", "train", "--steps", "1000000",
                           "--metric-interval", "1", "--quiet", "--out", str(small_disk)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0], proc.stderr
    run_dir = next(small_disk.iterdir())
    import torch
    state = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    assert state["step"] >= 1 and f"checkpoint at step {state['step']}" in lines[0]
    from engine.runs.reader import list_runs
    listed = list_runs(small_disk)
    assert len(listed) == 1 and not listed["status"][0].startswith("unreadable")


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent")
def test_stop_in_the_page_ends_a_run_inside_one_long_step(tmp_path):
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

    query = "?" + "&".join(f"{k}={v}" for k, v in LONG_STEP.items() if k != "device")
    with serve_dashboard() as (url, dashboards), chromium_context(tmp_path / "profile") as browser:
        page = browser.new_page()
        page.goto(url + query)
        wait_for_bokeh(page, 60)
        page.get_by_role("button", name="Start").click(timeout=120_000)
        page.get_by_text("— running").first.wait_for(timeout=120_000)
        run = dashboards[-1].session.current
        try:
            time.sleep(0.5)                           # inside the first step
            page.get_by_role("button", name="Stop").click()
            assert run.join(runner.STOP_GRACE + runner.KILL_GRACE + 30), "Stop did not end it"
            assert gone(run._process.pid) and "did not answer Stop" in run.error
            page.get_by_text("— stopped").first.wait_for(timeout=10_000)
        finally:
            run.stop()
            run.join(30)


# --------------------------------------------------------------------------- load
LONG_RUN = dict(dataset="digits", depth=1, width=8, steps=10_000_000, device="cpu")


def _session_processes(runs) -> list[int]:
    return [run._process.pid for run in runs if run is not None and run._process is not None]


def test_ten_rapid_starts_then_closing_the_session_leave_no_process():
    from app.dashboard import Dashboard

    dash = Dashboard(sync_url=False)
    dash.state.set_config(RunConfig(**LONG_RUN))
    runs = [dash._on_start() for _ in range(10)]
    dash.close()
    pids = _session_processes(runs)
    try:
        assert all(run.join(60) for run in runs), [run.status for run in runs]
        wait_until(lambda: all(gone(pid) for pid in pids), 30, "a run process outlived its session")
        assert all(run.status == "stopped" for run in runs)
    finally:
        kill_all(pids)


def test_start_then_close_at_once_leaves_no_process():
    from app.dashboard import Dashboard

    dash = Dashboard(sync_url=False)
    dash.state.set_config(RunConfig(**LONG_RUN))
    t0 = time.time()
    run = dash._on_start()
    dash.close()
    assert time.time() - t0 < 0.5
    try:
        assert run.join(60) and run.status == "stopped"
        assert not _session_processes([run]) or gone(run._process.pid)
    finally:
        kill_all(_session_processes([run]))


def _pss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no Pss line")


# Measured (Dec 2026): a digits run's process 68 MB PSS (256 MB RSS: torch's pages are shared
# with the forkserver that forked it), the forkserver 78 MB; a run's own memory is ~31 MB.
RUN_PSS_MB = 150


@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="needs Linux smaps")
def test_run_processes_share_their_memory_and_stay_bounded():
    from multiprocessing import forkserver

    runs = [RunHandle(RunConfig(**LONG_RUN)).start() for _ in range(3)]
    try:
        wait_until(lambda: all(r.status == "running" for r in runs), 120, "the runs did not start")
        time.sleep(2.0)                          # past the first records
        pss = [_pss_mb(pid) for pid in _session_processes(runs)]
        server = _pss_mb(os.getpid())
        fork = _pss_mb(forkserver._forkserver._forkserver_pid)
        print(f"\nPSS MB: runs {[round(p) for p in pss]}, forkserver {fork:.0f}, this process "
              f"{server:.0f}")
        assert max(pss) < RUN_PSS_MB, pss
    finally:
        for r in runs:
            r.stop()
        assert all(r.join(30) for r in runs)


# --------------------------------------------------------------------------- will it fit?
def test_a_step_too_big_for_the_memory_is_refused_in_one_line(capsys, monkeypatch):
    """A batch the machine cannot hold: one line naming batch_size, before any step."""
    from engine import memory

    monkeypatch.setattr(memory, "free_bytes", lambda device: 512 * 2**20)     # 512 MB free
    rc, out, err = _cli(capsys, "train", "--width", "4096", "--depth", "1", "--batch-size",
                        "8192", "--steps", "1", "--no-save", "--quiet")
    assert rc == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "batch_size=8192 is not allowed with this network on cpu" in lines[0]
    assert "and 512 MB is free; lower batch_size or the width" in lines[0]


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_the_estimate_bounds_a_measured_step():
    """step_bytes is above what a step really adds (the peak resident memory of two steps in a
    fresh process, over what it held before them) and not wildly so: the pre-flight must neither
    pass OOMs nor refuse real runs."""
    script = textwrap.dedent("""
        import re, torch
        from engine.config import RunConfig
        from engine.memory import step_bytes
        from engine.trainer import Trainer

        def status(key):
            text = open("/proc/self/status").read()
            return int(re.search(key + r":\\s+(\\d+) kB", text).group(1)) * 1024

        torch.set_num_threads(1)
        t = Trainer(RunConfig(rule="np", width=512, depth=3, batch_size=8192, device="cpu"))
        with open("/proc/self/clear_refs", "w") as f:     # restart the peak (VmHWM) from now
            f.write("5")
        before = status("VmRSS")
        t.step(); t.step()
        print(status("VmHWM") - before, step_bytes(t.model, 8192))
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, check=True).stdout
    used, estimate = map(int, out.split())
    print(f"\nstep used {used / 2**20:.0f} MB, estimated {estimate / 2**20:.0f} MB")
    assert used < estimate < 3 * used
