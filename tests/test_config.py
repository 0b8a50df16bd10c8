"""RunConfig: every bad value gives one line naming the value and what is allowed."""

import math

import pytest

from engine.config import ConfigError, RunConfig


@pytest.mark.parametrize("change, fragment", [
    ({"rule": "magic"}, "rule='magic' is not allowed; choose one of bp, dfa, fa, kp, np, np-dfa, sg, ss"),
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


def test_widths_expand_one_number_to_every_layer():
    assert RunConfig(depth=3, width=16).widths() == [16, 16, 16]
    assert RunConfig(depth=2, width=[50, 20]).widths() == [50, 20]
