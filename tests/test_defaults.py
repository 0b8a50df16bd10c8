"""Every set-up the dashboard reaches trains at its defaults without diverging.

A grid of rule × model × dataset × depth × width, each for a short run (the divergences this
guards against appeared within the first 10–60 steps), every other setting at RunConfig's
default.
"""

from __future__ import annotations

import pytest
import torch

from engine.config import RunConfig
from engine.data.registry import load_dataset
from engine.rules import RULES
from engine.trainer import Trainer

pytestmark = pytest.mark.slow

MLP_SHAPES = [(1, 8), (2, 256), (3, 256), (6, 8), (1, 1024), (6, 1024)]
_DATA: dict = {}


def _data(name: str):
    if name not in _DATA:
        _DATA[name] = load_dataset(name, RunConfig(dataset=name))
    return _DATA[name]


def _trains(steps: int, **kw) -> None:
    cfg = RunConfig(steps=steps, metric_interval=steps // 2, eval_interval=steps, **kw)
    trainer = Trainer(cfg, dataset=_data(cfg.dataset))
    assert trainer.run() == "finished", kw                 # DivergedError would fail the test
    assert torch.isfinite(torch.tensor(trainer.summary()["test_loss"])), kw


@pytest.mark.parametrize("rule", list(RULES))
def test_every_rule_trains_mlps_of_every_depth_and_width_at_the_defaults(rule):
    for depth, width in MLP_SHAPES:
        _trains(100, rule=rule, depth=depth, width=width)


@pytest.mark.parametrize("rule", list(RULES))
def test_every_rule_trains_the_autoencoder_and_the_conv_net_at_the_defaults(rule):
    for depth, width in ((1, 8), (3, 256)):
        _trains(60, rule=rule, model="autoencoder", dataset="mnist", depth=depth, width=width)
    _trains(40, rule=rule, model="conv-small", dataset="digits")
    _trains(40, rule=rule, dataset="teacher", depth=2, width=256)
