"""The dashboard in a Jupyter notebook: what Panel's comm path needs beyond `panel serve`.

In a notebook Panel syncs the page through a Jupyter comm, not a Bokeh server session. Three
things on that path break the live dashboard (Panel 1.9, JupyterLab >= 4.4, ipykernel 7), and
each part here works around one of them. `panel serve` never uses any of it.

1. Threads (`FollowingPull`). JupyterLab sends comm messages to a kernel subshell, and ipykernel
   7 handles those on a thread of their own. A periodic callback started in a cell runs on the
   main thread, so the pull and the buttons' callbacks would edit one Bokeh document and write
   to one comm at the same time. The messages then interleave: the browser's decoder fails
   ("TypeError: s is not iterable"), and points arrive twice or out of order (436 for 400
   records). So the pull runs on the thread of the latest UI event.
2. Echoes (`EchoFilter`). Panel's browser-side CommManager sends every change it applies back
   to Python, including the changes Python itself just sent. BokehJS's own server session drops
   those, because their `event.sync` is false. The echo appends every streamed point a second
   time on the Python side, and an echoed new glyph fails validation ("line_color ... got
   Value(value='#1f77b4')"). Panel prints that traceback above the dashboard.
3. Stylesheets (`inline_markup`). A Markdown or HTML pane updated in place sends Panel's
   stylesheets again as CDN links, even under `pn.extension(inline=True)`, so an offline browser
   logs failed requests every time the status line changes. Here they are sent inline, as the
   first render sends them.

And one thing `panel serve` does at start-up (app/app_hooks.py) that a kernel must do itself:
start the run processes' forkserver, which imports torch and the engine once (`warm_runs`).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import Callable

import panel as pn
from bokeh.models import ImportedStyleSheet, InlineStyleSheet
from panel.io.resources import CDN_DIST, DIST_DIR
from panel.pane.markup import HTMLBasePane

from app.address_bar import Invisible


class FollowingPull:
    """A periodic callback that runs on the thread of the latest `follow()` call.

    Call `follow()` from each UI event handler. If the event arrived on another thread's event
    loop (a kernel subshell), a new callback starts there. The old one stops at its next tick,
    on its own thread. Without a running event loop (a plain script or a test), `follow()`
    changes nothing.
    """

    def __init__(self, callback: Callable[[], None], period_ms: int):
        self._callback = callback
        self._period = period_ms
        self._thread: int | None = None
        self._pulls: dict[int, pn.io.PeriodicCallback] = {}
        self._stopped = False
        self.follow()

    def follow(self) -> None:
        thread = threading.get_ident()
        if self._stopped or thread == self._thread:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self._thread = thread
        if thread not in self._pulls:
            self._pulls[thread] = pn.state.add_periodic_callback(lambda: self._tick(thread),
                                                                 period=self._period)

    def _tick(self, thread: int) -> None:
        if self._stopped or thread != self._thread:      # retired: the UI moved on, or stop()
            pull = self._pulls.pop(thread, None)
            if pull is not None:
                pull.stop()
            return
        self._callback()

    def stop(self) -> None:
        """Stop the callback on this thread now; the callbacks on other threads stop at their next tick."""
        self._stopped = True
        pull = self._pulls.pop(threading.get_ident(), None)
        if pull is not None:
            pull.stop()


_warming: threading.Thread | None = None


def warm_runs() -> threading.Thread:
    """Start the runs' forkserver in a daemon thread, once per kernel, so that the first Start
    does not wait for it (seconds: it imports torch and the engine). The kernel itself imports
    neither; a failure only leaves the first Start as slow as before."""
    global _warming
    if _warming is None:
        def work():
            try:
                from engine.host import worker
                worker.warm_up()
            except Exception:       # noqa: BLE001  the first Start starts it instead
                pass
        _warming = threading.Thread(target=work, name="creditlab-forkserver", daemon=True)
        _warming.start()
    return _warming


class EchoFilter(Invisible):
    """Invisible. Makes Panel's CommManager drop the changes it applied from Python (`sync`
    false) instead of sending them back, as BokehJS's ClientSession does. The patch goes on the
    class, once per page, so it covers every Panel output on the page."""

    _esm = """
    export function render() {
      const CommManager = window.Bokeh?.Models?.get("panel.models.comm_manager.CommManager");
      if (CommManager && !CommManager.prototype._drops_echoes) {
        const changed = CommManager.prototype._document_changed;
        CommManager.prototype._document_changed = function (event) {
          if (event.sync) changed.call(this, event);
        };
        CommManager.prototype._drops_echoes = true;
      }
      const el = document.createElement("span");
      el.style.display = "none";
      return el;
    }
    """


# One InlineStyleSheet per document and URL. After the first update a pane's stylesheets are
# then the same models every time, so no CSS goes over the comm again.
_INLINE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _inline(doc, sheet):
    if doc is None or not isinstance(sheet, ImportedStyleSheet) or not sheet.url.startswith(CDN_DIST):
        return sheet
    cache = _INLINE.setdefault(doc, {})
    if sheet.url not in cache:
        path = DIST_DIR / sheet.url[len(CDN_DIST):].split("?")[0]
        cache[sheet.url] = InlineStyleSheet(css=path.read_text(encoding="utf-8")) if path.is_file() else sheet
    return cache[sheet.url]


def inline_markup(viewable) -> None:
    """Make each markup pane under `viewable` replace the CDN stylesheets that Panel's in-place
    update (`HTMLBasePane._update`) sets with inline ones, before Panel pushes the update. The
    document is held with the "combine" policy, so only the inline list goes out."""
    for pane in viewable.select(HTMLBasePane):
        if getattr(pane, "_inlines_stylesheets", False):
            continue

        def update(ref, model, _update=pane._update):
            _update(ref, model)
            model.stylesheets = [_inline(model.document, s) for s in model.stylesheets]

        pane._update = update
        pane._inlines_stylesheets = True
