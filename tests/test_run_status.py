"""The status line (app/run_status.py): test accuracy, a steadier train accuracy, and the members a
population left behind."""

from __future__ import annotations

from conftest import TINY

from engine.config import RunConfig

from app.dashboard import Dashboard


def _line_at_the_end(**settings) -> tuple[str, object]:
    """The status line once a run of TINY + `settings` has ended and been pulled, and the run."""
    dash = Dashboard(sync_url=False)
    dash.state.set_config(RunConfig(**{**TINY, **settings}))
    run = dash._on_start()
    try:
        assert run.join(120)
        dash._pull()
        dash.run_status.refresh()
        return dash.status.object, run
    finally:
        dash.close()


def test_status_line_shows_test_accuracy_and_a_steadier_train_accuracy():
    line, run = _line_at_the_end(steps=300, eval_interval=100)
    test = run.buffer.last_eval()
    assert test["step"] == 300 and f"test accuracy {test['test_accuracy']:.1%}" in line, line
    assert "(last 10 logged batches)" in line, line


def test_status_line_names_the_members_a_population_left_behind():
    """lr = 1e6 diverges within a few steps: the run goes on with the lr = 0.1 members, and the
    status line says which members diverged and that the curves show the others."""
    line, run = _line_at_the_end(steps=100, optimizer="sgd", lr=[0.1, 1e6], seeds=2)
    assert run.status == "finished", run.error
    assert "**2 of 4 members diverged** (seed 0, lr=1e+06 at step" in line, line
    assert "the curves show the others" in line
