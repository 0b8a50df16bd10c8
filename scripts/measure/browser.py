"""The dashboard served in a thread and driven in Debian's chromium: shared by the measuring
scripts beside this file and the browser tests (tests/conftest.py puts this folder on the path).

Playwright's sync API is used directly (not pytest-playwright's `page` fixture): the server runs
in its own thread with its own event loop, which is what makes its periodic callbacks fire.
Waits are for events, with bounds generous enough for a loaded machine: a slow host is slow,
not wrong.
"""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# How long a page may take to load and draw itself, or a server to listen: minutes, not seconds,
# because on a loaded 2-core machine chromium, the server and its runs share the cores.
LOAD_TIMEOUT_S = 120.0

# Read a named Bokeh data source from the page: column lengths, and any scalar column's last value.
JS_SOURCE = """
([prefix, column]) => {
  if (!window.Bokeh || !Bokeh.documents || !Bokeh.documents.length) return null;
  const out = [];
  for (const doc of Bokeh.documents) {
    for (const m of doc.all_models) {
      if (m.type !== "ColumnDataSource" && !(m.constructor && m.constructor.name === "ColumnDataSource")) continue;
      if (!m.name || !m.name.startsWith(prefix)) continue;
      const data = m.data instanceof Map ? Object.fromEntries(m.data) : m.data;
      const col = data[column];
      const n = col ? col.length : 0;
      let last = null;
      if (col && n) { const v = col[n - 1]; last = (typeof v === "number") ? v : null; }
      out.push({name: m.name, n: n, last: last});
    }
  }
  return out;
}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_dashboard(port: int | None = None, **dashboard_kwargs):
    """Serve a fresh Dashboard per session at http://127.0.0.1:<port>/app, in a thread."""
    import panel as pn

    from app.app_hooks import warm_up
    from app.dashboard import Dashboard

    warm_up()
    port = port or free_port()
    created: list = []

    def app():
        dash = Dashboard(**dashboard_kwargs)
        created.append(dash)
        return dash

    server = pn.serve({"app": app}, port=port, address="127.0.0.1", threaded=True, show=False,
                      websocket_origin=[f"127.0.0.1:{port}", f"localhost:{port}"])
    _wait_port(port)
    try:
        yield f"http://127.0.0.1:{port}/app", created
    finally:
        for dash in created:
            dash.close()
        server.stop()


def _wait_port(port: int, timeout: float = LOAD_TIMEOUT_S) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the dashboard server did not listen on port {port} within {timeout} s")


@contextlib.contextmanager
def chromium_context(profile_dir, viewport=(1600, 1000)):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile_dir), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": viewport[0], "height": viewport[1]})
        try:
            yield context
        finally:
            context.close()


def source_info(page, prefix: str, column: str) -> list[dict]:
    return page.evaluate(JS_SOURCE, [prefix, column]) or []


def wait_for_bokeh(page, timeout: float = LOAD_TIMEOUT_S) -> None:
    page.wait_for_function("() => window.Bokeh && Bokeh.documents && Bokeh.documents.length > 0",
                           timeout=timeout * 1000)


def open_dashboard(page, url: str, query: str = "", timeout: float = LOAD_TIMEOUT_S) -> None:
    """Load the dashboard at `url` + `query` and wait until its Start button and plots are drawn."""
    page.goto(url + query, timeout=timeout * 1000)
    wait_for_bokeh(page, timeout)
    page.get_by_role("button", name="Start", exact=True).wait_for(timeout=timeout * 1000)
    # The plots' data sources exist once the plots have rendered.
    page.wait_for_function("() => Array.from(Bokeh.documents[0].all_models).length > 50",
                           timeout=timeout * 1000)
