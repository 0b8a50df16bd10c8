"""The one switch to the paper's own NP: the preset's settings are the Fig. 2 rows' (engine/paper.py),
and with them NP's estimate is the paper's plain (L̃ − L) ξ/σ², solved by cumulative ridge."""

import torch

from app.presets import PAPER_ESTIMATOR, PRESETS, preset_config
from engine.paper import fig2


def test_the_fig2_rows_and_the_paper_presets_use_the_paper_s_estimator_and_solver():
    for cfg in (fig2(), preset_config("Learn B only (frozen W)"), preset_config("Paper MLP: NP"),
                preset_config("NP, the paper's estimator (ridge B)")):
        settings = cfg.to_dict()
        assert {k: settings[k] for k in PAPER_ESTIMATOR} == PAPER_ESTIMATOR
    assert PRESETS["NP, the paper's estimator (ridge B)"] == PAPER_ESTIMATOR


def test_under_the_paper_s_settings_np_sends_no_control_variate():
    from engine.trainer import Trainer

    cfg = preset_config("NP, the paper's estimator (ridge B)")
    trainer = Trainer(cfg.__class__.from_dict({**cfg.to_dict(), "steps": 3, "device": "cpu"}))
    result = trainer.rule.compute_gradients(*trainer._next_batch(), trainer.objective)
    assert trainer.rule.predictions(result) is None           # λ̂ = (L̃ − L) ξ/σ², nothing subtracted
    assert all(torch.count_nonzero(b) == 0 for b in trainer.rule.feedback_matrices())   # ridge: B = 0 at first
