"""Sends the page a new batch of plot data only once it has drawn the last one.

The dashboard pulls new records every 200 ms, and each batch makes the browser redraw eight
curve plots (and, once a second, four heatmaps). A fast browser draws that in a few tens of ms.
A slow one, or one on a loaded 2-core machine, took longer than the period: batches queued up
behind each other, the page's main thread never went idle, and clicks waited for seconds (a
click on "Advanced" once timed out after 30 s). So the page says when it has drawn a batch:
`PagePace.sent` counts batches out, the page copies it into `drawn` after the next frame has
been painted, and the dashboard sends nothing new while the two differ, nor for as long again
after (`rest`, timed by the page's own paint): the page gets idle time between batches, and a
click gets in. Nothing is dropped: a skipped pull's records go out with the next batch.

The script says it runs (`answering`) as soon as the page renders it, before any batch: on a
slow page a run's first answer can come many seconds after its Start, and the batches sent
meanwhile without waiting had piled up (59 of them at 4× CPU throttling, a minute of drawing
with clicks queued behind it). Where the script never runs, batches go out as before, so such
a page keeps its plots. A page that stops answering, say a hidden tab, whose frames the browser
stops painting, still gets one batch every `patience_s` seconds.
"""

from __future__ import annotations

import time

import param

from app.address_bar import Invisible


class PagePace(Invisible):
    """Invisible. Holds back the next batch until the page has painted the last one."""

    answering = param.Boolean(default=False, doc="the page runs this component's script")
    sent = param.Integer(default=0, doc="batches sent to the page")
    drawn = param.Integer(default=0, doc="the last batch the page reports painted")
    took_ms = param.Number(default=0.0, doc="how long the page took to paint that batch")
    patience_s = param.Number(default=5.0, bounds=(0, None),
                              doc="the longest a batch waits for the page's answer")
    rest = param.Number(default=1.0, bounds=(0, None),
                        doc="the page's idle time after a batch, as a multiple of the time it took")

    # Two animation frames: the first runs before the frame that paints the batch's plots, the
    # second after it. `took_ms` is the page's own time for the batch, frames included; the
    # round trip through the server would count the server's and the network's time too.
    _esm = """
    export function render({ model }) {
      model.answering = true;
      model.on("sent", () => {
        const batch = model.sent, start = performance.now();
        requestAnimationFrame(() => requestAnimationFrame(() => {
          if (model.drawn < batch) {
            model.took_ms = performance.now() - start;
            model.drawn = batch;
          }
        }));
      });
      const el = document.createElement("span");
      el.style.display = "none";
      return el;
    }
    """

    def __init__(self, **params):
        super().__init__(**params)
        self._sent_at = self._drawn_at = 0.0
        self.param.watch(self._on_drawn, "drawn")

    def _on_drawn(self, _event) -> None:
        self._drawn_at = time.monotonic()

    def ready(self) -> bool:
        """Whether the next batch may go out now."""
        now = time.monotonic()
        if not self.answering:
            return True
        if self.drawn < self.sent:
            return now - self._sent_at >= self.patience_s
        return now - self._drawn_at >= self.rest * self.took_ms / 1000

    def mark_sent(self) -> None:
        """Count one batch out; call it inside the batch's `pn.io.hold()` so the count travels
        with the data."""
        self._sent_at = time.monotonic()
        self.sent += 1
