"""An integer box that says what is wrong with what was typed, instead of quietly reverting it:
the sweep form's. It is the page's one number box (app/number_box.py) with a value of its own and
its message shown under it: a whole number in range becomes `value`; anything else keeps `value`
as it was, sets `error` to the one-line message, and the form refuses to start while it is there.
"""

from __future__ import annotations

import panel as pn
import param

from engine.values import check_integer, parse_int

from app.number_box import number_box
from app.safe_text import md_text, text_pane


class IntBox(pn.viewable.Viewer):
    """A labelled integer text box with its one-line message; `value` is the last good number."""

    value = param.Integer(default=0, doc="the last whole number typed that is in range")
    unreadable = param.Dict(default={}, doc='{"value": the message} while the box shows text that '
                            "is not a whole number in range")

    def __init__(self, key: str, label: str, value: int, start: int | None = None,
                 end: int | None = None, **params):
        super().__init__(value=value)
        self.key, self.start, self.end = key, start, end
        self.param.watch(self._forget_unreadable, "value")
        bounds = f"a whole number from {start}" + (f" to {end}" if end is not None else " up")
        self.box = number_box(self, "value", self.read, label=label, description=bounds, **params)
        # The message quotes what was typed: a pane for outside text (app/safe_text.py).
        self.message = text_pane("", visible=False, margin=(0, 10),
                                 styles={"color": "#a30000", "font-size": "0.9em"})
        self.param.watch(self._show_message, "unreadable")

    @property
    def error(self) -> str:
        """The message for what the box shows, '' when it is good."""
        return self.unreadable.get("value", "")

    def __panel__(self):
        return pn.Column(self.box, self.message, margin=0)

    def read(self, text: str) -> int:
        """The number `text` stands for, or ConfigError with the one-line message."""
        value = parse_int(self.key, text)
        check_integer(self.key, value, self.start if self.start is not None else -2**63, self.end)
        return value

    def _forget_unreadable(self, _event) -> None:
        """A value set from code replaces what was typed, and its message."""
        if self.unreadable:
            self.unreadable = {}

    def _show_message(self, _event) -> None:
        self.message.object = md_text(self.error)
        self.message.visible = bool(self.error)


__all__ = ["IntBox"]
