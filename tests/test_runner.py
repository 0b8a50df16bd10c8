"""The run handle and a session's runs (engine/host/runner.py), without a browser: the lifecycle,
live changes, divergence, and that a session's cleanup really stops its run processes."""

from __future__ import annotations

import time

import pytest
from conftest import TINY, wait_until

from engine.config import RunConfig
from engine.host.runner import RunHandle, SessionRuns


def test_run_handle_lifecycle_start_pause_step_resume_stop():
    run = RunHandle(RunConfig(**{**TINY, "steps": 10_000_000})).start()
    wait_until(lambda: run.status == "running" and run.step_count > 20)
    run.pause()
    wait_until(lambda: run.status == "paused")
    paused_at = run.step_count
    time.sleep(0.2)
    assert run.step_count == paused_at                         # paused means paused
    run.step_interval()                                        # one logging interval
    wait_until(lambda: run.step_count >= paused_at + run.cfg.metric_interval)
    time.sleep(0.2)
    assert run.step_count == paused_at + run.cfg.metric_interval
    assert run.status == "paused"
    run.resume()
    wait_until(lambda: run.step_count > paused_at + 3 * run.cfg.metric_interval)
    run.stop()
    assert run.join(5)
    assert run.status == "stopped" and not run.alive
    records = run.buffer.records()
    assert records and records[-1]["step"] <= run.step_count


def test_run_finishes_and_reports_records():
    run = RunHandle(RunConfig(**TINY)).start()
    assert run.join(30)
    assert run.status == "finished" and run.step_count == TINY["steps"]
    version, matrices = run.buffer.latest_matrices()
    assert version > 0 and matrices[0]["B"].shape == matrices[0]["WT"].shape
    step, first = run.buffer.first_matrices()      # the "B at the start" map: before step 1
    assert step == 0 and first[0]["B"].shape == matrices[0]["B"].shape
    assert not (first[0]["B"] == matrices[0]["B"]).all(), "B at step 0 is not B after training"


def test_live_change_is_validated_recorded_and_applied():
    run = RunHandle(RunConfig(**{**TINY, "steps": 10_000_000})).start()
    wait_until(lambda: run.ready)
    with pytest.raises(Exception, match="sigma"):
        run.set(sigma=-1.0)
    with pytest.raises(Exception, match="cannot change during a run"):
        run.set(depth=3)
    run.set(lr=0.02)
    assert run.changes[-1]["name"] == "lr" and run.changes[-1]["new"] == 0.02
    wait_until(lambda: any(r["lr"] == 0.02 for r in run.buffer.records()))
    run.stop()
    assert run.join(5)


def test_diverging_run_says_so_and_stops():
    cfg = RunConfig(**{**TINY, "rule": "bp", "optimizer": "sgd", "lr": 1e6, "activation": "linear",
                       "steps": 100_000})
    run = RunHandle(cfg).start()
    assert run.join(30)
    assert run.status == "diverged"
    assert "diverged" in run.error
    # the status line's step is the one the message names: where the loss went bad
    assert f"at step {run.step_count}" in run.error and run.step_count < TINY["metric_interval"] * 2


def test_session_cleanup_stops_every_run_process():
    session = SessionRuns(max_runs=3)
    long = RunConfig(**{**TINY, "steps": 10_000_000})
    runs = [session.launch(long)[0] for _ in range(2)]
    assert not runs[0].active or runs[0].join(5)        # a new Start stops the previous run
    wait_until(lambda: runs[1].status == "running")
    session.stop_all()
    assert all(run.join(5) for run in runs)
    assert not any(run.alive for run in runs)


def test_a_stop_that_comes_before_the_start_is_not_lost():
    """A session's stop_all() can reach a run between its creation and its start (a tab closed
    as Start was pressed): the run must then never train."""
    run = RunHandle(RunConfig(**{**TINY, "steps": 10_000_000}))
    run.stop()
    run.start()
    assert run.status == "stopped" and not run.alive and run.join(1)


def test_comparison_is_bounded():
    session = SessionRuns(max_runs=2)
    runs = [session.launch(RunConfig(**TINY))[0] for _ in range(3)]
    assert [r.id for r in session.runs] == [r.id for r in runs[1:]]
    session.stop_all()
    assert all(r.join(10) for r in runs)
