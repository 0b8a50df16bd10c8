"""The one number box of the page: text, read on the server (the sidebar's settings, the sweep
form's integers through app/int_box.py).

Bokeh's number inputs drop what they cannot read ("nan", "inf", "1e999", "abc", "2.5" for an
integer) or clamp what is out of range in the browser and send nothing, so the old value stayed
while the box seemed to take the new one. Here every entry (on Enter or leaving the box) is read on
the server by the grammar the CLI and a link use (engine/values.py): a number sets the parameter;
anything else keeps its value and puts the one-line message in the owner's `unreadable`, which
makes its form refuse to start, while the box keeps what was typed. A value set from code (a
preset, a link) shows in the box and replaces what was typed.
"""

from __future__ import annotations

from typing import Any, Callable

import panel as pn
import param

from engine.errors import ConfigError


def number_box(owner: param.Parameterized, name: str, read: Callable[[str], Any],
               shown: Callable[[Any], str] = str, **params) -> pn.widgets.TextInput:
    """A text box bound to number parameter `name` of `owner`; `read` turns text into the number
    or raises ConfigError with the one-line message, `shown` the number into text. `owner` has an
    `unreadable` dict parameter (parameter name → message) and forgets a name's entry when that
    name is set from code."""
    box = pn.widgets.TextInput(value=shown(getattr(owner, name)), **params)
    showing = False

    def typed(event) -> None:
        if showing:
            return
        try:
            value = read(event.new)
        except ConfigError as exc:
            owner.unreadable = {**owner.unreadable, name: str(exc)}
            return
        rest = {k: v for k, v in owner.unreadable.items() if k != name}
        owner.param.update(unreadable=rest, **{name: value})

    def show(*_events) -> None:
        nonlocal showing
        if name in owner.unreadable:          # keep the text the message names
            return
        try:
            if read(box.value) == getattr(owner, name):
                return                        # "1e-3" for 0.001: leave the user's spelling
        except ConfigError:
            pass
        showing = True
        try:
            box.value = shown(getattr(owner, name))
        finally:
            showing = False

    box.param.watch(typed, "value")
    owner.param.watch(show, [name, "unreadable"])
    return box


__all__ = ["number_box"]
