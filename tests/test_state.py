"""The dashboard's settings (app/state.py) without a browser: every RunConfig field, the
config ↔ URL round trip, values a link cannot give, and the one-line message of a bad value."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlparse

import pytest

from engine.config import RunConfig, rule_options, settings
from engine.rules import RULES

from app.dashboard import Dashboard
from app.state import ConfigState, parse_width


def test_state_covers_every_runconfig_field():
    assert ConfigState.fields() == list(settings()) and set(rule_options()) < set(settings())
    for name in ConfigState.fields():
        assert name in ConfigState.param


def test_url_round_trip_reproduces_the_config():
    cfg = RunConfig(rule="fa", depth=3, width=[30, 20, 10], activation="tanh", sigma=0.02, lr=0.05,
                    seed=7, freeze_forward=True, feedback_mode="ridge", steps=1234)
    state = ConfigState()
    state.set_config(cfg)
    url = "http://localhost:5006/app?" + urlencode(state.to_query())
    query = {k: v[-1] for k, v in parse_qs(urlparse(url).query).items()}
    restored = ConfigState()
    assert restored.update_from_query(query) == []
    assert restored.to_config().to_dict() == cfg.to_dict()


def test_url_with_a_few_settings_keeps_the_rest_at_defaults():
    state = ConfigState()
    state.update_from_query({"rule": "dfa", "depth": "3", "width": "40", "sigma": "0.05"})
    cfg = state.to_config()
    assert (cfg.rule, cfg.depth, cfg.width, cfg.sigma) == ("dfa", 3, 40, 0.05)
    assert cfg.lr == RunConfig().lr


def test_unreadable_url_values_are_reported_not_applied():
    state = ConfigState()
    bad = state.update_from_query({"depth": "abc", "freeze_forward": "maybe", "seed": "3"})
    assert sorted(bad) == ["depth", "freeze_forward"]
    assert state.seed == 3 and state.depth == 2
    # garbage a widget cannot show is refused too: an unknown choice, a control character,
    # a number that overflows; a readable but bad value (steps=-1) is applied, then named
    bad = state.update_from_query({"width": "abc", "rule": "%00", "model": "\x00", "steps": "-1",
                                   "sigma": "1e999", "depth": "٣", "lr": "1_0"})
    assert sorted(bad) == ["depth", "lr", "model", "rule", "sigma"]   # read as the CLI reads them
    assert state.rule == "np" and state.sigma == 0.01 and state.steps == -1
    assert "steps=-1" in state.error() or "width='abc'" in state.error()


def test_rule_choices_come_from_the_registry():
    assert list(ConfigState.param.rule.objects) == list(RULES)
    dash = Dashboard(sync_url=False)
    try:
        assert sorted(dash.inputs["rule"].values) == sorted(RULES)
    finally:
        dash.close()


def test_the_validation_splits_are_the_clis_not_the_dashboards(monkeypatch):
    """fashion-mnist-val and mnist-val are for the report's lr search: the CLI takes them, the
    dashboard's menu does not offer them, and a link naming one gets the one-line refusal."""
    import panel as pn

    from engine.config import choices_of

    searches = {"fashion-mnist-val", "mnist-val"}
    assert searches <= set(choices_of("dataset"))                  # the CLI keeps them
    assert RunConfig(dataset="mnist-val").validate().dataset == "mnist-val"
    assert not searches & set(ConfigState.param.dataset.objects)
    assert ConfigState().update_from_query({"dataset": "mnist-val"}) == ["dataset"]
    monkeypatch.setattr(type(pn.state), "session_args", property(lambda self: {"dataset": [b"fashion-mnist-val"]}))
    dash = Dashboard(sync_url=True)
    try:
        assert not searches & set(dash.inputs["dataset"].values)
        assert dash.state.dataset == "digits"
        alert = dash.config_alert.object
        assert dash.config_alert.visible and "dataset='fashion-mnist-val'" in alert and "\n" not in alert
    finally:
        dash.close()


@pytest.mark.parametrize("changes, words", [
    ({"width": "abc"}, "width='abc' is not allowed"),
    ({"width": "50,20,10"}, "width has 3 entries but depth is 2"),
    ({"sigma": 0.0, "rule": "np"}, "sigma=0.0 is not allowed for rule 'np'"),
    ({"lr": -0.1}, "lr=-0.1 is not allowed"),
    ({"depth": 0}, "depth=0 is not allowed"),
    ({"rule": "nonsense"}, "rule='nonsense' is not allowed"),
])
def test_bad_values_give_the_one_line_message(changes, words):
    state = ConfigState()
    state.param.update(**changes)
    message = state.error()
    assert message is not None and words in message and "\n" not in message


def test_parse_width():
    assert parse_width("50") == 50
    assert parse_width(" 50, 20 ") == [50, 20]
    for bad in ("", "abc", "50,,20", "5.5"):
        with pytest.raises(Exception, match="width="):
            parse_width(bad)
