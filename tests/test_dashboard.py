"""The dashboard object (app/dashboard.py) without a browser: Start, the pull and Stop, a bad
value, live settings reaching the run, the conv preset's layers, and the pull held back while
the page draws."""

from __future__ import annotations

from conftest import TINY, wait_until

from engine.config import RunConfig

from app.dashboard import Dashboard


def test_dashboard_start_pull_stop_and_close_without_a_browser():
    dash = Dashboard(sync_url=False)
    dash.state.set_config(RunConfig(**{**TINY, "steps": 10_000_000}))
    run = dash._on_start()
    assert run is not None
    wait_until(lambda: len(run.buffer) > 3)
    dash._pull()
    assert dash.curves.length(run.id) > 0
    for _ in range(5):                     # the slow path: heatmaps and status
        dash._pull()
    assert dash.heatmaps.version > 0
    assert run.label in dash.status.object
    dash.close()                           # what on_session_destroyed calls
    assert run.join(5) and run.status == "stopped"


def test_dashboard_bad_value_shows_message_and_starts_nothing():
    dash = Dashboard(sync_url=False)
    try:
        dash.state.width = "abc"
        assert dash.config_alert.visible and "width='abc'" in dash.config_alert.object
        assert dash._on_start() is None
        assert dash.session.runs == []
    finally:
        dash.close()


def test_dashboard_live_sigma_change_is_marked_on_the_plots():
    dash = Dashboard(sync_url=False)
    dash.state.set_config(RunConfig(**{**TINY, "rule": "np", "steps": 10_000_000}))
    run = dash._on_start()
    try:
        wait_until(lambda: run.ready and run.step_count > 0)
        asked_at = run.step_count
        dash.state.sigma = 0.05
        # The marker comes from the records: at the first one that carries the new σ.
        wait_until(lambda: dash._pull() or dash.curves.changes.data["step"])
        assert dash.curves.changes.data["step"]            # a vertical marker where it changed
        assert "sigma" in dash.curves.changes.data["what"][0]
        step = dash.curves.changes.data["step"][0]
        assert step >= asked_at and run.buffer.records()[-1]["step"] >= step
        records = run.buffer.records()                     # (thinned when long: compare around)
        assert all(r["sigma"] == 0.05 for r in records if r["step"] >= step)
        assert all(r["sigma"] == 0.01 for r in records if r["step"] < step)
        assert "σ=0.05" in run.label and "σ=0.01" not in run.label   # the σ the run now uses
        wait_until(lambda: dash._pull() or "σ=0.05" in dash.run_status.run_legend.object)
        legend = dash.curves.figures["loss"].legend[0].items
        assert any("σ=0.05" in str(getattr(item.label, "value", item.label)) for item in legend)
        dash.state.sigma = -1.0                            # refused live, with the message
        assert dash.config_alert.visible and "sigma" in dash.config_alert.object
    finally:
        dash.close()
        run.join(5)


def test_several_live_settings_at_once_reach_the_run():
    """A link or a preset sets σ, lr and feedback_lr in one batched update (one callback with
    several events): every one of them reaches the running run."""
    dash = Dashboard(sync_url=False)
    dash.state.set_config(RunConfig(**{**TINY, "rule": "np", "steps": 10_000_000}))
    run = dash._on_start()
    try:
        wait_until(lambda: run.ready)
        dash.state.param.update(sigma=0.02, lr=0.03, feedback_lr=0.7)
        assert {(c["name"], c["new"]) for c in run.changes} == {("sigma", 0.02), ("lr", 0.03), ("feedback_lr", 0.7)}
        # The run's records carry them (the handle's cfg stays the set-up it started with).
        wait_until(lambda: any((r["sigma"], r["lr"], r["feedback_lr"]) == (0.02, 0.03, 0.7)
                             for r in run.buffer.records()), 60)
        assert not dash.config_alert.visible
    finally:
        dash.close()
        run.join(5)


def test_a_number_typed_into_a_live_box_reaches_the_running_run():
    dash = Dashboard(sync_url=False)
    dash.state.set_config(RunConfig(**{**TINY, "rule": "np", "steps": 10_000_000}))
    run = dash._on_start()
    try:
        wait_until(lambda: run.ready)
        dash.inputs["lr"].value = "0.03"
        dash.inputs["sigma"].value = "nan"                     # refused: the run keeps its σ
        assert [(c["name"], c["new"]) for c in run.changes] == [("lr", 0.03)]   # σ kept its 0.01
        wait_until(lambda: any((r["lr"], r["sigma"]) == (0.03, 0.01) for r in run.buffer.records()), 60)
        assert "sigma='nan' is not allowed" in dash.config_alert.object
    finally:
        dash.close()
        run.join(5)


def test_the_conv_preset_hides_the_mlp_shape_and_start_lists_the_conv_layers():
    dash = Dashboard(sync_url=False)
    dash.preset.value = "4. Conv nets"
    run = None
    try:
        assert not dash.inputs["depth"].visible and not dash.inputs["width"].visible
        assert "conv 16" in dash.plots.network.pane.object          # the picture: its own layers
        dash.state.steps = 10_000_000
        run = dash._on_start()
        assert run is not None and len(dash.layer_select.options) == 3
        assert dash.curves._runs[run.id]["n_layers"] == 3
        wait_until(lambda: len(run.buffer) > 0, timeout=60)
        assert len(run.buffer.tail(1)[0]["layers"]) == 3        # the engine agrees: three hidden layers
    finally:
        dash.close()
        if run is not None:
            run.join(10)


def test_a_dashboard_sends_nothing_while_the_page_draws_and_loses_no_record():
    dash = Dashboard(sync_url=False)
    dash.state.set_config(RunConfig(**{**TINY, "steps": 10_000_000}))
    run = dash._on_start()
    try:
        dash.pace.rest = 0.0                  # (the rest after a batch: the test above)
        new = lambda: run.buffer.since(0)[1] > dash.plots._cursors[run.id]   # noqa: E731
        wait_until(lambda: len(run.buffer) > 3)
        dash.pace.answering = True            # the page runs the pace's script: pacing is on
        dash._pull()
        assert dash.pace.sent == 1
        dash.pace.drawn = 1                   # the page has drawn batch 1
        wait_until(new)
        dash._pull()
        sent = dash.pace.sent
        assert sent == 2
        dash.pace.patience_s = 3600.0
        wait_until(new)
        before = dash.curves.length(run.id)
        for _ in range(20):
            dash._pull()
        assert dash.pace.sent == sent and dash.curves.length(run.id) == before   # held back
        dash.pace.drawn = sent
        dash._pull()
        assert dash.pace.sent == sent + 1 and dash.curves.length(run.id) > before
        records = [r["step"] for r in run.buffer.records()]
        assert list(dash.curves._runs[run.id]["curves"].data["step"]) == records[:dash.curves.length(run.id)]
    finally:
        dash.close()


def test_a_notebook_dashboard_starts_the_run_processes_warm_up_once(monkeypatch):
    """`panel serve` starts the runs' forkserver when it starts (app/app_hooks.py); in a notebook
    the first Dashboard does it, in the background, so the first Start does not wait for torch's
    import in the forkserver (one of the seconds a notebook's first point took more than served)."""
    import threading

    from app import notebook
    from engine.host import worker

    calls = []
    done = threading.Event()
    monkeypatch.setattr(worker, "warm_up", lambda: calls.append(1) or done.set())
    monkeypatch.setattr(notebook, "_warming", None)
    first = Dashboard(sync_url=False)
    second = Dashboard(sync_url=False)
    try:
        assert done.wait(60) and notebook.warm_runs() is notebook._warming
        notebook._warming.join(60)
        assert calls == [1]
    finally:
        first.close()
        second.close()
