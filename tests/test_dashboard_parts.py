"""Issue 30's dashboard parts: the line style of every layer, the disabled Stop button, the
NP-only plots beside FA/BP runs, and the heatmap hover's row index."""

from __future__ import annotations

from types import SimpleNamespace

from app.curves import LAYER_DASHES
from app.live_plots import NP_ONLY_PLOTS, LivePlots
from app.run_status import RunStatus
from engine.config import RunConfig
from engine.host.runner import SessionRuns
from engine.status import Status

MAX_DEPTH = 6          # the deepest net the settings train (engine/config.py)


def test_every_layer_up_to_the_deepest_net_has_its_own_line_style():
    styles = [str(LAYER_DASHES[(i - 1) % len(LAYER_DASHES)]) for i in range(1, MAX_DEPTH + 1)]
    assert len(set(styles)) == MAX_DEPTH, styles


def test_stop_is_red_only_while_there_is_a_run_to_stop():
    status = RunStatus(SessionRuns(), LivePlots(SessionRuns(), served=False).curves)
    status.ready()
    assert status.stop_button.disabled and status.stop_button.color != "danger"
    status.set_buttons(Status.RUNNING)
    assert not status.stop_button.disabled and status.stop_button.color == "danger"
    status.set_buttons(Status.FINISHED)
    assert status.stop_button.color != "danger"


def test_np_only_plots_hide_while_no_run_shown_can_fill_them():
    session = SessionRuns()
    plots = LivePlots(session, served=False)
    cells = [plots._curve_cells[k] for k in NP_ONLY_PLOTS]
    assert all(c.visible for c in cells)                    # no run: nothing to hide them for
    fa = SimpleNamespace(id="a", cfg=RunConfig(rule="fa"))
    session.runs.append(fa)
    plots.show_fillable()
    assert not any(c.visible for c in cells)
    bp = SimpleNamespace(id="b", cfg=RunConfig(rule="bp"))
    session.runs.append(bp)
    plots.show_fillable()
    assert not any(c.visible for c in cells)
    session.runs.append(SimpleNamespace(id="c", cfg=RunConfig(rule="np-dfa")))
    plots.show_fillable()
    assert all(c.visible for c in cells)                    # a run that fills them: shown again
    session.runs.pop()
    plots.show_fillable()
    assert not any(c.visible for c in cells)
    # the other plots stay
    assert all(c.visible for k, c in plots._curve_cells.items() if k not in NP_ONLY_PLOTS)


def test_the_heatmap_hover_counts_rows_from_the_top_as_the_matrix_does(browser):
    """Row 0 of a matrix is drawn at the top (the image is flipped): the pointer's y is counted
    from the bottom, so the hover has to turn it round. Its code, run in the browser."""

    from conftest import require_browser

    from app.heatmaps import COL_HOVER_JS, ROW_HOVER_JS

    require_browser()
    page = browser.new_page()
    try:
        run = ("([code, value, rows]) => new Function('value', 'source', code)"
               "(value, {data: {dh: [rows]}})")
        rows = 20
        assert page.evaluate(run, [ROW_HOVER_JS, rows - 0.2, rows]) == "0"        # the top row
        assert page.evaluate(run, [ROW_HOVER_JS, 0.3, rows]) == str(rows - 1)     # the bottom row
        assert page.evaluate(run, [ROW_HOVER_JS, 12.7, rows]) == "7"
        assert page.evaluate(run, [COL_HOVER_JS, 3.9, rows]) == "3"              # the cell, not rounded
    finally:
        page.close()

