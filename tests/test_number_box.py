"""The sidebar's number boxes (app/number_box.py): typed text, read strictly on the server."""

from __future__ import annotations

import pytest

from app.dashboard import Dashboard


@pytest.mark.parametrize("name, text, allowed, good", [
    ("lr", "nan", "it must be a finite number >= 0 and <= 1e+06", 0.01),
    ("lr", "inf", "it must be a finite number", 0.01),
    ("lr", "1e999", "it must be a finite number", 0.01),
    ("lr", "abc", "it must be a finite number", 0.01),
    ("sigma", "", "it must be a finite number", 0.02),
    ("depth", "1.5", "it must be an integer", 2),          # (2: the default width has 2 layers)
])
def test_a_number_box_refuses_what_is_not_a_number_and_start_refuses_too(name, text, allowed, good):
    """Bokeh's number inputs dropped "nan" in the browser: the old value stayed and Start ran with
    it. The box is text, read on the server: the message names it, the value stays, Start refuses."""
    dash = Dashboard(sync_url=False)
    try:
        before = getattr(dash.state, name)
        dash.inputs[name].value = text
        message = dash.config_alert.object
        assert dash.config_alert.visible and f"{name}={text!r} is not allowed; {allowed}" in message
        assert "\n" not in message
        assert getattr(dash.state, name) == before
        assert dash.inputs[name].value == text                 # the box keeps what was typed
        assert dash._on_start() is None and dash.session.runs == []
        assert f"Not started:** {name}={text!r}" in dash.config_alert.object
        dash.inputs[name].value = str(good)                    # fixed: applied, message gone
        assert getattr(dash.state, name) == good and not dash.config_alert.visible
    finally:
        dash.close()


def test_a_number_box_shows_values_set_from_code_and_they_replace_a_bad_entry():
    dash = Dashboard(sync_url=False)
    try:
        lr, depth = dash.inputs["lr"], dash.inputs["depth"]
        assert (lr.value, depth.value) == ("0.001", "2")
        lr.value = "nan"
        dash.preset.value = "Paper MLP: NP"                    # a preset: its lr, in the box
        assert lr.value == "0.05" and dash.state.unreadable == {} and not dash.config_alert.visible
        depth.value = "x"
        dash.state.set_config({"depth": 2})                    # the same value, set from code
        assert depth.value == "2" and dash.state.error() is None
        dash.state.update_from_query({"seed": "7", "sigma": "0.02"})     # a link
        assert (dash.inputs["seed"].value, dash.inputs["sigma"].value) == ("7", "0.02")
        lr.value = "1e-3"                                      # any spelling of a number
        assert dash.state.lr == 0.001 and lr.value == "1e-3"
    finally:
        dash.close()
