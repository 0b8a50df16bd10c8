"""An integer box that says what is wrong with what was typed, instead of quietly reverting it.

Bokeh's integer inputs drop what they cannot read ("abc", "2.5") or clamp what is out of range in
the browser and send nothing, so the box seemed to take a value that the form never saw. This
box is text, read on the server as the sidebar's number boxes are (app/sidebar.py
`number_box`): a whole number in range becomes `value`; anything else keeps `value` as it was,
sets `error` to the one-line message (shown under the box), and the form refuses to start while
it is there. The box keeps what was typed; a value set from code shows in the box.
"""

from __future__ import annotations

import panel as pn
import param

from engine.errors import ConfigError
from engine.values import check_integer, parse_int

from app.safe_text import md_text, text_pane


class IntBox(pn.viewable.Viewer):
    """A labelled integer text box with its one-line message; `value` is the last good number."""

    value = param.Integer(default=0, doc="the last whole number typed that is in range")
    error = param.String(default="", doc="the message for what the box shows, '' when it is good")

    def __init__(self, key: str, label: str, value: int, start: int | None = None,
                 end: int | None = None, **params):
        super().__init__(value=value)
        self.key, self.start, self.end = key, start, end
        bounds = f"a whole number from {start}" + (f" to {end}" if end is not None else " up")
        self.box = pn.widgets.TextInput(label=label, value=str(value), description=bounds, **params)
        # The message quotes what was typed: a pane for outside text (app/safe_text.py).
        self.message = text_pane("", visible=False, margin=(0, 10),
                                 styles={"color": "#a30000", "font-size": "0.9em"})
        self._showing = False
        self.box.param.watch(self._typed, "value")
        self.param.watch(self._show, "value")

    def __panel__(self):
        return pn.Column(self.box, self.message, margin=0)

    def read(self, text: str) -> int:
        """The number `text` stands for, or ConfigError with the one-line message."""
        value = parse_int(self.key, text)
        check_integer(self.key, value, self.start if self.start is not None else -2**63, self.end)
        return value

    def _typed(self, event) -> None:
        if self._showing:
            return
        try:
            value = self.read(event.new)
        except ConfigError as exc:
            self.error = str(exc)
        else:
            self.error = ""
            self.value = value
        self.message.object = md_text(self.error)
        self.message.visible = bool(self.error)

    def _show(self, event) -> None:
        """A value set from code replaces what was typed (and its message)."""
        if not self.error and self.box.value.strip() == str(event.new):
            return
        self._showing = True
        try:
            self.box.value = str(event.new)
        finally:
            self._showing = False
        self.error, self.message.visible = "", False


__all__ = ["IntBox"]
