"""The dashboard a teacher puts on a projector: story mode at 1280×720, and how fast it answers.

Read from the page in Debian's chromium: on first load the sidebar is in story mode, with the
lesson's settings (rule, σ, depth, width, Freeze W) and Start in view without scrolling and the
rest under a collapsed "Advanced" card; once a run trains no plot reaches past the page's right
edge, every plot has its sentence, and the network picture is coloured by the run's angles. A
screenshot of it is saved under the test's tmp_path.

The latency test serves the app as a user does (`panel serve app/`, its warm-up off the request
path) and prints two figures: seconds from the server's start to its first HTTP 200, and from
the Start click to the first curve point in the page (measured inside the page). Each is judged
against a yardstick taken on the same host just before: how long Python takes to import Panel
there now (the server's own start is little more), so a loaded machine is allowed its slowness.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from browser import free_port, open_dashboard
from conftest import require_browser, settled_boxes, total_points, wait_until

pytestmark = pytest.mark.browser

require_browser()

ROOT = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 1280, 720
STORY_LABELS = ("Learning rule", "σ: noise std (live)", "Hidden layers (depth)",
                "Width (one, or per layer: 50,20)", "Freeze W (only B learns)")
# In units of the yardstick (`import_panel_s`, 1.5–2.5 s on a quiet 2-core machine). `panel serve`
# answered its first HTTP request in about one (the goal: 3 s on a quiet machine; its warm-up on
# the request path once made it ~15 s); Start → first curve point took under one (the goal: 1 s).
HTTP_BOUND = 4.0
FIRST_POINT_BOUND = 3.0
# A freshly served app builds its first page while its warm-up imports torch: a minute or more
# on a loaded machine.
FIRST_PAGE_TIMEOUT_S = 300.0


def import_panel_s() -> float:
    """Seconds a fresh Python takes to import Panel on this host now: the yardstick."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import panel as pn; pn.extension()"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    return time.perf_counter() - t0

JS_NETWORK = """() => {
  const all = (root, out) => {
    for (const el of root.querySelectorAll('*')) { out.push(el); if (el.shadowRoot) all(el.shadowRoot, out); }
    return out;
  };
  const svg = all(document, []).find(el => el.tagName && el.tagName.toLowerCase() === 'svg'
                                         && el.getAttribute('aria-label') === 'network picture');
  if (!svg) return null;
  const r = svg.getBoundingClientRect();
  return {boxes: svg.querySelectorAll('rect').length,
          strokes: Array.from(svg.querySelectorAll('line')).map(l => l.getAttribute('stroke')),
          labels: Array.from(svg.querySelectorAll('text')).map(t => t.textContent),
          x: r.x, y: r.y, w: r.width, h: r.height};
}"""

JS_CAPTIONS = """() => {
  const all = (root, out) => {
    for (const el of root.querySelectorAll('*')) { out.push(el); if (el.shadowRoot) all(el.shadowRoot, out); }
    return out;
  };
  return all(document, []).filter(el => el.classList && el.classList.contains('creditlab-caption'))
                          .map(el => el.textContent);
}"""


def in_view(box: dict | None) -> bool:
    return (box is not None and box["x"] >= -0.5 and box["y"] >= -0.5
            and box["x"] + box["width"] <= WIDTH + 0.5 and box["y"] + box["height"] <= HEIGHT + 0.5)


def test_story_mode_at_1280x720_shows_the_lesson_and_fits_the_page(server, page, tmp_path):
    url, dashboards = server
    page.set_viewport_size({"width": WIDTH, "height": HEIGHT})
    open_dashboard(page, url)
    start = page.get_by_role("button", name="Start", exact=True)

    # Story mode on first load: the lesson's settings and Start, in view without any scrolling.
    for label in STORY_LABELS:
        # (the checkbox's text is not an HTML label of its input in Panel 1.9: found by its text)
        control = (page.get_by_text(label, exact=True) if label.startswith("Freeze")
                   else page.get_by_label(label, exact=True))
        control.wait_for(state="visible")
        assert in_view(control.bounding_box()), f"{label!r} is not in view: {control.bounding_box()}"
    assert in_view(start.bounding_box())
    assert page.evaluate("() => window.scrollY") == 0
    # The rest is under "Advanced", collapsed, and still there.
    seed = page.get_by_label("Seed", exact=True)
    assert seed.count() == 1 and not seed.is_visible()
    # The story's steps lead the preset menu; each explains itself in one sentence.
    menu = page.get_by_label("Preset (the paper's set-ups)")
    options = menu.evaluate("el => Array.from(el.options).map(o => o.text)")
    assert options[1:6] == ["0. Why learn B at all? Pure node perturbation",
                            "1. Feedback alignment: B is random, fixed",
                            "2. Node perturbation learns B (W frozen)", "3. NP trains the network",
                            "4. Conv nets"]
    menu.select_option("2. Node perturbation learns B (W frozen)")
    page.get_by_text("noise on each hidden unit teaches B").first.wait_for()
    wait_until(lambda: dashboards[-1].state.freeze_forward)

    start.click()
    wait_until(lambda: total_points(page) > 0)
    # The network picture: input, two hidden layers, output; coloured once angles arrive.
    net = wait_until(lambda: (n := page.evaluate(JS_NETWORK)) and any(t.endswith("°") for t in n["labels"])
                     and n)
    assert net["boxes"] == 4 and net["w"] > 150
    assert net["x"] + net["w"] <= WIDTH + 0.5

    # Once the layout has settled: nothing past the right edge.
    last = settled_boxes(page)
    for canvas in last["canvases"]:
        assert canvas["x"] >= -0.5 and canvas["x"] + canvas["w"] <= WIDTH + 0.5, f"clipped: {canvas}"
    assert last["scrollWidth"] <= WIDTH + 1, "the page scrolls sideways"
    for key in ("start", "B", "WT", "diff"):           # the heatmaps: on the first screen
        (fig,) = last["heatmaps"][key]
        assert fig["y"] >= 0 and fig["y"] + fig["h"] <= HEIGHT + 0.5, (key, fig)
    captions = page.evaluate(JS_CAPTIONS)
    assert len(captions) == 12 and all(c.strip().endswith(".") for c in captions), captions

    shot = tmp_path / "dashboard-story-1280x720.png"
    page.screenshot(path=str(shot), full_page=False)
    print(f"\nscreenshot: {shot}")

    # "Advanced" opens in place, its settings bound as ever.
    page.get_by_text("Advanced: every other setting").first.click()
    seed.wait_for(state="visible")
    seed.fill("3")
    seed.press("Enter")
    wait_until(lambda: dashboards[-1].state.seed == 3)


# ------------------------------------------------------------------------- latency, as served
@pytest.fixture
def served_app(tmp_path):
    """`panel serve app/` in its own process group, as a user starts it; ended in teardown
    (process group: its run processes and forkserver too). Yields (url, seconds to the first
    HTTP 200, the yardstick taken just before the start, log path)."""
    yardstick = import_panel_s()
    port = free_port()
    log = tmp_path / "panel-serve.log"
    env = dict(os.environ, CREDITLAB_RUNS=str(tmp_path / "runs"), PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "panel", "serve", "app/", "--port", str(port), "--address", "127.0.0.1",
           "--allow-websocket-origin", f"127.0.0.1:{port}"]
    url = f"http://127.0.0.1:{port}/app"
    with open(log, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        seconds = None
        while time.perf_counter() - t0 < FIRST_PAGE_TIMEOUT_S:
            if proc.poll() is not None:
                raise RuntimeError(f"panel serve exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=30) as reply:
                    if reply.status == 200:
                        seconds = time.perf_counter() - t0
                        break
            except OSError:
                pass
            time.sleep(0.05)
        if seconds is None:
            raise RuntimeError(f"panel serve did not answer within {FIRST_PAGE_TIMEOUT_S:.0f} s:\n"
                               f"{log.read_text()[-3000:]}")
        yield url, seconds, yardstick, log
    finally:
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
            except OSError:
                break
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue


# Click Start and time, inside the page, until a curve source that was not there before the
# click holds a point (a second run's curves are new sources too).
JS_START_TO_FIRST_POINT = """() => new Promise(resolve => {
  const all = (root, out) => {
    for (const el of root.querySelectorAll('*')) { out.push(el); if (el.shadowRoot) all(el.shadowRoot, out); }
    return out;
  };
  const curves = () => Array.from(Bokeh.documents[0].all_models)
                            .filter(m => m.name && m.name.startsWith('curves-'));
  const before = new Set(curves().map(m => m.name));
  const points = () => curves().some(m => {
    if (before.has(m.name)) return false;
    const data = m.data instanceof Map ? Object.fromEntries(m.data) : m.data;
    return data.step && data.step.length > 0;
  });
  const button = all(document, []).find(el => el.tagName === 'BUTTON' && el.textContent.trim() === 'Start');
  const t0 = performance.now();
  button.click();
  const poll = () => {
    const dt = performance.now() - t0;
    if (points()) resolve(dt); else if (dt > 120000) resolve(-1); else setTimeout(poll, 50);
  };
  poll();
})"""


# Resolves once the page's main thread is idle: ten timers in a row, 100 ms apart, each on time
# (BokehJS builds a new run's plot objects in long tasks; a click then waits behind them).
JS_IDLE = """() => new Promise(resolve => {
  let calm = 0, last = performance.now();
  const t0 = last;
  const tick = () => {
    const now = performance.now();
    calm = (now - last < 140) ? calm + 1 : 0;
    last = now;
    if (calm >= 10 || now - t0 > 30000) resolve(now - t0); else setTimeout(tick, 100);
  };
  setTimeout(tick, 100);
})"""


def test_served_app_answers_http_at_once_and_start_shows_a_point_within_a_second(served_app, browser):
    url, http_s, yardstick_s, log = served_app
    print(f"\npanel serve app/ → first HTTP 200: {http_s:.2f} s ({http_s / yardstick_s:.1f} × the "
          f"{yardstick_s:.2f} s this host took to import Panel just before)")
    assert http_s <= HTTP_BOUND * yardstick_s, f"the server took {http_s:.1f} s to answer"
    page = browser.new_page()
    try:
        page.set_viewport_size({"width": WIDTH, "height": HEIGHT})
        open_dashboard(page, url, "?rule=np&steps=1000000", timeout=FIRST_PAGE_TIMEOUT_S)
        # On a quiet machine: once the server's warm-up (in the background) has finished.
        wait_until(lambda: "warm-up done" in log.read_text(errors="replace"), timeout=FIRST_PAGE_TIMEOUT_S,
                   what="the server's warm-up did not finish", interval=0.5)
        for which in ("first", "second", "depth-6"):
            if which == "depth-6":
                # Deeper than the spare curves (app/curves.py, SPARE_LAYERS): they take its lines and
                # add their own; a whole new set once made this wait 17–35 s.
                for label, text in (("Hidden layers (depth)", "6"), ("Width (one, or per layer: 50,20)", "20")):
                    box = page.get_by_label(label, exact=True)
                    box.fill(text)
                    box.press("Enter")
                wait_until(lambda: "depth=6" in page.evaluate("() => window.location.search")
                           and "width=20&" in page.evaluate("() => window.location.search"),
                           what="the page did not take depth 6")
            if which != "first":
                # A second run in the same page (the first stays in the comparison), once the page
                # has the spare curves the dashboard makes for the next run while this one trains.
                page.wait_for_function("() => Array.from(Bokeh.documents[0].all_models).some("
                                       "m => m.name && m.name.startsWith('spare-'))", timeout=120_000)
            page.evaluate(JS_IDLE)                   # ... and the page has drawn itself
            yardstick_s = import_panel_s()
            ms = page.evaluate(JS_START_TO_FIRST_POINT)
            assert ms >= 0, f"the {which} run showed no curve point within 120 s of Start"
            print(f"Start click → first curve point of the {which} run in the page: {ms / 1000:.2f} s "
                  f"({ms / 1000 / yardstick_s:.1f} × the {yardstick_s:.2f} s yardstick)")
            assert ms / 1000 <= FIRST_POINT_BOUND * yardstick_s
    finally:
        page.close()
