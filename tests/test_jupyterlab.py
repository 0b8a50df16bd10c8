"""The live notebook in a real JupyterLab: Run All, then Start, in Debian's chromium.

A JupyterLab server (the `lab` extra) runs headless on 127.0.0.1, with its settings, workspaces
and runtime files in a temporary folder. It serves a copy of notebooks/live/dashboard.ipynb.
The test runs every cell through JupyterLab's own command (`notebook:run-all-cells`, reached
through `window.jupyterapp`), presses the dashboard's Start button, and checks what a user
would see:

- the plotted data grows, and its steps only go up (no point twice, none out of order);
- after Stop the browser, the kernel's data source and the run's records agree on the count;
- no cell output holds a traceback or an error on stderr;
- the page logs no console error and no page error;
- at 1600 and at 1000 px the plot grids fit inside the cell's output area.

Each wait is on a condition, with a generous timeout: the machines that run this are busy.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest

from conftest import require_browser, serve_jupyterlab

pytestmark = [pytest.mark.browser, pytest.mark.slow]

require_browser()
from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "live" / "dashboard.ipynb"
MINUTE = 60_000        # ms

# The notebook panel has opened, its kernel is connected and idle.
JS_NOTEBOOK_READY = """() => {
  const w = window.jupyterapp && jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!(w && w.content && w.context && w.context.isReady && k
            && k.connectionStatus === "connected" && k.status === "idle");
}"""
# Every code cell has run (has an execution count) and the kernel is idle again.
JS_ALL_RAN = """() => {
  const nb = jupyterapp.shell.currentWidget;
  const cells = nb.content.widgets.filter(c => c.model.type === "code");
  return nb.sessionContext.session.kernel.status === "idle"
         && cells.every(c => c.model.executionCount !== null);
}"""
# Each code cell's outputs (as stored) and the text its output area shows. The text, not the
# stored HTML: the dashboard's own output embeds Panel's JavaScript, where the word "Traceback"
# occurs; a traceback that Panel reports prints into the page as text.
JS_OUTPUTS = """() => jupyterapp.shell.currentWidget.content.widgets
  .filter(c => c.model.type === "code")
  .map(c => ({outputs: c.model.outputs.toJSON(), text: c.outputArea.node.innerText}))"""
# Run Python in the notebook's kernel (on its main shell) and return what it printed.
JS_KERNEL = """async (code) => {
  const kernel = jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  const future = kernel.requestExecute({code, store_history: false});
  let out = "";
  future.onIOPub = (msg) => {
    if (msg.header.msg_type === "stream") out += msg.content.text;
    if (msg.header.msg_type === "error") out += msg.content.ename + ": " + msg.content.evalue;
  };
  await future.done;
  return out;
}"""
# The step column of every curve source (`curves-<run id>`) in the page's Bokeh documents.
JS_STEPS = """() => {
  const out = [];
  for (const doc of (window.Bokeh && Bokeh.documents) || []) {
    for (const m of doc.all_models) {
      let name = null;
      try { name = m.name; } catch (e) { continue; }   // a model a garbled message left half-built
      if (!name || !name.startsWith("curves-")) continue;
      const data = m.data instanceof Map ? Object.fromEntries(m.data) : m.data;
      out.push({name, steps: Array.from(data.step || [])});
    }
  }
  return out;
}"""
# Where each plot grid and everything drawn inside it ends, against the output area holding it.
JS_GRID_FIT = """() => {
  const walk = (root, out) => {
    for (const el of root.querySelectorAll("*")) {
      out.push(el);
      if (el.shadowRoot) walk(el.shadowRoot, out);
    }
    return out;
  };
  const result = [];
  for (const cls of ["creditlab-heatmaps", "creditlab-curves"]) {
    const grid = walk(document, []).find(el => el.classList && el.classList.contains(cls));
    if (!grid) { result.push({cls, missing: true}); continue; }
    let area = grid;
    while (area && !(area.classList && area.classList.contains("jp-OutputArea-output"))) {
      area = area.parentNode || area.host;
    }
    // What is painted: the grid, its items (the plots' elements) and the plots' canvases.
    // Not every element: Bokeh's renderer elements are absolutely placed boxes the canvas clips.
    const items = Array.from((grid.shadowRoot || grid).children);
    const canvases = walk(grid.shadowRoot || grid, []).filter(el => el.tagName === "CANVAS");
    const inner = [grid, ...items, ...canvases]
      .map(el => el.getBoundingClientRect()).filter(r => r.width > 0 && r.height > 0);
    const a = area.getBoundingClientRect();
    result.push({cls, area_left: a.left, area_right: a.right,
                 left: Math.min(...inner.map(r => r.left)), right: Math.max(...inner.map(r => r.right)),
                 grid_width: grid.getBoundingClientRect().width,
                 area_scroll: area.scrollWidth, area_client: area.clientWidth});
  }
  return result;
}"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with serve_jupyterlab(tmp_path_factory.mktemp("jupyterlab"),
                          {"live/dashboard.ipynb": NOTEBOOK}) as (base, token, log):
        yield base, token, log


def _steps(page) -> list[dict]:
    return page.evaluate(JS_STEPS)


def _points(page) -> int:
    return sum(len(s["steps"]) for s in _steps(page))


def _wait_points_above(page, n: int, timeout_ms: float) -> int:
    page.wait_for_function(f"() => ({JS_STEPS})().reduce((a, s) => a + s.steps.length, 0) > {n}",
                           timeout=timeout_ms, polling=250)
    return _points(page)


def _assert_steps_increase(page) -> None:
    for source in _steps(page):
        steps = source["steps"]
        bad = [i for i in range(1, len(steps)) if not steps[i] > steps[i - 1]]
        assert not bad, (f"{source['name']}: steps not strictly increasing at {bad[:5]} "
                         f"(e.g. {steps[max(0, bad[0] - 3):bad[0] + 3]})")


def _kernel(page, code: str) -> str:
    return page.evaluate(JS_KERNEL, code).strip()


def _assert_clean_outputs(page) -> None:
    """No cell output holds a traceback, an error, or an error on stderr."""
    for i, cell in enumerate(page.evaluate(JS_OUTPUTS)):
        text = cell["text"]
        assert "Traceback" not in text, f"code cell {i + 1} shows a traceback:\n{text[:3000]}"
        for out in cell["outputs"]:
            assert out.get("output_type") != "error", f"code cell {i + 1} failed: {out}"
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                err = "".join(out.get("text", ""))
                assert not any(w in err for w in ("Error", "Exception")), \
                    f"code cell {i + 1} wrote an error to stderr:\n{err[:3000]}"


def _settled_grids(page, timeout_s: float = 30.0) -> list[dict]:
    """The grids' geometry once it has stopped changing (Bokeh lays out again after a resize)."""
    last, deadline = None, time.time() + timeout_s
    while True:
        now = page.evaluate(JS_GRID_FIT)
        if now == last or time.time() > deadline:
            return now
        last = now
        page.wait_for_timeout(300)


def _assert_grids_fit(page, width: int) -> None:
    for grid in _settled_grids(page):
        assert not grid.get("missing"), f"{grid['cls']} is not on the page"
        where = f"{grid['cls']} at a {width} px window: {grid}"
        assert grid["grid_width"] > 0, where
        assert grid["left"] >= grid["area_left"] - 1 and grid["right"] <= grid["area_right"] + 1, \
            "the plot grid reaches past its cell's output area: " + where
        assert grid["area_scroll"] <= grid["area_client"] + 1, "the output area scrolls sideways: " + where


def test_live_notebook_runs_all_and_start_updates_its_plots(lab, browser):
    base, token, log = lab
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console.{m.type}: {m.text}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    try:
        t0 = time.time()
        page.goto(f"{base}/lab/tree/live/dashboard.ipynb?token={token}")
        page.wait_for_function(JS_NOTEBOOK_READY, timeout=2 * MINUTE, polling=250)
        page.evaluate("() => jupyterapp.commands.execute('notebook:run-all-cells')")
        start = page.get_by_role("button", name="Start", exact=True)
        start.wait_for(timeout=3 * MINUTE)
        page.wait_for_function(JS_ALL_RAN, timeout=3 * MINUTE, polling=250)
        print(f"\nnotebook open and every cell run: {time.time() - t0:.1f} s")
        _assert_clean_outputs(page)
        assert _steps(page) == [], "curves before Start"
        _assert_grids_fit(page, 1600)

        start.click()
        t1 = time.time()
        first = _wait_points_above(page, 0, 3 * MINUTE)       # the kernel's first run pays torch's start-up
        print(f"Start → first points on the page: {time.time() - t1:.1f} s ({first} points)")
        later = _wait_points_above(page, first, 2 * MINUTE)
        later = _wait_points_above(page, later, 2 * MINUTE)
        assert later > first
        _assert_steps_increase(page)

        page.set_viewport_size({"width": 1000, "height": 1000})
        page.wait_for_function("() => document.documentElement.clientWidth === 1000", timeout=MINUTE)
        _assert_grids_fit(page, 1000)

        stop = page.get_by_role("button", name="Stop", exact=True)
        if stop.is_enabled():
            with contextlib.suppress(PlaywrightTimeout):     # the run may finish first: Stop disables
                stop.click(timeout=10_000)
        page.get_by_text("— stopped").or_(page.get_by_text("— finished")).first.wait_for(timeout=MINUTE)
        # Once the last records have landed, the page, the kernel's data source and the run agree.
        counts = "r = dashboard.session.current; print(len(r.buffer.records()), dashboard.curves.length(r.id))"
        deadline = time.time() + 2 * MINUTE / 1000
        while True:
            # Empty when the output was not read back yet; an error's text is not two counts either.
            printed = _kernel(page, counts).split()
            if len(printed) == 2 and all(v.isdigit() for v in printed):
                records, in_kernel = (int(v) for v in printed)
                shown = _points(page)
                if records == in_kernel == shown:
                    break
            if time.time() > deadline:
                break
            page.wait_for_timeout(500)
        assert len(printed) == 2 and all(v.isdigit() for v in printed), \
            f"the kernel printed {printed!r} for the counts"
        assert records == in_kernel == shown, \
            f"{records} records, {in_kernel} points in the kernel's source, {shown} on the page"
        _assert_steps_increase(page)
        _assert_clean_outputs(page)
        assert not problems, "the page logged errors:\n" + "\n".join(problems[:20])
        print(f"{shown} points for {records} records; whole test {time.time() - t0:.1f} s")
    except Exception:
        # What the page and the server said, for a failure that is only a timeout.
        print("page errors so far:\n" + "\n".join(problems[:20]))
        print("jupyterlab log (tail):\n" + log.read_text(errors="replace")[-4000:])
        raise
    finally:
        page.close()
