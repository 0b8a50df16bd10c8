"""RunConfig: every bad value gives one line naming the value and what is allowed."""

import math

import pytest

from engine.errors import ConfigError
from engine.config import RunConfig, rule_options, settings


@pytest.mark.parametrize("change, fragment", [
    ({"rule": "magic"}, "rule='magic' is not allowed; choose one of bp, dfa, fa, kp, np, np-dfa, pnp, sg, ss, wm"),
    ({"dataset": "imagenet"}, "dataset='imagenet' is not allowed"),
    ({"depth": 0}, "depth=0 is not allowed; it must be an integer >= 1"),
    ({"width": 0}, "width=0 is not allowed"),
    ({"width": [50, 0]}, "width=0 is not allowed"),
    ({"width": [50, 20, 10]}, "width has 3 entries but depth is 2"),
    ({"activation": "gelu"}, "activation='gelu' is not allowed"),
    ({"sigma": 0.0}, "sigma=0.0 is not allowed for rule 'np'"),
    ({"sigma": -0.1}, "sigma=-0.1 is not allowed"),
    ({"lr": math.nan}, "lr=nan is not allowed; it must be a finite number >= 0"),
    ({"lr": math.inf}, "lr=inf is not allowed"),
    ({"lr": -1.0}, "lr=-1.0 is not allowed"),
    ({"feedback_lr": -0.1}, "feedback_lr=-0.1 is not allowed"),
    ({"steps": 0}, "steps=0 is not allowed"),
    ({"batch_size": 0}, "batch_size=0 is not allowed"),
    ({"momentum": 1.0}, "momentum=1.0 is not allowed; it must be a finite number >= 0 and < 1"),
    ({"device": "tpu"}, "device='tpu' is not allowed"),
    ({"ridge_forget": 0.0}, "ridge_forget=0.0 is not allowed"),
    ({"dataset": "teacher", "loss": "ce"}, "loss='ce' is not allowed for dataset 'teacher'"),
    ({"depth": True}, "depth=True is not allowed"),
])
def test_bad_values_raise_one_line(change, fragment):
    with pytest.raises(ConfigError) as err:
        RunConfig(**change).validate()
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_sigma_zero_is_fine_for_rules_without_noise_but_not_for_the_noise_ablation():
    RunConfig(rule="fa", sigma=0.0).validate()
    with pytest.raises(ConfigError, match="sigma=0.0 is not allowed for rule 'fa'"):
        RunConfig(rule="fa", sigma=0.0, train_on_noise=True).validate()


def test_json_round_trip_and_unknown_keys():
    cfg = RunConfig(rule="fa", width=[30, 20], sigma=0.2)
    assert RunConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ConfigError, match="unknown setting 'colour'"):
        RunConfig.from_dict({"colour": "red"})
    # a rule's own settings may come nested under "options" (as RunConfig holds them): checked alike
    assert RunConfig.from_dict({"options": {"noise_draws": 2}}).noise_draws == 2
    with pytest.raises(ConfigError, match="unknown setting 'colour'"):
        RunConfig.from_dict({"options": {"colour": "red"}})
    with pytest.raises(ConfigError, match=r"^options=5 is not allowed; it must be an object of settings by name$"):
        RunConfig.from_dict({"options": 5})
    assert RunConfig(rule="np", noise_draws=3) == RunConfig(rule="np", options={"noise_draws": 3})
    assert RunConfig(rule="fa") == RunConfig(rule="fa", noise_draws=1)      # a default, given or not


def test_widths_expand_one_number_to_every_layer():
    assert RunConfig(depth=3, width=16).widths() == [16, 16, 16]
    assert RunConfig(depth=2, width=[50, 20]).widths() == [50, 20]


# ------------------------------------------------------------ one declaration per setting
def test_every_field_declares_its_setting_and_the_cli_is_derived_from_it():
    from engine.cli.parser import build_parser
    from engine.config import LIVE_FIELDS, settings

    table = settings()
    assert sorted(table) == sorted(RunConfig().to_dict()) and set(rule_options()) < set(table)
    # the rules' own settings sit with the other feedback settings, before the bookkeeping ones
    groups = [s.group for s in table.values()]
    assert groups == sorted(groups, key=["Network", "Forward weights", "Noise and feedback", "Bookkeeping"].index)
    assert {s.group for s in table.values()} == {"Network", "Forward weights", "Noise and feedback",
                                                 "Bookkeeping"}
    assert LIVE_FIELDS == tuple(n for n, s in table.items() if s.live) == ("lr", "sigma", "feedback_lr")
    train = next(a for a in build_parser()._subparsers._group_actions[0].choices.values()
                 if a.prog.endswith("train"))
    helps = {a.dest: a.help for a in train._actions}
    for name, s in table.items():
        assert s.doc and s.label, name
        on_by_default = getattr(RunConfig(), name) is True
        assert (s.off if on_by_default else s.doc) in helps[name], name


@pytest.mark.parametrize("name", [n for n in RunConfig().to_dict()])
def test_validate_checks_every_field_from_its_setting(name):
    from engine.config import choices_of, settings

    s, default = settings()[name], getattr(RunConfig(), name)
    if choices_of(name) is not None:
        bad = "no-such-value"
    elif isinstance(default, bool):
        bad = "yes"
    elif s.low is not None:
        bad = type(default)(s.low) - 1
    else:
        bad = "abc"
    with pytest.raises(ConfigError, match=f"^{name}="):
        RunConfig(**{name: bad}).validate()


BOUNDED = [name for name, s in settings().items() if s.high is not None]


@pytest.mark.parametrize("name", BOUNDED)
def test_validate_refuses_values_above_each_settings_bound(name):
    s, default = settings()[name], getattr(RunConfig(), name)
    too_big = int(s.high) + 1 if isinstance(default, int) else s.high * 10
    with pytest.raises(ConfigError, match=f"^{name}="):
        RunConfig.from_dict({name: too_big}).validate()
    if name != "width" and not s.high_open:  # the widest layer alone is past the size bound
        RunConfig.from_dict({name: type(default)(s.high)}).validate()


def test_a_network_too_big_for_memory_is_refused_before_it_is_built():
    with pytest.raises(ConfigError, match="weights"):
        RunConfig(width=60000, depth=5).validate()
    RunConfig(width=1024, depth=6).validate()                # the UI's largest MLP is fine
