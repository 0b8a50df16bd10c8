"""The sidebar (app/sidebar.py), from the Settings: every setting under its group with its label
and doc, only the ones that matter shown, story mode with the rest under "Advanced", and the
preset's sentence."""

from __future__ import annotations

import pytest

from app.dashboard import Dashboard
from app.state import ConfigState


def test_sidebar_shows_every_setting_under_its_group_with_its_label_and_doc():
    from engine.config import settings

    from app.sidebar import ALL

    dash = Dashboard(sync_url=False)
    try:
        dash.controls.mode.value = ALL          # (story mode, the default, puts most under "Advanced")
        texts = [getattr(o, "object", None) for o in dash.sidebar.objects]
        for name, s in settings().items():
            widget = dash.inputs[name]
            assert widget in dash.sidebar.objects and widget.label == s.label, name
            assert getattr(widget, "description", s.doc) == s.doc, name     # a checkbox has none
            heading = max(i for i, t in enumerate(texts) if isinstance(t, str) and t.startswith("####")
                          and i < dash.sidebar.objects.index(widget))
            assert texts[heading] == f"#### {s.group}", name
        assert dash.inputs["rule"].options["NP-DFA: node perturbation (learned direct B)"] == "np-dfa"
    finally:
        dash.close()


@pytest.mark.parametrize("changes, shown, hidden", [
    ({"rule": "bp"}, ["lr", "train_on_noise"], ["sigma", "feedback_lr", "noise_draws", "weight_decay"]),
    ({"rule": "bp", "train_on_noise": True}, ["sigma"], ["feedback_mode"]),
    ({"rule": "np"}, ["sigma", "feedback_lr", "feedback_normalize", "control_variate", "perturb"],
     ["ridge_gamma", "ridge_forget", "weight_decay", "train_on_noise", "teacher"]),
    ({"rule": "np", "feedback_mode": "ridge"}, ["ridge_gamma", "ridge_relative", "ridge_forget"],
     ["feedback_lr", "feedback_normalize", "control_variate"]),
    ({"rule": "sg"}, ["feedback_lr", "train_on_noise"], ["sigma", "noise_draws", "antithetic"]),
    ({"rule": "kp", "optimizer": "adam"}, ["weight_decay"], ["momentum", "feedback_lr"]),
    ({"dataset": "teacher"}, ["teacher"], []),
])
def test_only_the_settings_that_matter_are_shown(changes, shown, hidden):
    dash = Dashboard(sync_url=False)
    try:
        dash.state.param.update(**changes)
        for name in shown:
            assert dash.inputs[name].visible, name
        for name in hidden:
            assert not dash.inputs[name].visible, name
    finally:
        dash.close()


def test_story_mode_shows_the_lesson_settings_and_keeps_the_rest_bound_under_advanced():
    from app.sidebar import ALL, STORY, STORY_SETTINGS

    dash = Dashboard(sync_url=False)
    try:
        controls = dash.controls
        assert controls.mode.value == STORY                     # the default on first load
        top = dash.sidebar.objects
        assert top[:2] == [controls.mode, controls.preset] and controls.advanced in top
        assert top.index(controls.preset_note) == 2
        for name in STORY_SETTINGS:
            assert dash.inputs[name] in top, name
        assert controls.advanced.collapsed
        rest = [n for n in ConfigState.fields() if n not in STORY_SETTINGS]
        assert controls.advanced.objects == [controls.rest]         # one child: cheap to open and close
        assert all(dash.inputs[n] in controls.rest.objects for n in rest)
        dash.inputs["seed"].value = "5"                          # still bound, under Advanced
        assert dash.state.seed == 5
        controls.mode.value = ALL
        assert controls.advanced not in dash.sidebar.objects
        assert all(dash.inputs[n] in dash.sidebar.objects for n in ConfigState.fields())
        controls.mode.value = STORY
        assert dash.inputs["seed"] in controls.rest.objects and dash.state.seed == 5
        assert dash.inputs["seed"].value == "5"
    finally:
        dash.close()


def test_a_preset_shows_its_sentence_and_a_hand_edit_makes_it_custom():
    from app.presets import PRESET_NOTES

    dash = Dashboard(sync_url=False)
    try:
        name = "1. Feedback alignment: B is random, fixed"
        dash.preset.value = name
        assert PRESET_NOTES[name] in dash.controls.preset_note.object
        assert dash.state.rule == "fa" and not dash.inputs["sigma"].visible      # FA has no noise
        dash.inputs["depth"].value = "3"
        dash.inputs["width"].value = "30"
        assert dash.preset.value == "(custom)"
        assert PRESET_NOTES["(custom)"] in dash.controls.preset_note.object
    finally:
        dash.close()


def test_every_widget_with_a_tooltip_shows_its_settings_plain_doc():
    from engine.config import settings

    dash = Dashboard(sync_url=False)
    try:
        for name, s in settings().items():
            widget = dash.inputs[name]
            if "description" in widget.param:
                assert widget.description == s.doc, name
        assert dash.inputs["rule"].description and dash.inputs["width"].description
    finally:
        dash.close()
