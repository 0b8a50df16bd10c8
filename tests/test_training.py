"""Whole runs through the Trainer: convergence claims, determinism, live control, divergence.

The bounds below were measured on the CPU (torch 2.13, float32) and are stated next to each
assertion with the value we saw, so a regression shows up as a clear margin change.
"""

import math

import pytest
import torch

from engine import ConfigError, DivergedError, RunConfig, Trainer
from engine.stream import RecordBuffer, flatten_record


def history(trainer, key="weight_angle_deg"):
    rows = []
    trainer.subscribe(lambda r: rows.append([layer[key] for layer in r["layers"]]))
    return rows


def frozen_teacher(rule="np", **kw):
    base = dict(rule=rule, dataset="teacher", teacher="linear", activation="linear", depth=1,
                width=20, freeze_forward=True, sigma=0.01, feedback_mode="ridge", steps=2000,
                metric_interval=500, eval_interval=2000)
    return RunConfig(**{**base, **kw})


def test_np_learned_feedback_converges_to_W_transposed_with_frozen_forward_weights():
    t = Trainer(frozen_teacher())
    w_before = [layer.weight.detach().clone() for layer in t.model.layers]
    angles = history(t)
    t.run()
    for layer, w in zip(t.model.layers, w_before):
        assert torch.equal(layer.weight, w)                     # forward weights really frozen
    top = [a[0] for a in angles]
    assert top[0] > top[-1]
    assert top[-1] < 8.0, top                # measured 8.3° → 5.0° over 2000 steps (ridge, σ=0.01)


def test_np_two_hidden_layers_both_feedback_matrices_align():
    t = Trainer(frozen_teacher(depth=2, width=[10, 10], steps=4000, metric_interval=1000,
                               eval_interval=4000))
    angles = history(t)
    t.run()
    lower, top = zip(*angles)
    assert top[-1] < 4.0, top                # measured 3.8° → 1.9°
    assert lower[-1] < 0.9 * lower[0] and lower[-1] < 30.0, lower   # measured 24° → 21°


def test_np_with_sgd_feedback_learning_also_aligns():
    t = Trainer(frozen_teacher(feedback_mode="sgd"))       # the default normalised step
    angles = history(t)
    t.run()
    assert angles[-1][0] < 25.0, angles      # from a random B (≈ 90°); measured ≈ 17° plateau


def test_sg_oracle_with_exact_targets_recovers_W_transposed():
    t = Trainer(frozen_teacher(rule="sg", steps=200, metric_interval=100, eval_interval=200))
    angles = history(t)
    t.run()
    assert angles[-1][0] < 0.5, angles       # noise-free regression target: essentially exact


def digits_run(rule, steps=1500, **kw):
    cfg = RunConfig(rule=rule, dataset="digits", steps=steps, metric_interval=steps,
                    eval_interval=steps, **kw)
    t = Trainer(cfg)
    t.run()
    return t.summary()


def test_on_digits_np_signal_angle_is_clearly_below_fa():
    fa = digits_run("fa")
    np_ = digits_run("np")
    fa_mean = sum(layer["signal_angle_deg"] for layer in fa["layers"]) / len(fa["layers"])
    np_mean = sum(layer["signal_angle_deg"] for layer in np_["layers"]) / len(np_["layers"])
    assert np_mean < fa_mean - 10.0, (np_mean, fa_mean)     # measured ≈ 20° vs ≈ 43°
    assert np_["test_accuracy"] > 0.8


def test_same_seed_gives_identical_metric_history():
    def rows(seed):
        t = Trainer(RunConfig(rule="np", steps=120, metric_interval=20, eval_interval=60, seed=seed))
        buf = RecordBuffer()
        t.subscribe(buf.push)
        t.run()
        return [{k: v for k, v in flatten_record(r).items() if k != "time"} for r in buf.records()]

    a, b, c = rows(3), rows(3), rows(4)
    assert len(a) == 6
    assert _same(a, b)
    assert not _same(a, c)


def _same(a, b):
    def eq(x, y):
        return (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)) or x == y
    return all(r.keys() == s.keys() and all(eq(r[k], s[k]) for k in r) for r, s in zip(a, b))


@pytest.mark.parametrize("rule", ["np", "fa", "sg"])
def test_measuring_alignment_does_not_change_training(rule):
    def final_weights(metric_interval):
        t = Trainer(RunConfig(rule=rule, steps=60, metric_interval=metric_interval, eval_interval=7))
        t.run()
        return [p.detach().clone() for p in t.model.parameters()] + \
               [b.detach().clone() for b in t.rule.feedback_matrices()]

    for a, b in zip(final_weights(1), final_weights(10**6)):
        assert torch.equal(a, b)


def test_sigma_and_learning_rates_change_live_and_are_recorded():
    t = Trainer(RunConfig(rule="np", steps=100, metric_interval=10))
    records = []
    t.subscribe(records.append)
    t.run(steps=20)
    t.set(sigma=0.05, lr=0.02, feedback_lr=0.001)
    t.run(steps=20)
    assert [r["sigma"] for r in records] == [0.01, 0.01, 0.05, 0.05]
    assert t.optimizer.param_groups[0]["lr"] == 0.02
    assert records[-1]["feedback_lr"] == 0.001


@pytest.mark.parametrize("change, message", [
    ({"sigma": 0.0}, "sigma=0.0 is not allowed for rule 'np'"),
    ({"lr": float("nan")}, "lr=nan is not allowed"),
    ({"feedback_lr": -1.0}, "feedback_lr=-1.0 is not allowed"),
    ({"depth": 3}, "'depth' cannot change during a run"),
])
def test_bad_live_changes_are_refused_with_one_line(change, message):
    t = Trainer(RunConfig(rule="np", steps=10))
    with pytest.raises(ConfigError) as err:
        t.set(**change)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert t.cfg.sigma == 0.01 and t.cfg.lr == RunConfig().lr


def test_a_diverging_run_stops_and_names_the_step():
    t = Trainer(RunConfig(rule="bp", optimizer="sgd", lr=1e4, momentum=0.0, steps=500, metric_interval=50))
    with pytest.raises(DivergedError) as err:
        t.run()
    assert t.status == "diverged"
    assert 1 <= err.value.step <= t.step_count <= 50
    assert f"at step {err.value.step}; lower lr (now 10000)" in str(err.value)   # says what to lower


def test_warmup_freezes_forward_weights_then_releases_them():
    t = Trainer(RunConfig(rule="np", warmup_steps=5, steps=10))
    w0 = t.model.layers[0].weight.detach().clone()
    b0 = t.rule.feedback_matrices()[0].clone()
    for _ in range(5):
        t.step()
    assert torch.equal(t.model.layers[0].weight, w0)
    assert not torch.equal(t.rule.feedback_matrices()[0], b0)        # B learns meanwhile
    t.step()
    assert not torch.equal(t.model.layers[0].weight, w0)


def test_records_and_matrices_reach_every_subscriber():
    t = Trainer(RunConfig(rule="np", depth=2, width=[12, 8], steps=50, metric_interval=25))
    plain, with_matrices = [], []
    t.subscribe(plain.append)
    t.subscribe(with_matrices.append, matrices=True)
    t.run()
    assert [r["step"] for r in plain] == [25, 50]
    assert "matrices" not in plain[0]
    mats = with_matrices[-1]["matrices"]
    assert [m["B"].shape for m in mats] == [(12, 8), (8, 10)]
    assert [m["WT"].shape for m in mats] == [(12, 8), (8, 10)]
    assert mats[0]["B"].dtype.name == "float32"
    torch.testing.assert_close(torch.from_numpy(mats[1]["WT"]), t.model.layers[2].weight.detach().T)


def test_record_buffer_is_bounded_and_keeps_the_whole_span():
    buf = RecordBuffer(capacity=100)
    for step in range(1, 1001):
        buf.push({"step": step, "layers": []})
    held = buf.records()
    assert len(held) <= 100
    assert held[0]["step"] == 1 and held[-1]["step"] == 1000       # decimated, not truncated
    new, cursor = buf.since(995)
    assert [r["step"] for r in new] == [996, 997, 998, 999, 1000] and cursor == 1000
    assert buf.since(cursor) == ([], 1000)


def test_cuda_is_refused_with_one_line_when_absent():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ConfigError, match="no CUDA device is available"):
        Trainer(RunConfig(device="cuda"))


@pytest.mark.gpu
def test_training_on_cuda_matches_the_cpu_closely():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    cfg = dict(rule="np", steps=200, metric_interval=100)
    cpu, gpu = Trainer(RunConfig(device="cpu", **cfg)), Trainer(RunConfig(device="cuda", **cfg))
    cpu.run()
    gpu.run()
    assert abs(cpu.summary()["test_accuracy"] - gpu.summary()["test_accuracy"]) < 0.1
