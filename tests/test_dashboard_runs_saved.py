"""Runs started in the dashboard are saved as ordinary run folders (engine/host/saving.py): listed
by `creditlab runs`, loaded in the dashboard's saved runs with the records the page drew, and
continued by `creditlab train --resume`; the sidebar's switch (or CREDITLAB_SAVE_RUNS=0) saves
none; a folder that cannot be written leaves the run training and the status line saying why."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY, wait_until

from engine.config import RunConfig
from engine.runs.reader import list_runs, load_run, load_summary, read_checkpoint

from app.dashboard import Dashboard
from app.library import SavedRun, run_rows

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def runs(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "runs"
    monkeypatch.setenv("CREDITLAB_RUNS", str(root))
    monkeypatch.delenv("CREDITLAB_SAVE_RUNS", raising=False)
    return root


@pytest.fixture
def dash():
    """A dashboard without a browser; its runs are stopped and waited for in teardown."""
    board = Dashboard(sync_url=False)
    try:
        yield board
    finally:
        board.close()
        for run in board.session.runs:
            if hasattr(run, "join"):
                assert run.join(60), f"{run} did not end"


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def assert_same_records(drawn: list[dict], saved) -> None:
    """Every row the page drew (a live run's buffer, member by member) is in the folder, value
    for value; the folder's own columns (run_id, the settings) are extra."""
    rows = saved.sort_values([c for c in ("step", "member") if c in saved.columns]).to_dict("records")
    drawn = sorted(drawn, key=lambda r: (r["step"], r.get("member", 0)))
    assert len(rows) == len(drawn) > 0
    for mine, theirs in zip(drawn, rows):
        for name, value in mine.items():
            if name != "_seq":
                assert same(value, theirs[name]), (name, mine["step"], value, theirs[name])


def test_a_dashboard_run_is_an_ordinary_run_folder_with_its_live_changes(runs, dash, capsys):
    dash.state.set_config(RunConfig(**{**TINY, "rule": "np", "steps": 3000}))
    run = dash._on_start()
    wait_until(lambda: run.step_count >= 200, 120, "the run did not start")
    dash.state.sigma = 0.05                             # live, as a user changes it mid-run
    assert run.join(180) and run.status == "finished", run.error
    assert run.save_error is None and run.applied, (run.save_error, run.applied)

    folder = Path(run.run_dir)
    assert folder.parent == runs
    listed = list_runs(runs)
    assert list(listed["id"]) == [folder.name] and listed["status"][0] == "finished"
    assert listed["steps"][0] == 3000
    summary = load_summary(folder)
    assert summary["pid"] == run._process.pid                    # written by the run's process
    cfg, frame = load_run(folder)
    assert cfg.sigma == 0.01 and cfg.steps == 3000               # config.json: the set-up it started with
    assert_same_records(run_rows(run), frame)
    # σ as the CLI's folders record it: every row the value its step used; the checkpoint the one in force
    changed = run.applied[0]["step"]
    assert set(frame.loc[frame["step"] < changed, "sigma"]) == {0.01}
    assert set(frame.loc[frame["step"] >= changed, "sigma"]) == {0.05}
    assert read_checkpoint(folder)["config"]["sigma"] == 0.05

    from engine.cli.main import main
    assert main(["runs", "--out", str(runs)]) == 0
    assert folder.name in capsys.readouterr().out

    # The dashboard's own saved-runs list has it, and loads the records it drew.
    dash._pull()
    dash.run_status.refresh()
    assert "finished" in dash.status.object and "saved in" in dash.status.object
    assert folder.name in dash.status.object.split("saved in")[1]
    dash.compare.refresh_saved()
    assert str(folder) in dash.saved_select.options.values()
    dash.saved_select.value = str(folder)
    dash._on_load_saved()
    loaded = [r for r in dash.session.runs if isinstance(r, SavedRun)]
    assert len(loaded) == 1 and loaded[0].step_count == 3000
    assert_same_records(run_rows(run), loaded[0].frame)


def test_a_population_of_seeds_and_sigmas_is_saved_member_by_member(runs, dash):
    dash.state.set_config(RunConfig(**{**TINY, "rule": "np", "seeds": 2, "sigma": [0.01, 0.1]}))
    run = dash._on_start()
    assert run.join(180) and run.status == "finished", run.error
    cfg, frame = load_run(run.run_dir)
    assert cfg.members() == 4 and sorted(set(frame["member"])) == [0, 1, 2, 3]
    assert len(frame) == 4 * TINY["steps"] // TINY["metric_interval"]
    assert sorted(set(zip(frame["seed"], frame["sigma"]))) == [(0, 0.01), (0, 0.1), (1, 0.01), (1, 0.1)]
    assert_same_records(run_rows(run), frame)
    assert list_runs(runs)["seeds"][0] == 4


def test_a_stopped_dashboard_run_is_continued_by_train_resume(runs, dash):
    dash.state.set_config(RunConfig(**{**TINY, "rule": "np", "steps": 10_000_000}))
    run = dash._on_start()
    wait_until(lambda: run.step_count >= 300, 120, "the run did not start")
    dash.state.sigma = 0.05
    wait_until(lambda: run.applied, 60, "the live change did not reach the run")
    dash._on_stop()
    assert run.join(60) and run.status == "stopped"
    folder = Path(run.run_dir)
    done = read_checkpoint(folder)["step"]
    assert done == run.step_count and load_summary(folder)["status"] == "stopped"
    before = load_run(folder)[1]

    proc = subprocess.run([sys.executable, "-m", "engine", "train", "--resume", str(folder),
                           "--steps", str(done + 200), "--json", "--quiet"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "finished" and result["steps"] == done + 200
    assert result["run_dir"] == str(folder)
    frame = load_run(folder)[1]
    kept = frame[frame["step"] <= done].reset_index(drop=True)
    assert kept["train_loss"].tolist() == before.loc[before["step"] <= done, "train_loss"].tolist()
    resumed = frame[frame["step"] > done]
    assert resumed["step"].max() == done + 200 and len(resumed) >= 200 // TINY["metric_interval"]
    assert set(resumed["sigma"]) == {0.05}                       # the σ in force when it stopped
    assert load_summary(folder)["status"] == "finished"


def test_a_diverged_dashboard_run_is_saved_as_diverged(runs, dash):
    dash.state.set_config(RunConfig(**{**TINY, "rule": "bp", "optimizer": "sgd", "lr": 1e6,
                                       "activation": "linear", "steps": 100_000}))
    run = dash._on_start()
    assert run.join(60) and run.status == "diverged"
    summary = load_summary(run.run_dir)
    assert summary["status"] == "diverged" and summary["diverged_step"] == run.step_count
    assert list(list_runs(runs)["status"]) == ["diverged"]
    assert (Path(run.run_dir) / "checkpoint.pt").is_file()


def test_the_switch_off_saves_nothing(runs, dash):
    assert dash.controls.save_runs.value                  # saving is the default
    assert "Save each run to" in dash.controls.save_runs.label
    dash.controls.save_runs.value = False
    dash.state.set_config(RunConfig(**TINY))
    run = dash._on_start()
    assert run.join(120) and run.status == "finished", run.error
    assert run.run_dir is None and run.save_error is None
    assert not runs.exists() or not any(runs.iterdir())
    dash.run_status.refresh()
    assert "saved" not in dash.status.object


def test_creditlab_save_runs_0_turns_the_switch_off(runs, monkeypatch):
    monkeypatch.setenv("CREDITLAB_SAVE_RUNS", "0")
    board = Dashboard(sync_url=False)
    try:
        assert board.controls.save_runs.value is False
    finally:
        board.close()


def test_the_switch_sits_in_the_bookkeeping_section_in_both_modes(dash):
    from app.sidebar import ALL

    controls = dash.controls
    assert controls.rest.objects[-1] is controls.save_runs              # story: under Advanced, last
    controls.mode.value = ALL
    assert dash.sidebar.objects[-1] is controls.save_runs
    assert controls.save_runs not in controls.rest.objects


@pytest.fixture
def read_only_root(tmp_path, monkeypatch) -> Path:
    """A runs folder nothing can be written into: not writable for a user; for root (whom
    permissions do not stop) a read-only tmpfs."""
    root = tmp_path / "read-only"
    root.mkdir()
    if os.geteuid() != 0:
        root.chmod(0o555)
    elif subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,ro", "tmpfs", str(root)],
                        capture_output=True).returncode != 0:
        pytest.skip("running as root without CAP_SYS_ADMIN: no read-only folder can be made")
    monkeypatch.setenv("CREDITLAB_RUNS", str(root))
    try:
        yield root
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", "-l", str(root)], capture_output=True)
        else:
            root.chmod(0o755)


def test_a_read_only_runs_folder_keeps_the_run_going_and_says_so_once(read_only_root, dash):
    dash.state.set_config(RunConfig(**{**TINY, "steps": 10_000_000}))
    run = dash._on_start()
    wait_until(lambda: run.save_error is not None or not run.active, 120, "the run did not say it is not saved")
    assert run.save_error is not None and run.active, (run.status, run.error)
    at = run.step_count
    wait_until(lambda: run.step_count > at + 100 and run.status == "running", 120, "the run did not go on")
    dash._pull()
    dash.run_status.refresh()
    line = dash.status.object
    assert "\n" not in line and line.count("not saved") == 1 and "Read-only file system" in line, line
    assert "running" in line and run.run_dir is None
    dash._on_stop()
    assert run.join(60) and run.status == "stopped" and run.error is None
    assert not any(read_only_root.iterdir())


def test_a_disk_that_fills_mid_run_keeps_the_run_going_and_says_so(tmp_path, monkeypatch, dash):
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root and CAP_SYS_ADMIN)")
    monkeypatch.setenv("CREDITLAB_RUNS", str(disk))
    try:
        dash.state.set_config(RunConfig(**{**TINY, "steps": 10_000_000, "metric_interval": 1}))
        run = dash._on_start()
        wait_until(lambda: run.save_error is not None or not run.active, 300, "the disk never filled")
        assert run.active, (run.status, run.error)
        assert run.run_dir is not None and "No space left on device" in run.save_error
        at = run.step_count
        wait_until(lambda: run.step_count > at + 100, 120, "the run did not go on")
        assert run.status == "running"
        dash._on_stop()
        assert run.join(60) and run.status == "stopped" and run.error is None
        # what was written before the disk filled is still a run folder, with its checkpoint
        assert read_checkpoint(run.run_dir)["step"] >= 1
        assert not str(list_runs(disk)["status"][0]).startswith("unreadable")
    finally:
        dash.close()
        for r in dash.session.runs:
            r.join(60)
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_slow_rewrite_is_spaced_out_to_its_share_of_the_run(tmp_path, monkeypatch):
    """metrics.parquet is rewritten whole at each flush: a long run's rewrites are spaced so
    that they take at most `flush_share` of its time (the dashboard's saver asks 5 %)."""
    import time

    from engine.runs.writer import RunWriter, atomic_write
    from engine.trainer import Trainer

    pause, share = 0.02, 0.25
    written: list[str] = []

    def slow_write(path, write):               # every file write takes `pause` (a big table's would)
        written.append(Path(path).name)
        time.sleep(pause)
        atomic_write(path, write)

    monkeypatch.setattr(RunWriter, "write_file", staticmethod(slow_write))
    cfg = RunConfig(**{**TINY, "steps": 60, "metric_interval": 1, "eval_interval": 100})
    counts = {}
    for name, kwargs in (("every record", {}), ("spaced", {"flush_share": share})):
        written.clear()
        trainer = Trainer(cfg)
        writer = RunWriter(tmp_path / name, trainer, flush_interval=0.0, **kwargs)
        t0 = time.monotonic()
        trainer.run()
        seconds = time.monotonic() - t0
        counts[name] = written.count("metrics.parquet")
        writer.close("finished")
        assert len(load_run(writer.path)[1]) == 60            # close writes every row all the same
    assert counts["every record"] == 60
    # a flush writes metrics and summary: ≥ 2 pauses, so flushes come ≥ 2·pause/share apart
    assert counts["spaced"] <= seconds / (2 * pause / share) + 2, (counts, seconds)
