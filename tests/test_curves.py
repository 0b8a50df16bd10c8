"""The learning curves (app/curves.py) without a browser: the next run's spare curves, built a
figure at a time and taken by the next run."""

from __future__ import annotations

from conftest import TINY, wait_until

from engine.config import RunConfig

from app.dashboard import SLOW_EVERY, Dashboard


def test_the_spare_curves_are_built_a_figure_at_a_time_and_a_new_run_takes_them():
    dash = Dashboard(sync_url=False)
    assert dash.curves.has_spare                      # made with the page, whole
    dash.state.set_config(RunConfig(**{**TINY, "steps": 10_000_000}))
    run = dash._on_start()
    try:
        assert not dash.curves.has_spare              # the run took it
        wait_until(lambda: len(run.buffer) > 3)
        counts = lambda: [len(f.renderers) for f in dash.curves.figures.values()]   # noqa: E731
        grown = []
        for _ in range(20 * SLOW_EVERY):
            before = counts()
            dash._pull()
            grown.append(sum(b != a for b, a in zip(before, counts())))
            if dash.curves.has_spare:
                break
        # One figure per slow pull: each change makes the page lay itself out again.
        assert dash.curves.has_spare and max(grown) == 1
        assert sum(grown) == len(dash.curves.figures)
        spare = dash.curves._spare
        assert spare["curves"].name.startswith("spare-")
        before = counts()
        second = dash._on_start()                     # the next run takes it, and no new renderers
        assert dash.curves._runs[second.id]["curves"] is spare["curves"]
        assert counts() == before
    finally:
        dash.close()


def test_the_step_axis_spans_the_longest_run_shown_not_every_run_ever():
    """A lecture's 100,000-step run, once removed, hidden or reset, must not leave the next
    2,000-step run a sliver at the left edge: the axis follows the runs shown."""
    from app.curves import CurvePlots

    plots = CurvePlots()
    plots.add_run("long", "Fig. 2", 2, steps=100_000)
    plots.stream("long", [{"step": 90_000}])            # far along: it spans its planned steps
    plots.add_run("short", "conv", 2, steps=2_000)
    assert plots.steps_axis.end == 100_000
    plots.set_visible("long", False)
    assert plots.steps_axis.end == 2_000
    plots.set_visible("long", True)
    assert plots.steps_axis.end == 100_000
    plots.remove_run("long")
    assert plots.steps_axis.end == 2_000
    plots.clear()
    plots.add_run("next", "after Reset", 2, steps=5_000)
    assert plots.steps_axis.end == 2_000                # its first span; its data widen it
    plots.stream("next", [{"step": 2_050}])
    assert plots.steps_axis.end == 4_000
    plots.stream("next", [{"step": 4_500}])
    assert plots.steps_axis.end == 5_000                # never past its planned steps


def test_a_long_runs_first_steps_fill_the_step_axis_and_it_widens_in_jumps():
    """Story step 2 plans 100,000 steps, and its top layer's B becomes Wᵀ by step ~1,000: on an
    axis fixed at 100,000 that was the first 1 % of the plot, a few pixels on a projector. The
    axis starts at 2,000 steps and doubles when the curve reaches its right edge, so the curve
    always fills half the plot or more, and the axis moves ~log₂(planned / 2,000) times a run."""
    from app.curves import CurvePlots

    plots = CurvePlots()
    plots.add_run("fig2", "step 2", 2, steps=100_000)
    ends = [plots.steps_axis.end]
    for step in range(50, 100_001, 50):
        plots.stream("fig2", [{"step": step}])
        assert step <= plots.steps_axis.end <= max(2 * step, 2_000)
        if plots.steps_axis.end != ends[-1]:
            ends.append(plots.steps_axis.end)
    assert ends == [2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 100_000]
    # a finished run loaded whole spans its data at once
    plots.replace("fig2", [{"step": s} for s in range(0, 100_001, 10_000)])
    assert plots.steps_axis.end == 100_000


def test_the_status_line_goes_with_the_curves_when_batches_are_slow():
    """A page that answers a batch a second or slower (JupyterLab's comm) gets the status line with
    every batch that draws curves, not only every SLOW_EVERY-th, which left it naming a step ~1,300
    behind them; batches 200 ms apart still get it every SLOW_EVERY-th."""
    dash = Dashboard(sync_url=False)
    now = [0.0]
    dash._clock = lambda: now[0]
    dash.state.set_config(RunConfig(**{**TINY, "steps": 10_000_000}))
    run = dash._on_start()
    refreshed: list[int] = []
    real = dash.run_status.refresh
    dash.run_status.refresh = lambda *a, **k: refreshed.append(dash._batches) or real(*a, **k)

    def batches(n: int, seconds_apart: float) -> list[int]:
        refreshed.clear()
        for _ in range(n):
            seen = run.buffer.since(0)[1]
            wait_until(lambda: run.buffer.since(0)[1] > seen, what="a new record to draw")
            now[0] += seconds_apart
            dash._pull()
        return list(refreshed)
    try:
        batches(1, 0.2)                  # batch 1: the run's first records (its status changes)
        assert batches(SLOW_EVERY - 2, 0.2) == []                       # batches 2-4
        assert batches(1, 0.2) == [SLOW_EVERY]                          # the slow batch
        assert batches(SLOW_EVERY - 1, 1.5) == list(range(SLOW_EVERY + 1, 2 * SLOW_EVERY))
    finally:
        dash.close()


def test_a_run_deeper_than_the_spare_takes_it_and_adds_only_its_extra_layers_lines():
    """A depth-6 run once made a whole new set of curves (every renderer new: its first point
    waited 17–35 s in the browser); it takes the spare built for 4 layers and adds, on each
    per-layer plot, only the lines of layers 5 and 6."""
    from app.curves import LAYER_PLOTS, SPARE_LAYERS, CurvePlots

    plots = CurvePlots()
    spare = plots._spare
    assert plots.has_spare and spare["n_layers"] == SPARE_LAYERS == 4
    counts = {key: len(fig.renderers) for key, fig in plots.figures.items()}
    # a per-layer plot's renderers of one layer (a line, and a population's band where it has one)
    per_layer = {key: sum(1 for fig, _, layer in spare["renderers"] if layer == 1 and fig is plots.figures[key])
                 for key, *_ in LAYER_PLOTS}
    plots.add_run("deep", "depth 6", 6)
    run = plots._runs["deep"]
    assert run["curves"] is spare["curves"]
    for key, fig in plots.figures.items():
        extra = 2 * per_layer.get(key, 0)                # layers 5 and 6 only
        assert len(fig.renderers) == counts[key] + extra, (key, counts[key], len(fig.renderers))
    layers = {layer for _, _, layer in spare["renderers"] if layer is not None}
    assert layers == set(range(1, 7))
    assert not run["unused"] and all(r.visible for _, r in run["renderers"])
