"""The sidebar: a Story / All settings switch, the preset menu, then the settings.

Story mode, the default, is for a lesson on a projector: the story's presets first in the menu,
one sentence under it on what the chosen step shows, then only the few settings a lesson
changes (rule, σ, depth, width, Freeze W); every other setting is in the collapsed "Advanced"
card below them, still there and bound as ever. "All settings" shows every setting grouped as
RunConfig groups them. In both modes the settings that do not apply to the chosen rule, dataset
or model are hidden, and under the rule and dataset menus a line describes the choice.

Every control is bound to the session's `ConfigState` (app/state.py); the dashboard watches that
state, not these widgets. The same widget objects are moved between the two arrangements, so a
mode switch changes nothing but what is in view.
"""

from __future__ import annotations

from typing import Any

import panel as pn
import param
from bokeh.models import Tooltip

from engine.config import applies, settings
from engine.data.registry import DATASETS
from engine.rules import RULES

from app.network_view import CONV_LAYERS
from app.number_box import number_box
from app.presets import preset_note
from app.presets import PRESETS
from app.library import runs_root, save_runs_default
from app.state import ConfigState, read_number, shown_number

STORY, ALL = "Story", "All settings"
MODE_HELP = "Story: the few settings a lesson needs (the rest under Advanced); All settings: every setting, grouped"
# The settings a lesson changes, in the order the story mode shows them.
STORY_SETTINGS = ("rule", "sigma", "depth", "width", "freeze_forward")
# A conv model has its own fixed layers: the MLP's shape settings do not apply to it.
MLP_SHAPE = ("depth", "width")


class SettingsSidebar(pn.viewable.Viewer):
    """The set-up's controls; `layout` is the sidebar column."""

    state = param.ClassSelector(class_=ConfigState, doc="the set-up the controls edit")

    def __init__(self, **params):
        super().__init__(**params)
        self._applying_preset = False
        # The switch's tooltip opens under it, as wide as the sidebar: to its right (Panel's
        # place for it) it lay over the page's title, and the pointer that has just clicked the
        # switch is still there, so it stayed.
        self.mode = pn.widgets.RadioButtonGroup(
            options=[STORY, ALL], value=STORY, color="primary", variant="outline",
            sizing_mode="stretch_width", margin=(10, 10, 4, 10),
            description=Tooltip(content=MODE_HELP, position="bottom",
                                stylesheets=[":host { white-space: normal; max-width: 290px; }"]))
        self.preset = pn.widgets.Select(label="Preset (the paper's set-ups)",
                                        options=["(custom)"] + list(PRESETS), value="(custom)",
                                        sizing_mode="stretch_width",
                                        description="a set-up from the paper in one click; the "
                                                    "numbered ones tell its story in order")
        self.preset_note = pn.pane.Markdown(_note("(custom)"), margin=(0, 10),
                                            styles={"font-size": "0.9em", "color": "#333"},
                                            css_classes=["creditlab-preset-note"])
        self.preset.param.watch(self._on_preset, "value")
        self.inputs: dict[str, Any] = {name: _widget(self.state, name) for name in ConfigState.fields()}
        self.rule_summary = pn.pane.Markdown("", styles={"font-size": "0.9em", "color": "#444"},
                                             margin=(0, 10))
        self.dataset_summary = pn.pane.Markdown("", styles={"font-size": "0.9em", "color": "#444"},
                                                margin=(0, 10))
        # Not a setting of the run (it does not change what the run is): where its record goes.
        self.save_runs = pn.widgets.Checkbox(label=f"Save each run to {runs_root()}/ (from the next Start)",
                                             value=save_runs_default(), css_classes=["creditlab-save-runs"])
        # The card holds one column: Panel's Card hides a collapsed card's children one at a time,
        # and each time the page laid out and repainted every plot (7–11 s of the browser's time
        # for All settings → Story with the settings as its children).
        self.rest = pn.Column(sizing_mode="stretch_width", margin=0)
        self.advanced = pn.Card(self.rest, title="Advanced: every other setting", collapsed=True,
                                sizing_mode="stretch_width", margin=(10, 6),
                                css_classes=["card", "creditlab-advanced"])
        self.layout = pn.Column(width=330, styles={"background": "#f5f7fa", "border-radius": "6px"},
                                scroll=True, max_height=1400, css_classes=["creditlab-sidebar"])
        self._arrange()
        self.mode.param.watch(lambda _event: self._arrange(), "value")

    def _arrange(self) -> None:
        """Lay the controls out for the mode chosen (the same widgets, moved)."""
        # A widget leaves its old container before it joins the new one: a Panel layout cleans
        # up the page models of the objects it drops, and would drop them from under the other.
        head: list[Any] = [self.mode, self.preset, self.preset_note]
        if self.mode.value == ALL:
            self.rest.objects = []
            self.layout.objects = head + self._grouped(settings()) + [self.save_runs]
            return
        story: list[Any] = [_section("The lesson's settings")]
        for name in STORY_SETTINGS:
            story.append(self.inputs[name])
            story.extend(self._summary(name))
        self.layout.objects = head + story
        # the switch closes the Bookkeeping section, the last one
        self.rest.objects = self._grouped([n for n in settings() if n not in STORY_SETTINGS]) + [self.save_runs]
        self.layout.append(self.advanced)

    def _grouped(self, names) -> list[Any]:
        """One section per Setting group, in RunConfig's order (the groups are contiguous
        there); the rule and the dataset are described under their selectors."""
        items: list[Any] = []
        group = None
        for name in names:
            setting = settings()[name]
            if setting.group != group:
                group = setting.group
                items.append(_section(group))
            items.append(self.inputs[name])
            items.extend(self._summary(name))
        return items

    def _summary(self, name: str) -> list[Any]:
        return {"rule": [self.rule_summary], "dataset": [self.dataset_summary]}.get(name, [])

    def __panel__(self):
        return self.layout

    def _on_preset(self, event) -> None:
        self.preset_note.object = _note(event.new)
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
        conv = self.state.model in CONV_LAYERS
        for name, widget in self.inputs.items():
            widget.visible = applies(name, self.state) and not (conv and name in MLP_SHAPE)

    def edited(self) -> None:
        """A setting was edited: unless a preset is being applied, the set-up is no longer that preset."""
        if not self._applying_preset and self.preset.value != "(custom)":
            self.preset.value = "(custom)"


def _section(title: str) -> pn.pane.Markdown:
    return pn.pane.Markdown(f"#### {title}", margin=(8, 10, 0, 10))


def _note(preset: str) -> str:
    return f"*{preset_note(preset)}*"


def _widget(state: ConfigState, name: str):
    """The sidebar control of one setting: its kind from the field's type, its label and tooltip
    (the setting's doc) from its Setting."""
    w, p, s = pn.widgets, state.param[name], settings()[name]
    wide = dict(sizing_mode="stretch_width", description=s.doc)
    if name == "rule":
        return w.Select.from_param(p, label=s.label, options={RULES[r].title: r for r in RULES}, **wide)
    if isinstance(p, param.Selector):
        return w.Select.from_param(p, label=s.label, **wide)
    if isinstance(p, param.Boolean):
        return w.Checkbox.from_param(p, label=s.label)      # (a checkbox has no tooltip)
    if isinstance(p, param.Number):           # param.Integer too
        return number_box(state, name, lambda text: read_number(p, text), shown=shown_number, label=s.label,
                          **wide)
    return w.TextInput.from_param(p, label=s.label, **wide)
