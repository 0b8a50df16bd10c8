"""The presets (app/presets.py): valid configs, the paper's MLP, and the story's steps first."""

from __future__ import annotations

import pytest

from app.presets import PRESETS, preset_config
from app.state import ConfigState


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_are_valid_configs(name):
    cfg = preset_config(name).validate()
    state = ConfigState()
    state.apply_preset(name)
    assert state.to_config().to_dict() == cfg.to_dict()


def test_paper_presets_use_the_paper_mlp():
    for name in ("Paper MLP: NP", "Paper MLP: FA", "Paper MLP: BP"):
        cfg = preset_config(name)
        assert (cfg.depth, cfg.widths(), cfg.activation, cfg.loss) == (2, [50, 20], "sigmoid", "mse")
    assert preset_config("Learn B only (frozen W)").freeze_forward
    assert preset_config("Noise-only ablation (FA + noise)").train_on_noise


def test_the_story_presets_come_first_in_order_and_every_preset_has_one_sentence():
    from app.presets import PRESET_NOTES, STORY, STORY_B_BATCH

    assert list(PRESETS)[:5] == list(STORY) and [n[:2] for n in STORY] == ["0.", "1.", "2.", "3.", "4."]
    for name in ["(custom)", *PRESETS]:
        note = PRESET_NOTES[name]
        assert note.endswith(".") and "\n" not in note and len(note) < 240, name
    pure, fa, learn_b, np_trains, conv = (preset_config(name) for name in STORY)
    # step 0 is step 3's set-up (network, optimiser, σ, estimator) with the estimate itself training W, no B
    from engine.rules.regression import REGRESSION_OPTIONS

    shared = set(pure.to_dict()) - {"rule", "warmup_steps", "feedback_lr", "seeds", *REGRESSION_OPTIONS}
    assert pure.rule == "pnp" and not pure.warmup_steps
    assert {k: pure.to_dict()[k] for k in shared} == {k: np_trains.to_dict()[k] for k in shared}
    assert fa.rule == "fa" and fa.seeds == np_trains.seeds == 4       # bands: NP against FA beyond seed noise
    # step 2 is the paper's Fig. 2 set-up, but for a batch 8× the paper's (B forms in seconds)
    assert {**learn_b.to_dict(), "batch_size": 32} == preset_config("Learn B only (frozen W)").to_dict()
    assert learn_b.freeze_forward and learn_b.batch_size == STORY_B_BATCH == 256
    assert np_trains.to_dict() == {**preset_config("Paper MLP: NP").to_dict(), "seeds": 4}
    assert conv.model == "conv-small" and conv.dataset == "digits" and conv.rule == "np"
