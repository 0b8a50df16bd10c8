"""The story's sentences (app/presets.py, PRESET_NOTES) say only what a run of their preset shows.

Step 0 (pure node perturbation, no B): one draw's estimate of a layer's error, for 50 units
perturbed alone, lies ≈ 83° from the true one (arccos √(2/(πN)) = 83.5°); K draws raise its SNR
only by 10·log₁₀K dB (the error's size falls as √K); the angles stay near 80–90°; the loss falls
more slowly than with a learned B (step 3's run at the same steps), and step 2's learned B takes
the angles to ≈ 1°. (Measured on digits at float32, CPU; the numbers are in the tests.)

Step 2 (W frozen, B learned by node perturbation): the top layer's B becomes Wᵀ, and the hidden
layer's error signal aligns too, while the hidden layer's own B stays far from Wᵀ (its δ, from
the 20-unit layer above, spans only part of B's input space). The sentence once said every
layer's B comes to look like Wᵀ; a run of the preset says otherwise, and this test holds the
sentence to the run.
"""

from __future__ import annotations

import math

import pytest

from app.presets import PRESET_NOTES, STORY, preset_config
from engine.trainer import Trainer

STEP0, STEP1, STEP2, STEP3 = (next(name for name in STORY if name.startswith(n)) for n in ("0.", "1.", "2.", "3."))
STEPS = 5000           # the sentence holds by then (at batch 32 the top layer's maps correlated 0.96 at 4,600)
# The lecture's central moment on a teacher's busy laptop: the dashboard ran step 2 at 85 steps/s
# at load 20, a batch of 256 costs 1.3× a step of 32 (scripts/measure/story_pace.py), so 30 s there
# is ~1,900 steps; the test asks for 1,500.
BUSY_LAPTOP_STEPS = 1500


def _angles(record: dict, key: str) -> list[float]:
    return [layer[key] for layer in record["layers"]]


def _trainer(name: str, steps: int, interval: int, **changes) -> Trainer:
    """A run of preset `name` (with `changes`) that records every `interval` steps."""
    cfg = preset_config(name)
    for key, value in changes.items():
        setattr(cfg, key, value)
    cfg.steps, cfg.metric_interval, cfg.eval_interval = steps, interval, steps
    return Trainer(cfg)


def _run(name: str, steps: int, interval: int, **changes) -> list[dict]:
    records: list[dict] = []
    _trainer(name, steps, interval, **changes).run(on_record=records.append)
    return records


def _mean(values) -> float:
    values = [v for v in values if math.isfinite(v)]
    return sum(values) / len(values)


def test_step_zero_says_what_a_single_estimate_is_and_what_a_learned_b_does():
    note = PRESET_NOTES[STEP0]
    assert preset_config(STEP0).rule == "pnp" and "No B" in note
    for claim in ("≈ 83°", "50 units perturbed alone", "√(2/(πN))", "K draws help only as √K",
                  "Angles stay near 80–90°", "loss falls slower than with a learned B", "≈ 1° in step 2"):
        assert claim in note, claim


def test_step_zero_a_single_estimate_of_50_units_alone_lies_83_degrees_from_the_true_error():
    # One layer perturbed per step (cycle): each layer's estimate alone, at every step.
    records = _run(STEP0, 400, 1, perturb="cycle")
    hidden, top = (_mean(_angles(r, "signal_angle_deg")[i] for r in records) for i in (0, 1))
    formula = math.degrees(math.acos(math.sqrt(2 / (math.pi * 50))))          # 83.5°
    assert abs(hidden - formula) < 1.5, hidden             # measured 83.4° (50 units)
    assert abs(top - math.degrees(math.acos(math.sqrt(2 / (math.pi * 20))))) < 2, top   # 79.4° (20 units: 79.7°)


def test_step_zero_k_draws_help_only_as_the_square_root_of_k():
    # W frozen: the same weights and batches for every K, only the estimate differs.
    snr = {k: [_mean(_angles(r, "estimator_snr_db")[i] for r in _run(STEP0, 200, 10, noise_draws=k,
                                                                       freeze_forward=True)) for i in (0, 1)]
           for k in (1, 16)}
    for one, sixteen in zip(snr[1], snr[16]):
        # 10·log₁₀16 = 12.0 dB: the error's size ÷ 4 = √16 (measured +11.9, +11.8 dB)
        assert abs(sixteen - one - 10 * math.log10(16)) < 1.5, snr


def test_step_zero_angles_stay_near_90_and_the_loss_falls_slower_than_with_a_learned_b():
    trainer, pure = _trainer(STEP0, 3000, 250), []
    start = trainer.evaluate()[0]
    trainer.run(on_record=pure.append)
    learned = _run(STEP3, 3000, 250, seeds=1)
    angles = [a for r in pure for a in _angles(r, "signal_angle_deg")]
    # "Angles stay near 80–90°": measured 85.0–89.5° (50 units), 78.9–82.9° (20 units)
    assert 75 < min(angles) and max(angles) < 93, (min(angles), max(angles))
    # "the loss falls": the test loss from 3.09 at the start to 0.27 by step 3,000 ...
    assert pure[-1]["test_loss"] < start / 5, (start, pure[-1]["test_loss"])
    # "... slower than with a learned B": step 3's NP, 1,000 of its steps with W frozen: 0.14
    assert pure[-1]["test_loss"] > 1.5 * learned[-1]["test_loss"], (pure[-1]["test_loss"], learned[-1]["test_loss"])
    assert pure[-1]["test_accuracy"] < learned[-1]["test_accuracy"] - 0.05      # 59 % against 94 %
    assert max(_angles(learned[-1], "signal_angle_deg")) < 45      # its learned B's errors: 35°, 25°


@pytest.mark.slow
def test_step_zero_a_learned_b_takes_the_angles_to_about_1_degree_in_step_2():
    """Step 2's whole run (100,000 steps of 256, about two minutes): the last signal angles were
    0.93° (hidden) and 0.17° (top); at 20,000 steps 1.9° and 0.4°."""
    last = _run(STEP2, preset_config(STEP2).steps, 10000)[-1]
    hidden, top = _angles(last, "signal_angle_deg")
    assert hidden < 1.3 and top < 0.3, (hidden, top)


def test_step_two_says_the_top_layers_b_becomes_wt_and_the_hidden_layers_does_not():
    note = PRESET_NOTES[STEP2]
    assert "every layer learn" not in note and "top layer's B becomes Wᵀ" in note
    assert "does not look like Wᵀ" in note and "hidden layer's error signal aligns" in note


def test_step_two_top_layer_b_looks_like_wt_within_a_busy_laptops_30_seconds():
    """Seed 0 (the page's) at the paper's batch of 32 reached 17° (maps correlating 0.96) at
    step 4,700: 55 s on a busy laptop. At 256 it does by step ~1,000."""
    assert preset_config(STEP2).seed == 0
    top = [r["layers"][-1] for r in _run(STEP2, BUSY_LAPTOP_STEPS, 50)]
    assert min(layer["weight_angle_deg"] for layer in top) <= 17, top
    # the scale too, not only the angle: ‖Wᵀ − B‖/‖W‖ (ridge from B = 0 starts at 1)
    assert top[-1]["relative_error"] < 0.4, top[-1]


def test_step_two_sentence_against_a_run_of_its_preset():
    records = _run(STEP2, STEPS, 50)      # the first at step 50: 34° in the hidden layer
    first, last = records[0], records[-1]
    w_last = _angles(last, "weight_angle_deg")
    s_first, s_last = _angles(first, "signal_angle_deg"), _angles(last, "signal_angle_deg")
    assert all(math.isfinite(v) for v in w_last + s_last)
    # "the top layer's B becomes Wᵀ"
    assert w_last[-1] < 20, w_last
    # "the hidden layer's error signal aligns too": its signal angle falls a long way
    assert s_last[0] < 20 and s_last[0] < s_first[0] - 15, (s_first, s_last)
    # "though its B does not look like Wᵀ"
    assert w_last[0] > 60, w_last


def test_step_three_np_beats_fa_beyond_seed_noise_from_step_2000():
    """Steps 1 and 3 as the page runs them (4 seeds each): at every evaluation from step 2,000 on,
    NP's worst seed has a lower test loss than FA's best (measured at 2,000 / 2,500 / 3,000:
    NP at most 0.187 / 0.161 / 0.149, FA at least 0.230 / 0.215 / 0.203)."""
    note = PRESET_NOTES[STEP3]
    assert "from step ≈ 2,000 on, NP's test-loss band lies wholly below FA's, beyond seed noise" in note
    assert "Four seeds: a line is their mean, its band their range" in PRESET_NOTES[STEP1]
    bands = {}
    for name in (STEP1, STEP3):
        cfg = preset_config(name)
        cfg.steps, cfg.metric_interval, cfg.eval_interval = 3000, 500, 500
        trainer = Trainer(cfg)
        assert trainer.members == 4
        records: list[dict] = []
        trainer.run(on_record=records.append)
        bands[name] = {r["step"]: [m["test_loss"] for m in r["members"]] for r in records}
    for step in (2000, 2500, 3000):
        fa, np_ = bands[STEP1][step], bands[STEP3][step]
        assert max(np_) < min(fa), (step, np_, fa)
