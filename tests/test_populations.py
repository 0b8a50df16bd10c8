"""A population of P members is P runs: member k equals the single run of seed + k.

Trained side by side in one batched step, each member must take exactly the steps its own run
takes: the same initial weights and feedback, batches, noise, regression of B, optimiser state
and metrics. At float64 the batched products agree with the single ones to rounding.
"""

import dataclasses
import functools
import math

import pytest
import torch

from engine.config import RunConfig
from engine.data.registry import load_dataset
from engine.errors import ConfigError
from engine.members import split
from engine.trainer import Trainer

pytestmark = pytest.mark.usefixtures("float64")

P, SEED, STEPS = 3, 11, 12

CASES = {
    "bp": {}, "fa": {}, "dfa": {}, "ss": {},
    "ss brsf": {"rule": "ss", "options": {"ss_variant": "brsf"}},
    "ss usf": {"rule": "ss", "options": {"ss_variant": "usf"}},
    "wm": {}, "wm conv": {"rule": "wm", "model": "conv-small", "options": {"mirror_lr": 0.05}},
    "kp": {"optimizer": "sgd", "lr": 0.05},
    "sg": {}, "sg ridge": {"rule": "sg", "feedback_mode": "ridge", "ridge_relative": True},
    "np": {}, "np ridge": {"rule": "np", "feedback_mode": "ridge", "ridge_forget": 0.99},
    "np plain step": {"rule": "np", "feedback_normalize": False, "control_variate": False,
                      "feedback_lr": 0.1},
    "np K draws, antithetic": {"rule": "np", "noise_draws": 3, "antithetic": True},
    "np cycle": {"rule": "np", "perturb": "cycle"},
    "np-dfa": {}, "np-dfa ridge": {"rule": "np-dfa", "feedback_mode": "ridge"},
    "fa on noise": {"rule": "fa", "train_on_noise": True},
    "np autoencoder": {"rule": "np", "model": "autoencoder", "depth": 3, "width": [20, 4, 20]},
    "np warm-up": {"rule": "np", "warmup_steps": 5},
    "np conv": {"rule": "np", "model": "conv-small", "activation": "tanh"},
    "np conv ridge": {"rule": "np", "model": "conv-small", "feedback_mode": "ridge", "activation": "tanh"},
    "sg conv": {"rule": "sg", "model": "conv-small", "activation": "tanh"},
    "fa conv": {"rule": "fa", "model": "conv-small"},
    "kp conv": {"rule": "kp", "model": "conv-small", "optimizer": "sgd", "lr": 0.05},
    "dfa conv": {"rule": "dfa", "model": "conv-small"},
    "np-dfa cifar net, dropout": {"rule": "np-dfa", "model": "conv-cifar", "batch_size": 4},
    "pnp": {}, "pnp K draws, antithetic": {"rule": "pnp", "noise_draws": 3, "antithetic": True},
    "pnp cycle": {"rule": "pnp", "perturb": "cycle"},
    "pnp conv": {"rule": "pnp", "model": "conv-small", "activation": "tanh"},
}


def _config(name: str, **overrides) -> RunConfig:
    settings = {"rule": name.split()[0], "dataset": "digits", "depth": 2, "width": [24, 16],
                "batch_size": 8, "steps": STEPS, "metric_interval": 4, "eval_interval": 8,
                "device": "cpu", **CASES[name], **overrides}
    return RunConfig(**settings)


@functools.cache
def _digits():
    data = load_dataset("digits")
    return dataclasses.replace(data, x_train=data.x_train.double(), x_test=data.x_test.double())


def _train(cfg: RunConfig) -> tuple[Trainer, list[dict]]:
    trainer = Trainer(cfg, dataset=_digits())
    records = [r for r in (trainer.step() for _ in range(cfg.steps)) if r is not None]
    return trainer, records


def _close(a, b, what: str) -> None:
    assert a.shape == b.shape, what
    assert torch.allclose(a, b, rtol=1e-9, atol=1e-12), f"{what}: differs by {(a - b).abs().max():.3g}"


def _same_number(a: float, b: float, what: str) -> None:
    """Equal to rounding; an angle of ~1e-7° between two identical errors is rounding too."""
    assert (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-7, abs_tol=1e-5), \
        f"{what}: {a} against {b}"


SLOW = {"np-dfa cifar net, dropout"}     # two 2048-wide layers at float64: a minute


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in CASES])
def test_member_k_is_the_single_run_of_seed_plus_k(name):
    population, pop_records = _train(_config(name, seed=SEED, seeds=P))
    for k in range(P):
        single, records = _train(_config(name, seed=SEED + k))
        for (pname, p), (sname, s) in zip(population.model.named_parameters(), single.model.named_parameters()):
            _close(split(p.detach(), P)[k], s.detach(), f"member {k}'s {pname}")
        for i, (b, s) in enumerate(zip(population.rule.feedback_matrices(), single.rule.feedback_matrices())):
            _close(split(b.detach(), P)[k], s.detach(), f"member {k}'s feedback {i + 1}")
        assert len(pop_records) == len(records)
        for pr, r in zip(pop_records, records):
            member = pr["members"][k]
            assert member["seed"] == SEED + k
            for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy"):
                _same_number(member[key], r[key], f"member {k}'s {key} at step {r['step']}")
            for i, (mine, theirs) in enumerate(zip(member["layers"], r["layers"])):
                for key, value in theirs.items():
                    _same_number(mine[key], value, f"member {k}'s layer {i + 1} {key} at step {r['step']}")


def test_a_population_record_gives_the_members_mean_and_a_summary_their_spread():
    trainer, records = _train(_config("np", seed=SEED, seeds=P))
    last = records[-1]
    accs = [m["test_accuracy"] for m in last["members"]]
    assert last["test_accuracy"] == pytest.approx(sum(accs) / P)
    angles = [m["layers"][0]["signal_angle_deg"] for m in last["members"]]
    assert last["layers"][0]["signal_angle_deg"] == pytest.approx(sum(angles) / P)
    summary = trainer.summary()
    assert summary["seeds"] == P and [m["seed"] for m in summary["members"]] == [SEED, SEED + 1, SEED + 2]
    accs = [m["test_accuracy"] for m in summary["members"]]
    mean = sum(accs) / P
    assert summary["test_accuracy"] == pytest.approx(mean)
    assert summary["test_accuracy_std"] == pytest.approx(math.sqrt(sum((a - mean) ** 2 for a in accs) / (P - 1)))


def test_a_resumed_population_continues_as_if_never_stopped():
    cfg = _config("np", seed=SEED, seeds=P)
    straight, records = _train(cfg)
    first = Trainer(cfg, dataset=_digits())
    for _ in range(STEPS // 2):
        first.step()
    resumed = Trainer(cfg, dataset=_digits())
    resumed.restore(first.checkpoint())
    rest = [r for r in (resumed.step() for _ in range(STEPS - STEPS // 2)) if r is not None]
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
    assert rest[-1]["members"][1]["test_loss"] == records[-1]["members"][1]["test_loss"]


def test_a_checkpoint_of_another_population_size_is_refused():
    state = Trainer(_config("np", seeds=2), dataset=_digits()).checkpoint()
    with pytest.raises(ValueError, match="member"):
        Trainer(_config("np", seeds=3), dataset=_digits()).restore(state)


def test_a_population_too_big_for_the_machine_is_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"^width=4000 is not allowed with depth 2: the networks would have"):
        RunConfig(width=4000, seeds=64).validate()



def test_a_diverged_population_names_its_members():
    """One member's NaN stops the population, and the message says which member (and seed)."""
    from engine.trainer import DivergedError

    trainer = Trainer(_config("fa", seed=SEED, seeds=P, steps=4, metric_interval=2), dataset=_digits())
    with torch.no_grad():
        split(trainer.model.layers[0].weight, P)[1].fill_(math.nan)
    with pytest.raises(DivergedError, match=rf"at step 1 in member 1 \(seed {SEED + 1}\) of {P};"):
        for _ in range(4):
            trainer.step()


@pytest.mark.parametrize("seeds", [1, P])
def test_the_summary_reuses_the_last_records_evaluation_of_the_same_weights(seeds, monkeypatch):
    """A run's last step evaluates the test set; its summary then gives those numbers without a
    second pass (which doubled the end of a large run), and evaluates when weights moved since."""
    trainer, records = _train(_config("fa", seed=SEED, seeds=seeds))
    expected = trainer.evaluate_members("test")
    monkeypatch.setattr(trainer, "evaluate_members", lambda split: pytest.fail("evaluated again"))
    summary = trainer.summary()
    members = summary.get("members") or [summary]
    assert [m["test_loss"] for m in members] == pytest.approx(expected[0])
    monkeypatch.undo()
    trainer.step()                              # unlogged: the weights moved past the record
    calls = []
    monkeypatch.setattr(trainer, "evaluate_members", lambda split: calls.append(split) or expected)
    trainer.summary()
    assert calls == ["test"]
