"""The sidebar: a preset menu, then one control per RunConfig setting, grouped as RunConfig groups them.

Every control is bound to the session's `ConfigState` (app/state.py); the dashboard watches that
state, not these widgets. Under the rule and dataset menus a line describes the choice, and only
the settings that apply to it are shown.
"""

from __future__ import annotations

from typing import Any

import panel as pn
import param

from engine.config import ConfigError, applies, settings
from engine.data import DATASETS
from engine.rules import RULES

from app.state import PRESETS, ConfigState, read_number


class SettingsSidebar(pn.viewable.Viewer):
    """The set-up's controls; `layout` is the sidebar column."""

    state = param.ClassSelector(class_=ConfigState, doc="the set-up the controls edit")

    def __init__(self, **params):
        super().__init__(**params)
        self._applying_preset = False
        self.preset = pn.widgets.Select(label="Preset (the paper's set-ups)",
                                        options=["(custom)"] + list(PRESETS), value="(custom)")
        self.preset.param.watch(self._on_preset, "value")
        self.inputs: dict[str, Any] = {name: _widget(self.state, name) for name in ConfigState.fields()}
        self.rule_summary = pn.pane.Markdown("", styles={"font-size": "0.9em", "color": "#444"},
                                             margin=(0, 10))
        self.dataset_summary = pn.pane.Markdown("", styles={"font-size": "0.9em", "color": "#444"},
                                                margin=(0, 10))
        self.layout = self._build_layout()

    def _build_layout(self) -> pn.Column:
        section = lambda title: pn.pane.Markdown(f"#### {title}", margin=(8, 10, 0, 10))  # noqa: E731
        # One section per Setting group, in RunConfig's order (the groups are contiguous there);
        # the rule and the dataset are described under their selectors.
        items: list[Any] = [self.preset]
        group = None
        for name, setting in settings().items():
            if setting.group != group:
                group = setting.group
                items.append(section(group))
            items.append(self.inputs[name])
            items.extend({"rule": [self.rule_summary], "dataset": [self.dataset_summary]}.get(name, []))
        return pn.Column(*items, width=330, styles={"background": "#f5f7fa", "border-radius": "6px"},
                         scroll=True, max_height=1400)

    def __panel__(self):
        return self.layout

    def _on_preset(self, event) -> None:
        if event.new in PRESETS:
            self._applying_preset = True
            try:
                self.state.apply_preset(event.new)
            finally:
                self._applying_preset = False

    def describe(self) -> None:
        """Describe the rule and the dataset chosen, and show only the settings that matter to them."""
        rule = RULES.get(self.state.rule)
        self.rule_summary.object = f"*{rule.summary}*" if rule else ""
        spec = DATASETS.get(self.state.dataset)
        self.dataset_summary.object = f"*{spec.description}*" if spec else ""
        for name, widget in self.inputs.items():
            widget.visible = applies(name, self.state)

    def edited(self) -> None:
        """A setting was edited: unless a preset is being applied, the set-up is no longer that preset."""
        if not self._applying_preset and self.preset.value != "(custom)":
            self.preset.value = "(custom)"


def _widget(state: ConfigState, name: str):
    """The sidebar control of one setting: its kind from the field's type, its label and tooltip
    (the setting's doc) from its Setting."""
    w, p, s = pn.widgets, state.param[name], settings()[name]
    wide = dict(sizing_mode="stretch_width")
    if name == "rule":
        return w.Select.from_param(p, label=s.label, options={RULES[r].title: r for r in RULES}, **wide)
    if isinstance(p, param.Selector):
        return w.Select.from_param(p, label=s.label, **wide)
    if isinstance(p, param.Boolean):
        return w.Checkbox.from_param(p, label=s.label)
    if isinstance(p, param.Number):           # param.Integer too
        return number_box(state, name, label=s.label, description=s.doc, **wide)
    return w.TextInput.from_param(p, label=s.label, **wide)


def number_box(state: ConfigState, name: str, **params) -> pn.widgets.TextInput:
    """A text box bound to number setting `name` of `state`, read on the server.

    Bokeh's number inputs drop what they cannot read ("nan", "inf", "1e999", "abc") in the browser
    and send nothing, so the old value stayed while the box seemed to take the new one. Here every
    entry (on Enter or leaving the box) goes to `state.set_text`: a number (the CLI's strict
    parsers, finite) sets the setting as a typed value always did, live ones reaching a running
    run; anything else keeps the value, is named in `state.unreadable` (the one-line message) and
    makes Start refuse, while the box keeps what was typed. A value set from code (a preset, a
    link) shows in the box and replaces what was typed."""
    box = pn.widgets.TextInput(value=state.text(name), **params)
    showing = False

    def typed(event) -> None:
        if not showing:
            state.set_text(name, event.new)

    def show(*_events) -> None:
        nonlocal showing
        if name in state.unreadable:          # keep the text the message names
            return
        try:
            if read_number(state.param[name], box.value) == getattr(state, name):
                return                        # "1e-3" for 0.001: leave the user's spelling
        except ConfigError:
            pass
        showing = True
        try:
            box.value = state.text(name)
        finally:
            showing = False

    box.param.watch(typed, "value")
    state.param.watch(show, [name, "unreadable"])
    return box
