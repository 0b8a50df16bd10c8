"""A population that compares settings: `sigma=[σ₁, σ₂, …]` (and lists of lr and feedback_lr)
with `seeds=S` trains S members for each combination in one batched step, and member k is the
single run of its own seed and settings."""

import math
import subprocess
import sys

import pytest
import torch

from engine.config import RunConfig
from engine.errors import ConfigError
from engine.members import split
from engine.trainer import Trainer
from conftest import assert_close, assert_same_number, case_config, digits64, train_steps

pytestmark = pytest.mark.usefixtures("float64")

SIGMAS, SEEDS, SEED = [1e-3, 0.05], 2, 5


@pytest.mark.parametrize("name", ["np", "np K draws, antithetic", "np-dfa", "fa on noise", "np conv", "pnp",
                                  "pnp conv"])
def test_member_k_is_the_single_run_of_its_seed_and_sigma(name):
    population, pop_records = train_steps(case_config(name, seed=SEED, seeds=SEEDS, sigma=SIGMAS))
    p = len(SIGMAS) * SEEDS
    assert population.members == p
    for k in range(p):
        seed, sigma = SEED + k % SEEDS, SIGMAS[k // SEEDS]
        single, records = train_steps(case_config(name, seed=seed, sigma=sigma))
        for (pname, w), s in zip(population.model.named_parameters(), single.model.parameters()):
            assert_close(split(w.detach(), p)[k], s.detach(), f"member {k}'s {pname}")
        for i, (b, s) in enumerate(zip(population.rule.feedback_matrices(), single.rule.feedback_matrices())):
            assert_close(split(b.detach(), p)[k], s.detach(), f"member {k}'s feedback {i + 1}")
        for pr, r in zip(pop_records, records):
            member = pr["members"][k]
            assert (member["seed"], member["sigma"]) == (seed, sigma)
            for key in ("train_loss", "test_loss"):
                assert_same_number(member[key], r[key], f"member {k}'s {key} at step {r['step']}")
            assert_same_number(member["layers"][0]["signal_angle_deg"], r["layers"][0]["signal_angle_deg"],
                         f"member {k}'s signal angle at step {r['step']}")


LISTS = {
    "np, lr (adam)": ("np", {"lr": [1e-3, 1e-2]}),
    "kp, lr (sgd with momentum; B takes W's applied change)": ("kp", {"lr": [0.05, 0.02]}),
    "kp conv, lr": ("kp conv", {"lr": [0.05, 0.02]}),
    "np, feedback_lr (normalised step, control variate)": ("np", {"feedback_lr": [1.0, 0.3]}),
    "np, feedback_lr (plain step)": ("np plain step", {"feedback_lr": [0.1, 0.03]}),
    "sg, feedback_lr": ("sg", {"feedback_lr": [1.0, 0.2]}),
    "np-dfa, feedback_lr": ("np-dfa", {"feedback_lr": [1.0, 0.2]}),
    "np conv, lr": ("np conv", {"lr": [1e-3, 3e-3]}),
    "np, σ × lr × feedback_lr": ("np", {"sigma": [1e-3, 0.05], "lr": [1e-3, 3e-3], "feedback_lr": [1.0, 0.5]}),
}


@pytest.mark.parametrize("case", LISTS)
def test_member_k_is_the_single_run_of_its_seed_and_settings(case):
    name, lists = LISTS[case]
    population, pop_records = train_steps(case_config(name, seed=SEED, seeds=SEEDS, **lists))
    members = population.cfg.member_values()
    p = len(members)
    assert p == SEEDS * math.prod(len(v) for v in lists.values())
    for k, who in enumerate(members):
        single, records = train_steps(case_config(name, **who))
        for (pname, w), s in zip(population.model.named_parameters(), single.model.parameters()):
            assert_close(split(w.detach(), p)[k], s.detach(), f"member {k} ({who})'s {pname}")
        for i, (b, s) in enumerate(zip(population.rule.feedback_matrices(), single.rule.feedback_matrices())):
            assert_close(split(b.detach(), p)[k], s.detach(), f"member {k} ({who})'s feedback {i + 1}")
        for pr, r in zip(pop_records, records):
            assert {key: pr["members"][k][key] for key in who} == who
            assert_same_number(pr["members"][k]["test_loss"], r["test_loss"], f"member {k}'s test loss at {r['step']}")


def test_member_settings_that_are_compared_cannot_change_live_and_a_list_cannot_be_set_live():
    trainer = Trainer(case_config("np", seeds=SEEDS, lr=[1e-3, 1e-2]), dataset=digits64())
    with pytest.raises(ConfigError, match=r"^lr cannot change during this run: its members compare 0.001,0.01$"):
        trainer.set(lr=0.02)
    with pytest.raises(ConfigError, match=r"^feedback_lr=0.1,0.2 cannot be set during a run: several values"):
        trainer.set(feedback_lr=[0.1, 0.2])
    trainer.set(sigma=0.02, feedback_lr=0.5)     # the others still change, for every member
    trainer.step()
    assert trainer.live.sigma == 0.02 and trainer.live.feedback_lr == 0.5
    assert trainer.live.lr == (1e-3, 1e-3, 1e-2, 1e-2)


def test_the_members_of_a_sigma_differ_only_in_sigma():
    """The same seed under two values of σ: the same initial weights, different noise scales (so
    the runs part), which is what comparing σ needs; by default one draw z, ξ = σz."""
    trainer = Trainer(case_config("np", seed=SEED, seeds=1, sigma=[1e-3, 1e-1]), dataset=digits64())
    w = split(trainer.model.layers[0].weight.detach(), 2)
    assert torch.equal(w[0], w[1])
    noise = split(trainer.rule.sample_noise(torch.zeros(2 * 200, 64, dtype=torch.float64), trainer.live.sigma)[0], 2)
    assert_close(noise[1], noise[0] * 100, "σ = 0.1's noise against 100 × σ = 1e-3's")


def test_independent_noise_gives_each_sigma_its_own_draw_and_keeps_the_rest():
    """With independent_noise the two σ's draw unrelated z (correlation ≈ 0 over 12,800 numbers),
    at the right scales, while the weights, B and batches stay those of the seed."""
    shared = Trainer(case_config("np", seed=SEED, seeds=1, sigma=[1e-3, 1e-1]), dataset=digits64())
    trainer = Trainer(case_config("np", seed=SEED, seeds=1, sigma=[1e-3, 1e-1], independent_noise=True),
                      dataset=digits64())
    for a, b in zip(shared.model.parameters(), trainer.model.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(shared.rule.feedback_matrices(), trainer.rule.feedback_matrices()):
        assert torch.equal(a, b)
    z = split(trainer.rule.sample_noise(torch.zeros(2 * 200, 64, dtype=torch.float64), trainer.live.sigma)[0], 2)
    z = [z[0].flatten() / 1e-3, z[1].flatten() / 1e-1]
    assert all(0.95 < v.std() < 1.05 for v in z)
    assert abs(torch.corrcoef(torch.stack(z))[0, 1]) < 0.05       # 4.5 standard errors
    # the draw depends on (seed, σ) alone: a single run of either σ draws its member's z
    single = Trainer(case_config("np", seed=SEED, sigma=1e-1, independent_noise=True), dataset=digits64())
    alone = single.rule.sample_noise(torch.zeros(200, 64, dtype=torch.float64), 1e-1)[0]
    assert torch.equal(alone.flatten() / 1e-1, z[1])


@pytest.mark.parametrize("name", ["np", "fa on noise", "pnp"])
def test_with_independent_noise_member_k_is_still_the_single_run_of_its_seed_and_sigma(name):
    population, pop_records = train_steps(case_config(name, seed=SEED, seeds=SEEDS, sigma=SIGMAS,
                                                      independent_noise=True))
    p = len(SIGMAS) * SEEDS
    for k in range(p):
        seed, sigma = SEED + k % SEEDS, SIGMAS[k // SEEDS]
        single, records = train_steps(case_config(name, seed=seed, sigma=sigma, independent_noise=True))
        for (pname, w), s in zip(population.model.named_parameters(), single.model.parameters()):
            assert_close(split(w.detach(), p)[k], s.detach(), f"member {k}'s {pname}")
        for pr, r in zip(pop_records, records):
            assert_same_number(pr["members"][k]["test_loss"], r["test_loss"], f"member {k} at step {r['step']}")


def test_the_summary_and_records_name_each_members_seed_and_sigma():
    trainer, records = train_steps(case_config("np", seed=SEED, seeds=SEEDS, sigma=SIGMAS))
    summary = trainer.summary()
    assert [(m["seed"], m["sigma"]) for m in summary["members"]] == [
        (SEED, SIGMAS[0]), (SEED + 1, SIGMAS[0]), (SEED, SIGMAS[1]), (SEED + 1, SIGMAS[1])]
    assert records[-1]["sigma"] == SIGMAS and [m["sigma"] for m in records[-1]["members"]] == [
        SIGMAS[0], SIGMAS[0], SIGMAS[1], SIGMAS[1]]


def test_sigma_cannot_change_live_when_members_compare_it():
    trainer = Trainer(case_config("np", seeds=SEEDS, sigma=SIGMAS), dataset=digits64())
    with pytest.raises(ConfigError, match=r"^sigma cannot change during this run: its members compare 0.001,0.05$"):
        trainer.set(sigma=0.02)
    trainer.set(lr=1e-4)                        # the other live settings still change, for all


@pytest.mark.parametrize("sigma,message", [
    ([1e-3, 0.0], r"^sigma=0.0 is not allowed for rule 'np'"),
    ([1e-3, -1.0], r"^sigma=-1.0 is not allowed"),
    ([], r"^sigma=\[\] is not allowed; give one value or several$"),
    ([1e-3, "x"], r"^sigma='x' is not allowed"),
])
def test_a_bad_value_in_a_sigma_list_is_named_in_one_line(sigma, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig(sigma=sigma).validate()


def test_a_diverging_member_is_named_with_its_settings_and_the_others_finish(tmp_path):
    """lr = 1e6 makes SGD diverge within a few steps: those members are named with their lr,
    measure nothing, and the lr = 0.1 members finish with their numbers, in the CLI's summary,
    summary.json and metrics.parquet; the run exits 0."""
    from engine.runs.reader import load_summary

    stdout, run, cfg, last = _train_cli(tmp_path, "--rule", "np", "--optimizer", "sgd", "--lr", "0.1,1e6",
                                        "--seeds", "2", "--dataset", "digits")
    assert "2 of 4 members diverged (member 2 (seed 0, lr=1e+06) at step" in stdout
    assert "lr=1e+06     diverged (every member)" in stdout and "lr=0.1       test accuracy" in stdout
    assert run["status"] == "finished"
    members = load_summary(run["path"])["members"]
    gone = {m["lr"]: m["diverged_step"] for m in members}
    assert gone[0.1] is None and 1 <= gone[1e6] <= 20
    bad, good = last[last["lr"] == 1e6], last[last["lr"] == 0.1]
    assert bad["train_loss"].isna().all() and (bad["diverged_step"] == gone[1e6]).all()
    assert good["train_loss"].notna().all() and good["diverged_step"].isna().all()

def _train_cli(tmp_path, *flags):
    """`creditlab train FLAGS` for 20 steps into tmp_path: (its stdout, its run's listing row, the
    saved config, the metrics rows of its last step)."""
    from engine.runs.reader import list_runs, load_run

    out = subprocess.run([sys.executable, "-m", "engine", "train", *flags, "--steps", "20", "--metric-interval",
                          "10", "--out", str(tmp_path), "--quiet"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    run = list_runs(tmp_path).iloc[0]
    cfg, metrics = load_run(run["path"])
    return out.stdout, run, cfg, metrics[metrics["step"] == 20]


def test_the_cli_trains_a_sigma_list_and_saves_each_members_rows(tmp_path):
    stdout, run, cfg, last = _train_cli(tmp_path, "--sigma", "1e-3,1e-2,1e-1", "--seeds", "2")
    assert "6 members, 2 seed(s) for each setting" in stdout
    for sigma in ("0.001", "0.01", "0.1"):
        assert f"σ={sigma}" in stdout
    assert run["seeds"] == 6
    assert cfg.sigma == [1e-3, 1e-2, 1e-1]
    assert sorted(zip(last["seed"], last["sigma"])) == sorted((s, v) for v in (1e-3, 1e-2, 1e-1) for s in (0, 1))


def test_the_cli_trains_an_lr_list_and_saves_each_members_lr(tmp_path):
    stdout, run, cfg, last = _train_cli(tmp_path, "--lr", "1e-3,1e-2", "--feedback-lr", "1,0.5")
    assert "4 members, 1 seed(s) for each setting" in stdout
    for group in ("lr=0.001 η_B=1 ", "lr=0.001 η_B=0.5", "lr=0.01 η_B=1 ", "lr=0.01 η_B=0.5"):
        assert group in stdout
    assert run["seeds"] == 4
    assert cfg.lr == [1e-3, 1e-2] and cfg.feedback_lr == [1.0, 0.5]
    assert sorted(zip(last["lr"], last["feedback_lr"])) == [(1e-3, 0.5), (1e-3, 1.0), (1e-2, 0.5), (1e-2, 1.0)]
