"""The dashboard's plot objects without a browser: what the heatmaps show (the top layer first,
each map on its own colour range, B before the run's first step kept fixed), and the plain-words
titles of every plot. Cheap: no server, no chromium; one test starts a tiny run process."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from bokeh.models import Title

from engine.config import RunConfig
from engine.stream import RecordBuffer

from app.dashboard import STORY_FOCUS, Dashboard
from app.live_plots import plot_grid, layer_options
from app.heatmaps import DIFF_RANGE, HEATMAP_KEYS, Heatmaps, pattern_difference, symmetric_range
from app.curves import LAYER_PLOTS, SCALAR_PLOTS, CurvePlots
from app.plot_style import FOCUS_SUBTITLE_CHARS, FOCUS_TITLE_CHARS, phrase_lines

RNG = np.random.default_rng(0)


def snapshot(scale_b: float = 0.1, shapes=((20, 10), (10, 5), (5, 3)), b_like_wt: bool = False):
    """A published matrix snapshot: one entry per hidden layer, input side first."""
    out = []
    for i, shape in enumerate(shapes, start=1):
        wt = RNG.normal(size=shape).astype(np.float32)
        b = (0.07 * wt) if b_like_wt else (scale_b * RNG.normal(size=shape)).astype(np.float32)
        out.append({"layer": i, "B": b, "WT": wt})
    return out


def image(heatmaps: Heatmaps, key: str) -> np.ndarray:
    return np.flipud(np.asarray(heatmaps.sources[key].data["image"][0]))


def mapper_range(heatmaps: Heatmaps, key: str) -> tuple[float, float]:
    m = heatmaps.mappers[key]
    return m.low, m.high


# ------------------------------------------------------------------------------------ heatmaps
def test_heatmaps_open_on_the_top_layer():
    h, mats = Heatmaps(), snapshot()
    assert Heatmaps.top_layer(mats) == 3
    assert h.show(mats, None, version=1)
    assert h.layer == 3 and h.where.startswith("layer 3 ← output")
    np.testing.assert_array_equal(image(h, "B"), mats[2]["B"])
    np.testing.assert_array_equal(image(h, "WT"), mats[2]["WT"])
    assert h.figures["B"].xaxis.axis_label == "output unit"
    # 0 means "top" too (the layer menu's value before a run lists its layers).
    assert h.show(mats, 0, version=2) and h.layer == 3


def test_an_asked_for_layer_is_shown_and_a_missing_one_is_refused():
    h, mats = Heatmaps(), snapshot()
    assert h.show(mats, 1, version=1)
    assert h.layer == 1 and h.where == "layer 1 ← layer 2 (20×10)"
    np.testing.assert_array_equal(image(h, "B"), mats[0]["B"])
    assert not h.show(mats, 7, version=2)
    assert not h.show(None, None, version=3) and not h.show([], None, version=3)


def test_b_and_wt_each_get_their_own_symmetric_colour_range():
    h, mats = Heatmaps(), snapshot(scale_b=0.01)
    h.show(mats, None, version=1, first=mats, first_step=50)
    top = mats[-1]
    b_max, wt_max = float(np.abs(top["B"]).max()), float(np.abs(top["WT"]).max())
    assert b_max < wt_max / 10                              # FA-like: B far smaller than Wᵀ
    assert mapper_range(h, "B") == pytest.approx((-b_max, b_max))
    assert mapper_range(h, "WT") == pytest.approx((-wt_max, wt_max))
    assert mapper_range(h, "start") == pytest.approx((-b_max, b_max))
    assert mapper_range(h, "diff") == (-DIFF_RANGE, DIFF_RANGE)
    # Each map says its range on the plot.
    assert f"±{b_max:.3g}" in h.subtitles["B"].text
    assert f"±{wt_max:.3g}" in h.subtitles["WT"].text
    assert h.subtitles["diff"].text == f"fixed scale ±{DIFF_RANGE:g}" and "max|B|" in Heatmaps.CAPTIONS["diff"]
    # Every map has its own mapper and colour bar.
    mappers = {id(h.figures[k].renderers[0].glyph.color_mapper) for k in HEATMAP_KEYS}
    assert len(mappers) == len(HEATMAP_KEYS)
    for key in HEATMAP_KEYS:
        bars = [r for r in h.figures[key].below if type(r).__name__ == "ColorBar"]
        assert len(bars) == 1 and bars[0].color_mapper is h.mappers[key]


def test_the_difference_map_compares_patterns_not_sizes():
    h, mats = Heatmaps(), snapshot(b_like_wt=True)          # B = 0.07·Wᵀ: the same pattern
    h.show(mats, None, version=1)
    assert np.abs(image(h, "diff")).max() < 1e-5            # white: nothing differs but the size
    top = mats[-1]
    assert np.abs(top["B"] - top["WT"]).max() > 0.5         # which B − Wᵀ would have shown
    # Unrelated patterns are far from white, and the values stay within [−2, 2].
    b, wt = RNG.normal(size=(30, 20)), RNG.normal(size=(30, 20))
    d = pattern_difference(b, wt)
    assert np.abs(d).max() <= 2 + 1e-9 and np.abs(d).mean() > 0.2


def test_symmetric_range_never_collapses():
    assert symmetric_range(np.zeros((3, 3))) == 1.0
    assert symmetric_range(np.full((2, 2), np.nan)) == 1.0
    assert symmetric_range(np.zeros((0, 3))) == 1.0
    assert symmetric_range(None) == 1.0
    assert symmetric_range(np.array([[np.nan, -0.5], [0.25, np.inf]])) == 0.5


def test_b_at_the_start_stays_fixed_while_b_now_changes():
    h = Heatmaps()
    first, later = snapshot(), snapshot()
    h.show(first, None, version=1, step=50, first=first, first_step=50)
    b0_data = h.sources["start"].data
    np.testing.assert_array_equal(image(h, "start"), first[-1]["B"])
    assert h.figures["start"].title.text == "B at the start\n(step 50)"
    assert h.figures["B"].title.text == "B now\n(step 50)"
    for version in (2, 3):
        h.show(later, None, version=version, step=50 * version, first=first, first_step=50)
    assert h.sources["start"].data is b0_data                 # not even resent
    assert h.sources["start"].data["version"] == [1]
    np.testing.assert_array_equal(image(h, "B"), later[-1]["B"])
    assert h.sources["B"].data["version"] == [3]
    assert h.figures["B"].title.text == "B now\n(step 150)"
    # Another layer: the start map follows it (that layer's first B).
    h.show(later, 1, version=4, first=first, first_step=50)
    np.testing.assert_array_equal(image(h, "start"), first[0]["B"])
    # No first snapshot yet: an empty map that says so.
    h.clear()
    h.show(later, None, version=5, first=None)
    assert np.isnan(image(h, "start")).all() and "waiting" in h.figures["start"].title.text


def test_direct_feedback_has_no_wt_and_says_so():
    h = Heatmaps()
    mats = [{"layer": 1, "B": RNG.normal(size=(8, 10)).astype(np.float32), "WT": None}]
    assert h.show(mats, None, version=1, first=mats)
    assert np.isnan(image(h, "WT")).all() and np.isnan(image(h, "diff")).all()
    assert "none" in h.figures["WT"].title.text and "direct feedback" in h.subtitles["diff"].text
    b_max = float(np.abs(mats[0]["B"]).max())
    assert mapper_range(h, "B") == pytest.approx((-b_max, b_max))


def test_a_rule_without_feedback_shows_no_b_beside_wt_and_says_so():
    """Pure NP (pnp) publishes each layer's Wᵀ with B None: its maps of B say there is none."""
    from engine.trainer import Trainer

    trainer = Trainer(RunConfig(rule="pnp", dataset="digits", width=[12, 8], steps=1))
    mats = trainer.matrices()
    assert [m["B"] for m in mats] == [None, None] and [m["WT"].shape for m in mats] == [(12, 8), (8, 10)]
    h = Heatmaps()
    assert h.show(mats, None, version=1, first=mats)
    np.testing.assert_array_equal(image(h, "WT"), mats[1]["WT"])
    for key in ("start", "B", "diff"):
        assert np.isnan(image(h, key)).all() and ("no B" in h.figures[key].title.text or key == "diff")
        assert "no feedback" in h.subtitles[key].text
    assert h.where == "layer 2 ← output (8×10)"


def test_clear_forgets_the_run():
    h, mats = Heatmaps(), snapshot()
    h.show(mats, None, version=4, first=mats)
    h.clear()
    assert h.version == -1 and h.layer is None and h.where == ""
    assert all(np.isnan(image(h, k)).all() for k in HEATMAP_KEYS)
    assert all(h.subtitles[k].text == "" for k in HEATMAP_KEYS)


# --------------------------------------------------------------------------------- curve titles
def subtitles(fig) -> list[str]:
    return [r.text for r in fig.above if isinstance(r, Title)]


def test_every_curve_plot_says_in_words_what_it_shows_and_what_is_good():
    curves = CurvePlots()
    for key, title, good, _ in SCALAR_PLOTS + LAYER_PLOTS:
        fig = curves.figures[key]
        assert fig.title.text == title
        assert [t.rstrip("\n") for t in subtitles(fig)] == [phrase_lines(good)]     # on lines that fit
    angles = [k for k, *_ in LAYER_PLOTS if k.endswith("_angle_deg")]
    for key in angles:
        good = subtitles(curves.figures[key])[0]
        assert "0° =" in good and "90° =" in good
    assert "0.5 = chance" in subtitles(curves.figures["sign_congruence"])[0]
    assert "higher is better" in subtitles(curves.figures["estimator_snr_db"])[0]
    assert "lower is better" in subtitles(curves.figures["loss"])[0]
    assert "higher is better" in subtitles(curves.figures["accuracy"])[0]
    # Plain words first: "Error signal vs backprop's", not "∠(δ, δ_BP)".
    assert curves.figures["signal_angle_deg"].title.text.startswith("Error signal vs backprop")


def test_story_modes_curve_has_titles_on_its_narrow_lines_and_gives_the_grid_its_own_back():
    curves = CurvePlots()
    for key in set(STORY_FOCUS.values()):
        fig = curves.figures[key]
        grid = (fig.title.text, subtitles(fig))
        curves.fit_titles(key, True)
        (sub,) = subtitles(fig)
        assert max(len(line) for line in fig.title.text.split("\n")) <= FOCUS_TITLE_CHARS, fig.title.text
        assert max(len(line) for line in sub.split("\n")) <= FOCUS_SUBTITLE_CHARS, sub
        assert fig.title.text.replace("\n", " ") == grid[0]                 # the same words
        curves.fit_titles(key, False)
        assert (fig.title.text, subtitles(fig)) == grid
    curves.fit_titles("signal_angle_deg", True)
    assert "\n∠(δ, δ_BP)" in subtitles(curves.figures["signal_angle_deg"])[0]   # a notation stays whole


# ------------------------------------------------------------------------- dashboard plumbing
def test_layer_menu_lists_the_top_layer_first():
    assert layer_options(1) == {"layer 1 ← output (top)": 1}
    assert list(layer_options(3).items()) == [("layer 3 ← output (top)", 3),
                                             ("layer 2 ← layer 3", 2),
                                             ("layer 1 ← layer 2 (input side)", 1)]


def test_plot_grid_reflows_instead_of_fixing_four_columns():
    import panel as pn
    grid = plot_grid([pn.pane.Markdown("a") for _ in range(8)], 360, "x")
    assert grid.styles["display"] == "grid"
    assert grid.styles["grid-template-columns"] == "repeat(auto-fill, minmax(max(360px, 25%), 1fr))"
    assert "33.33%" in plot_grid([pn.pane.Markdown("a")] * 3, 200, "y").styles["grid-template-columns"]


def test_the_buffer_keeps_the_first_snapshot_for_the_start_map():
    buffer = RecordBuffer(capacity=8)
    assert buffer.first_matrices() == (None, None)
    mats = [snapshot() for _ in range(3)]
    buffer.push({"step": 10})                                   # no matrices: not a snapshot
    for i, m in enumerate(mats, start=1):
        buffer.push({"step": 10 + 10 * i, "matrices": m})
    step, first = buffer.first_matrices()
    assert step == 20 and first is mats[0]
    assert len(buffer) == 4 and buffer.latest_matrices() == (3, mats[2])
    before = snapshot()
    buffer.set_first(0, before)                 # too late: the first snapshot is kept
    assert buffer.first_matrices() == (20, mats[0])
    fresh = RecordBuffer(capacity=8)
    fresh.set_first(0, before)                  # the run's matrices before its first step
    fresh.push({"step": 10, "matrices": mats[0]})
    assert fresh.first_matrices() == (0, before) and fresh.latest_matrices() == (1, mats[0])


def test_dashboard_opens_on_the_top_layer_and_keeps_the_first_b():
    dash = Dashboard(sync_url=False)
    assert dash.layer_select.value == 0                         # "top" before any run
    cfg = dict(dataset="digits", rule="np", depth=2, width=[12, 8], steps=10_000_000,
               metric_interval=10, eval_interval=1000, device="cpu")
    dash.state.set_config(RunConfig(**cfg))
    run = dash._on_start()
    try:
        assert run is not None
        assert dash.layer_select.value == 2
        assert list(dash.layer_select.options)[0] == "layer 2 ← output (top)"
        deadline = time.time() + 60
        while time.time() < deadline and not (dash.heatmaps.version > 3):
            time.sleep(0.1)
            for _ in range(5):                                  # the slow path: heatmaps
                dash._pull()
        assert dash.heatmaps.version > 3 and dash.heatmaps.layer == 2
        step, first = run.buffer.first_matrices()
        assert step == 0                                        # before the run's first step
        np.testing.assert_array_equal(image(dash.heatmaps, "start"), first[1]["B"])
        assert dash.heatmaps.figures["start"].title.text == "B at the start\n(step 0)"
        assert "layer 2 ← output (8×10)" in dash.heat_heading.object
        assert dash.heatmaps.figures["B"].title.text.startswith("B now\n(step ")
    finally:
        dash.close()
        run.join(10)


# ------------------------------------------------------------------ one sentence under every plot
def test_every_plot_has_a_plain_words_sentence_under_it():
    from app.curves import CAPTIONS
    from app.live_plots import LivePlots
    from engine.host.runner import SessionRuns

    assert set(CAPTIONS) == {key for key, *_ in SCALAR_PLOTS + LAYER_PLOTS}
    for key, text in {**CAPTIONS, **Heatmaps.CAPTIONS}.items():
        assert text.endswith(".") and "\n" not in text, key
    assert "0° = same direction as backprop, 90° = unrelated" in CAPTIONS["signal_angle_deg"]
    for key in ("weight_angle_deg", "update_angle_deg", "estimator_angle_deg"):
        assert "0° =" in CAPTIONS[key] and "90° =" in CAPTIONS[key], key
    plots = LivePlots(SessionRuns(), served=False)
    for grid, count in ((plots.curve_grid, len(CAPTIONS)), (plots.heatmap_grid, len(HEATMAP_KEYS))):
        cells = grid.objects
        assert len(cells) == count
        for cell in cells:                     # each cell: the plot, then its sentence
            plot, caption = cell.objects
            assert "creditlab-caption" in caption.object and plot.object is not None


# ------------------------------------------------------------------------ the loss axis
def test_the_log_loss_axis_labels_the_decades_where_an_mse_run_ends():
    """An MSE run's loss falls from ~0.45 to ~0.02: Bokeh's own log ticker spaces its labels
    linearly below two decades (0.1 … 0.5), leaving the lower half of the axis unlabelled."""
    from app.curves import log_ticks

    plots = CurvePlots()
    plots.add_run("mse", "an MSE run", 2)
    steps = [50, 100, 150, 200]
    plots.stream("mse", [{"step": s, "train_loss": v, "layers": []} for s, v in zip(steps, [0.45, 0.2, 0.05, 0.02])])
    plots.fit_y_ranges()
    fig = plots.figures["loss"]
    lo, hi = fig.y_range.start, fig.y_range.end
    ticks = fig.yaxis.ticker.ticks
    assert ticks == log_ticks(lo, hi) and all(lo <= t <= hi for t in ticks)
    middle = math.sqrt(lo * hi)                            # the log axis' halfway point
    assert len([t for t in ticks if t < middle]) >= 2 and len([t for t in ticks if t > middle]) >= 2
    assert log_ticks(0.3, 0.5) == [0.3, 0.4, 0.5]          # narrow: every digit
    assert log_ticks(1e-9, 10) == [1e-9, 1e-7, 1e-5, 1e-3, 0.1, 10.0]      # wide: some decades


# ------------------------------------------------------------------------ the network picture
def test_the_network_picture_colours_each_feedback_connection_by_its_angle():
    import re

    from app.network_view import FORWARD, GREEN, GREY, NEUTRAL, NetworkView, angle_color, network_svg

    assert angle_color(0) == "#%02x%02x%02x" % GREEN
    assert angle_color(90) == "#bebebe" and angle_color(180) == "#d7191c"
    assert angle_color(None) == angle_color(float("nan")) == NEUTRAL
    svg = network_svg("input 8×8", ["50", "20"], "output 10", [12.0, None], selected=2)
    assert svg.count("<rect") == 4 and "12°" in svg and "–" in svg        # layer 2: no angle yet
    assert svg.count('stroke="#222"') == 1                                 # the heatmaps' layer
    # W's arrows point up the network, B's down: one W arrow per link, one B arrow per hidden
    # layer (none into the input), each head at its arrow's far end
    heads = re.findall(r'<polygon points="([\d.]+),[\d.]+ ([\d.]+),[\d.]+ [\d.]+,[\d.]+" fill="([^"]+)"/>', svg)
    forward = [(tip, base) for tip, base, color in heads if color == FORWARD]
    back = [(tip, base) for tip, base, color in heads if color not in (FORWARD, "#222")]
    assert len(forward) == 3 and all(float(tip) > float(base) for tip, base in forward)
    assert len(back) == 2 and all(float(tip) < float(base) for tip, base in back)
    assert min(float(tip) for tip, _ in back) > min(float(tip) for tip, _ in forward)   # none to the input
    assert NEUTRAL != "#%02x%02x%02x" % GREY and FORWARD not in (NEUTRAL, angle_color(90))
    view = NetworkView()
    view.show_config(RunConfig(depth=2, width=[50, 20]))
    before = view.pane.object
    assert "input 8×8" in before and "output 10" in before and "50" in before
    record = {"layers": [{"signal_angle_deg": 3.2}, {"signal_angle_deg": 80.4}]}
    view.show_record(record, 0)
    colored = view.pane.object
    assert "3°" in colored and "80°" in colored and angle_color(3) in colored
    view.show_record({"layers": [{"signal_angle_deg": 3.4}, {"signal_angle_deg": 79.6}]}, 0)
    assert view.pane.object is colored          # the same whole degrees: nothing is sent
    deep = network_svg("input", [str(i) for i in range(20)], "output", [1.0] * 20)
    assert deep.count("<rect") == 9 and "…" in deep                       # 3 … 3, and the two ends


def test_the_picture_knows_the_hidden_layers_the_engine_builds():
    from engine.data.registry import load_dataset
    from engine.networks import CONV_MODELS, build_model

    from app.network_view import CONV_LAYERS, hidden_layers

    assert set(CONV_LAYERS) == set(CONV_MODELS)
    assert hidden_layers(RunConfig(depth=3, width=[30, 20, 10])) == 3
    digits = load_dataset("digits")
    cfg = RunConfig(model="conv-small", activation="tanh")
    assert hidden_layers(cfg) == len(build_model(cfg, digits).layers) - 1
    cifar_shape = type("Spec", (), {"image_shape": (3, 32, 32), "n_out": 10, "name": "cifar10", "n_in": 3072})
    big = RunConfig(model="conv-cifar")
    assert hidden_layers(big) == len(build_model(big, cifar_shape).layers) - 1
