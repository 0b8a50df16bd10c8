"""A population of P members is P runs: member k equals the single run of seed + k.

Trained side by side in one batched step, each member must take exactly the steps its own run
takes: the same initial weights and feedback, batches, noise, regression of B, optimiser state
and metrics. At float64 the batched products agree with the single ones to rounding.
"""

import math

import pytest
import torch

from engine.config import RunConfig
from engine.errors import ConfigError
from engine.members import split
from engine.trainer import Trainer

from conftest import CASE_STEPS, CASES, assert_close, assert_same_number, case_config, digits64, train_steps

pytestmark = pytest.mark.usefixtures("float64")

P, SEED = 3, 11


SLOW = {"np-dfa cifar net, dropout"}     # two 2048-wide layers at float64: a minute


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in CASES])
def test_member_k_is_the_single_run_of_seed_plus_k(name):
    population, pop_records = train_steps(case_config(name, seed=SEED, seeds=P))
    for k in range(P):
        single, records = train_steps(case_config(name, seed=SEED + k))
        for (pname, p), (sname, s) in zip(population.model.named_parameters(), single.model.named_parameters()):
            assert_close(split(p.detach(), P)[k], s.detach(), f"member {k}'s {pname}")
        for i, (b, s) in enumerate(zip(population.rule.feedback_matrices(), single.rule.feedback_matrices())):
            assert_close(split(b.detach(), P)[k], s.detach(), f"member {k}'s feedback {i + 1}")
        assert len(pop_records) == len(records)
        for pr, r in zip(pop_records, records):
            member = pr["members"][k]
            assert member["seed"] == SEED + k
            for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy"):
                assert_same_number(member[key], r[key], f"member {k}'s {key} at step {r['step']}")
            for i, (mine, theirs) in enumerate(zip(member["layers"], r["layers"])):
                for key, value in theirs.items():
                    assert_same_number(mine[key], value, f"member {k}'s layer {i + 1} {key} at step {r['step']}")


def test_a_population_record_gives_the_members_mean_and_a_summary_their_spread():
    trainer, records = train_steps(case_config("np", seed=SEED, seeds=P))
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
    cfg = case_config("np", seed=SEED, seeds=P)
    straight, records = train_steps(cfg)
    first = Trainer(cfg, dataset=digits64())
    for _ in range(CASE_STEPS // 2):
        first.step()
    resumed = Trainer(cfg, dataset=digits64())
    resumed.restore(first.checkpoint())
    rest = [r for r in (resumed.step() for _ in range(CASE_STEPS - CASE_STEPS // 2)) if r is not None]
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
    assert rest[-1]["members"][1]["test_loss"] == records[-1]["members"][1]["test_loss"]


def test_a_checkpoint_of_another_population_size_is_refused():
    state = Trainer(case_config("np", seeds=2), dataset=digits64()).checkpoint()
    with pytest.raises(ValueError, match="member"):
        Trainer(case_config("np", seeds=3), dataset=digits64()).restore(state)


def test_a_population_too_big_for_the_machine_is_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"^width=4000 is not allowed with depth 2: the networks would have"):
        RunConfig(width=4000, seeds=64).validate()



@pytest.mark.parametrize("name", [n for n in CASES if n not in SLOW])
def test_a_diverging_member_is_left_behind_and_the_others_stay_their_single_runs(name):
    """Member 1 goes NaN after step 5: it is reported diverged at step 6 and measures nothing
    from then on, while members 0 and 2 train on, equal to their single runs to the last step
    (no arithmetic is shared between members, so its NaNs cannot reach them)."""
    cfg = case_config(name, seed=SEED, seeds=P)
    population = Trainer(cfg, dataset=digits64())
    records = []
    for step in range(1, CASE_STEPS + 1):
        if step == 6:
            with torch.no_grad():
                split(population.model.layers[0].weight, P)[1].fill_(math.nan)
        records.append(population.step())
    assert population.losses.at == [None, 6, None]
    last = records[-1]
    assert last["members"][1]["diverged_step"] == 6 and math.isnan(last["members"][0]["diverged_step"])
    gone = last["members"][1]
    assert math.isnan(gone["test_loss"]) and math.isnan(gone["layers"][0]["weight_angle_deg"])
    healthy = [last["members"][k]["test_loss"] for k in (0, 2)]
    assert_same_number(last["test_loss"], sum(healthy) / 2, "the mean over the members left")
    summary = population.summary()
    assert [m["diverged_step"] for m in summary["members"]] == [None, 6, None]
    assert math.isnan(summary["members"][1]["test_accuracy"])
    for k in (0, 2):
        single, single_records = train_steps(case_config(name, seed=SEED + k))
        for (pname, p), s in zip(population.model.named_parameters(), single.model.parameters()):
            assert_close(split(p.detach(), P)[k], s.detach(), f"member {k}'s {pname}")
        for i, (b, s) in enumerate(zip(population.rule.feedback_matrices(), single.rule.feedback_matrices())):
            assert_close(split(b.detach(), P)[k], s.detach(), f"member {k}'s feedback {i + 1}")
        assert_same_number(last["members"][k]["test_loss"], single_records[-1]["test_loss"], f"member {k}")


def test_a_population_stops_when_its_last_member_diverges():
    from engine.divergence import DivergedError

    trainer = Trainer(case_config("fa", seed=SEED, seeds=P, steps=8, metric_interval=2), dataset=digits64())
    with pytest.raises(DivergedError, match=rf"at step 1 in all {P} members, the last at step 3;"):
        for step in range(1, 9):
            with torch.no_grad():       # one more member goes bad each step
                split(trainer.model.layers[0].weight, P)[min(step, P) - 1].fill_(math.nan)
            trainer.step()
    assert trainer.status == "diverged" and trainer.losses.at == [1, 2, 3]


def test_a_resumed_population_keeps_its_diverged_members():
    cfg = case_config("fa", seed=SEED, seeds=P)
    first = Trainer(cfg, dataset=digits64())
    with torch.no_grad():
        split(first.model.layers[0].weight, P)[2].fill_(math.nan)
    for _ in range(CASE_STEPS // 2):
        first.step()
    resumed = Trainer(cfg, dataset=digits64())
    resumed.restore(first.checkpoint())
    assert resumed.losses.at == [None, None, 1]
    record = [r for r in (resumed.step() for _ in range(CASE_STEPS // 2)) if r][-1]
    assert record["members"][2]["diverged_step"] == 1 and math.isnan(record["members"][2]["train_loss"])
    state = first.checkpoint()
    state["diverged_at"] = [None, "1", None]
    with pytest.raises(ValueError, match="its diverged members are not 3 steps"):
        Trainer(cfg, dataset=digits64()).restore(state)


@pytest.mark.parametrize("seeds", [1, P])
def test_the_summary_reuses_the_last_records_evaluation_of_the_same_weights(seeds, monkeypatch):
    """A run's last step evaluates the test set; its summary then gives those numbers without a
    second pass (which doubled the end of a large run), and evaluates when weights moved since."""
    trainer, records = train_steps(case_config("fa", seed=SEED, seeds=seeds))
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
