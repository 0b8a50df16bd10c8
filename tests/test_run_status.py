"""The status line (app/run_status.py): test accuracy, and a steadier train accuracy."""

from __future__ import annotations

from conftest import TINY

from engine.config import RunConfig

from app.dashboard import Dashboard


def test_status_line_shows_test_accuracy_and_a_steadier_train_accuracy():
    dash = Dashboard(sync_url=False)
    dash.state.set_config(RunConfig(**{**TINY, "steps": 300, "eval_interval": 100}))
    run = dash._on_start()
    try:
        assert run.join(120)
        dash._pull()
        dash.run_status.refresh()
        line = dash.status.object
        test = run.buffer.last_eval()
        assert test["step"] == 300 and f"test accuracy {test['test_accuracy']:.1%}" in line, line
        assert "(last 10 logged batches)" in line, line
    finally:
        dash.close()


def test_status_line_names_the_members_a_population_left_behind():
    """lr = 1e6 diverges within a few steps: the run goes on with the lr = 0.1 members, and the
    status line says which members diverged and that the curves show the others."""
    dash = Dashboard(sync_url=False)
    dash.state.set_config(RunConfig(**{**TINY, "steps": 100, "optimizer": "sgd", "lr": [0.1, 1e6], "seeds": 2}))
    run = dash._on_start()
    try:
        assert run.join(120)
        dash._pull()
        dash.run_status.refresh()
        line = dash.status.object
        assert run.status == "finished", run.error
        assert "**2 of 4 members diverged** (seed 0, lr=1e+06 at step" in line, line
        assert "the curves show the others" in line
    finally:
        dash.close()
