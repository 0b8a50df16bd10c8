"""Sweeps pack (engine/sweep/pack.py): trials that differ only in consecutive seeds and member
settings (σ, lr, feedback_lr) train as one population, and each is saved, tabled and resumed
exactly as if it had run alone."""

from __future__ import annotations

import argparse
import math

import pandas as pd
import pytest
import torch

from engine import sweep as sw
from engine.cli.sweep import add_sweep_arguments, sweep_command
from engine.runs.reader import list_runs, load_run, load_summary, read_checkpoint
from engine.sweep.spec import Trial, packs, population_config
from engine.trainer import Trainer

TINY = {"dataset": "digits", "steps": 20, "metric_interval": 10, "eval_interval": 20, "width": 20,
        "device": "cpu"}
NUMBERS = ["test_loss", "test_accuracy", "train_loss"]

pytestmark = pytest.mark.usefixtures("one_thread")


def spec(seeds=3, rule="np", lrs=(0.01, 0.1), **base):
    """3 seeds x 2 learning rates: 6 trials, one pack (a population of 3 seeds per lr)."""
    return sw.parse_sweep({"sweep": {"name": "pack", "seeds_per_point": seeds},
                           "base": {**TINY, "rule": rule, **base}, "grid": {"lr": list(lrs)}})


@pytest.fixture
def trainings(monkeypatch):
    """The configs of the trainings that ran (Trainer.run calls): one per process or task."""
    ran: list = []
    real = Trainer.run

    def run(self, *a, **k):
        ran.append(self.cfg)
        return real(self, *a, **k)

    monkeypatch.setattr(Trainer, "run", run)
    return ran


def by_id(table: pd.DataFrame) -> pd.DataFrame:
    return table.set_index("trial_id").sort_index()


def same_results(packed: pd.DataFrame, alone: pd.DataFrame) -> None:
    a, b = by_id(packed), by_id(alone)
    assert list(packed.columns) == list(alone.columns)
    assert list(a.index) == list(b.index)
    for col in ("status", "seed", "lr", "point_id", "seed_index", "steps_done", "error"):
        assert a[col].tolist() == b[col].tolist(), col
    assert a["diverged_step"].astype(object).tolist() == b["diverged_step"].astype(object).tolist()
    for col in NUMBERS:                   # a batched step rounds like the single one, to float32
        for x, y in zip(a[col], b[col]):
            assert (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-6), col


# ------------------------------------------------------------------ which trials pack
def _trial(seed, lr=0.1, seeds=1, sigma=0.01, rule="bp"):
    return Trial(f"t{seed}-{lr}-{seeds}" + (f"-{sigma}" if sigma != 0.01 else ""), "p", "main", 0, seed, ("lr",),
                 {"rule": rule, "lr": lr, "seed": seed, "seeds": seeds, "sigma": sigma, "feedback_lr": 1.0})


def test_packs_are_equal_configs_with_consecutive_seeds_in_the_trials_order():
    trials = [_trial(0), _trial(1), _trial(0, lr=0.2), _trial(3), _trial(2), _trial(1, lr=0.2),
              _trial(5), _trial(0, seeds=4), _trial(1, seeds=4)]
    got = [[t.trial_id for t in p] for p in packs(trials)]
    assert got == [["t0-0.1-1", "t1-0.1-1", "t2-0.1-1", "t3-0.1-1"],   # seeds 0-3, found in any order
                   ["t0-0.2-1", "t1-0.2-1"],
                   ["t5-0.1-1"],                                      # a gap: alone
                   ["t0-0.1-4"], ["t1-0.1-4"]]                        # already populations: alone
    assert [[t.trial_id for t in p] for p in packs(trials, size=3)][:3] == [
        ["t0-0.1-1", "t1-0.1-1", "t2-0.1-1"], ["t0-0.2-1", "t1-0.2-1"], ["t3-0.1-1"]]
    assert [len(p) for p in packs(spec().trials())] == [6]              # the seeds of both lrs together
    # what run_pack accepts as a population: exactly such packs (anything else runs alone)
    assert all(population_config([t.config for t in p]) is not None for p in packs(trials) if len(p) > 1)
    assert population_config([_trial(0).config, _trial(2).config]) is None
    assert population_config([_trial(0, seeds=4).config, _trial(1, seeds=4).config]) is None


def test_a_grid_of_member_settings_over_the_same_seeds_is_one_population_in_member_order():
    grid = [_trial(s, lr, sigma=sigma, rule="np") for lr in (0.2, 0.1) for s in (1, 0) for sigma in (0.1, 0.001)]
    [pack] = packs(grid)
    whole = population_config([t.config for t in pack])
    assert whole["seeds"] == 2 and whole["sigma"] == [0.001, 0.1] and whole["lr"] == [0.1, 0.2]
    assert [(t.config["sigma"], t.config["lr"], t.config["seed"]) for t in pack] == [
        (sigma, lr, s) for sigma in (0.001, 0.1) for lr in (0.1, 0.2) for s in (0, 1)]
    from engine.config import RunConfig
    members = RunConfig.from_dict(whole).member_values()
    assert [{k: t.config[k] for k in members[0]} for t in pack] == members
    # one combination missing: each combination packs its seeds alone
    partial = [t for t in grid if not (t.config["sigma"] == 0.1 and t.config["lr"] == 0.2)]
    assert sorted(len(p) for p in packs(partial)) == [2, 2, 2]
    # lr 0.1 over other seeds: each lr's σ × seeds is a population of its own
    other = grid[:4] + [_trial(s, 0.1, sigma=sigma, rule="np") for s in (5, 6) for sigma in (0.1, 0.001)]
    assert [sorted({t.config["lr"] for t in p}) for p in packs(other)] == [[0.2], [0.1]]
    assert [len(p) for p in packs(other)] == [4, 4]


# ------------------------------------------------------------------ packed = unpacked
def test_a_packed_sweep_gives_each_trial_what_it_gives_unpacked(tmp_path, trainings):
    s = spec()
    packed = sw.run_sweep(s, tmp_path / "packed", serial=True, progress=False)
    assert [(c.members(), c.seeds, c.lr) for c in trainings] == [(6, 3, [0.01, 0.1])]   # 1 training, not 6
    trainings.clear()
    alone = sw.run_sweep(s, tmp_path / "alone", serial=True, progress=False, pack=False)
    assert [(c.seeds, c.seed) for c in trainings] == [(1, 0), (1, 1), (1, 2)] * 2
    assert (packed.total, packed.ran, packed.counts) == (alone.total, alone.ran, alone.counts) == \
        (6, 6, {"finished": 6, "diverged": 0, "failed": 0})
    same_results(packed.table, alone.table)
    same_results(sw.load_trials(packed.path), sw.load_trials(alone.path))     # the files too

    # each trial is its own run folder, in the single run's format
    a, b = by_id(packed.table), by_id(alone.table)
    assert len(list_runs(tmp_path / "packed")) == 6
    for tid in a.index:
        (cfg_a, m_a), (cfg_b, m_b) = load_run(a.loc[tid, "run_dir"]), load_run(b.loc[tid, "run_dir"])
        assert cfg_a == cfg_b and cfg_a.seeds == 1 and a.loc[tid, "run_id"].endswith(tid[:8])
        assert list(m_a.columns) == list(m_b.columns) and "member" not in m_a.columns
        assert m_a["seed"].tolist() == m_b["seed"].tolist() == [cfg_a.seed] * 2
        assert torch.allclose(torch.tensor(m_a["train_loss"].to_numpy()),
                              torch.tensor(m_b["train_loss"].to_numpy()), rtol=1e-5)
        s_a, s_b = load_summary(a.loc[tid, "run_dir"]), load_summary(b.loc[tid, "run_dir"])
        assert list(s_a) == list(s_b) and s_a["status"] == "finished"
        assert math.isclose(s_a["test_loss"], s_b["test_loss"], rel_tol=1e-5)
        k_a, k_b = read_checkpoint(a.loc[tid, "run_dir"]), read_checkpoint(b.loc[tid, "run_dir"])
        assert k_a["config"] == k_b["config"] and k_a["step"] == k_b["step"] == 20
        assert [g["lr"] for g in k_a["optimizer"]["param_groups"]] == [cfg_a.lr]      # its own, not 1
        for name, w in k_b["model"].items():
            assert torch.allclose(k_a["model"][name], w, rtol=1e-3, atol=1e-4), name
        assert torch.equal(k_a["order"], k_b["order"])
        for name in ("rule", "batch"):
            assert torch.equal(k_a["generators"][name], k_b["generators"][name])


@pytest.mark.parametrize("extra", [dict(feedback_mode="ridge"), dict(independent_noise=True)])
def test_a_members_checkpoint_resumes_as_its_single_run(tmp_path, extra):
    """The member's checkpoint.pt is the single run's: restored, 10 more steps go as they would."""
    s = spec(seeds=2, lrs=(0.1,), rule="np", **extra)
    packed = sw.run_sweep(s, tmp_path, serial=True, progress=False)
    row = packed.table.sort_values("seed").iloc[1]
    state = read_checkpoint(row["run_dir"])
    cfg, _ = load_run(row["run_dir"])
    cfg.steps = 30
    resumed, fresh = Trainer(cfg), Trainer(cfg)
    resumed.restore(state)
    resumed.run()
    fresh.run()
    assert math.isclose(resumed.summary()["test_loss"], fresh.summary()["test_loss"], rel_tol=1e-4)


# ------------------------------------------------------------------ resume
def test_resume_runs_only_the_missing_trials_packing_the_seeds_still_to_do(tmp_path, trainings):
    first = sw.run_sweep(spec(seeds=1), tmp_path, serial=True, progress=False)
    assert (first.ran, len(trainings)) == (2, 1)                              # both lrs, seed 0
    trainings.clear()
    rest = sw.run_sweep(spec(seeds=3), tmp_path, serial=True, progress=False)
    assert (rest.total, rest.skipped, rest.ran) == (6, 2, 4)
    assert [(c.seeds, c.seed, c.lr) for c in trainings] == [(2, 1, [0.01, 0.1])]   # seeds 1-2 of each lr
    trainings.clear()
    assert sw.run_sweep(spec(seeds=3), tmp_path, serial=True, progress=False).ran == 0
    assert trainings == [] and len(list_runs(tmp_path)) == 6
    alone = sw.run_sweep(spec(seeds=3), tmp_path / "alone", serial=True, progress=False, pack=False)
    same_results(rest.table, alone.table)


def test_a_resumed_sweep_charges_each_packed_trial_its_share_of_the_time(tmp_path):
    """A table rebuilt from the run folders charges a member what the packed run's table did (its
    share of the population's time), not the whole population's time its writer saw."""
    packed = sw.run_sweep(spec(seeds=2, lrs=(0.1,), rule="bp"), tmp_path, serial=True, progress=False)
    again = sw.run_sweep(spec(seeds=2, lrs=(0.1,), rule="bp"), tmp_path, serial=True, progress=False)
    assert again.ran == 0
    a, b = by_id(packed.table), by_id(again.table)
    for tid in a.index:
        assert b.loc[tid, "wall_seconds"] == pytest.approx(a.loc[tid, "wall_seconds"])
        assert load_summary(a.loc[tid, "run_dir"])["wall_seconds"] == pytest.approx(a.loc[tid, "wall_seconds"])


def test_an_interrupted_packed_sweep_resumes_with_the_packs_not_done(tmp_path):
    import threading

    stop = threading.Event()
    # two network shapes: two packs of 3 seeds
    shapes = sw.parse_sweep({"sweep": {"name": "pack", "seeds_per_point": 3}, "base": {**TINY, "rule": "np"},
                             "grid": {"width": [20, 12]}})
    first = sw.run_sweep(shapes, tmp_path, serial=True, progress=False, stop=stop,
                         on_row=lambda row: stop.set())
    assert first.interrupted and first.ran == 3                # the whole first pack is saved
    rest = sw.run_sweep(shapes, tmp_path, serial=True, progress=False)
    assert (rest.ran, rest.skipped, len(rest.table)) == (3, 3, 6)


# ------------------------------------------------------------------ divergence and failure
def test_a_pack_with_diverging_members_is_recorded_as_its_trials_end_alone(tmp_path, trainings):
    """lr = 1e6 diverges: its members are left behind where their single runs stop (same step,
    status, error and numbers), the lr = 0.1 members finish, and the pack is one training."""
    s = spec(rule="bp", lrs=(1e6, 0.1), optimizer="sgd", metric_interval=1)
    packed = sw.run_sweep(s, tmp_path / "packed", serial=True, progress=False)
    assert [c.seeds for c in trainings] == [3]              # 6 members, none run again alone
    alone = sw.run_sweep(s, tmp_path / "alone", serial=True, progress=False, pack=False)
    same_results(packed.table, alone.table)
    t = packed.table.set_index("lr")
    assert set(t.loc[1e6, "status"]) == {"diverged"} and set(t.loc[0.1, "status"]) == {"finished"}
    assert len(list_runs(tmp_path / "packed")) == 6        # no folder left of the population
    for run_dir in t.loc[1e6, "run_dir"]:                   # each folder is its single run's
        cfg, metrics = load_run(run_dir)
        assert cfg.seeds == 1 and "member" not in metrics and metrics["train_loss"].notna().all()
        state, summary = read_checkpoint(run_dir), load_summary(run_dir)
        assert state["step"] == summary["steps"] and state["diverged_at"] == [summary["diverged_step"]]


def test_a_member_that_goes_bad_mid_run_ends_as_its_single_run(tmp_path, trainings, monkeypatch):
    """Seed 1's weights turn NaN after step 5, in the population as alone: it is diverged at
    step 6 in both, and seeds 0 and 2 finish with their single runs' numbers."""
    real = Trainer.step

    def step(self):
        if self.step_count == 5 and 1 in self.seeds:
            with torch.no_grad():
                w = self.model.layers[0].weight
                w.view(len(self.seeds), -1, w.shape[1])[self.seeds.index(1)].fill_(math.nan)
        return real(self)

    monkeypatch.setattr(Trainer, "step", step)
    packed = sw.run_sweep(spec(lrs=(0.1,)), tmp_path / "packed", serial=True, progress=False)
    alone = sw.run_sweep(spec(lrs=(0.1,)), tmp_path / "alone", serial=True, progress=False, pack=False)
    assert [c.seeds for c in trainings] == [3, 1, 1, 1]
    same_results(packed.table, alone.table)
    t = packed.table.set_index("seed")
    assert t.loc[1, "status"] == "diverged" and t.loc[1, "diverged_step"] == 6
    assert list(t.loc[[0, 2], "status"]) == ["finished", "finished"]


def test_a_pack_that_cannot_be_built_runs_its_trials_alone(tmp_path, trainings, monkeypatch):
    """E.g. 3 times the weights over the memory limit: each trial runs (or fails) as it would."""
    real = Trainer.__init__

    def init(self, cfg, *a, **k):
        if cfg.seeds > 1:
            raise MemoryError("a population too big")
        real(self, cfg, *a, **k)

    monkeypatch.setattr(Trainer, "__init__", init)
    result = sw.run_sweep(spec(lrs=(0.1,)), tmp_path, serial=True, progress=False)
    assert result.counts["finished"] == 3 and [c.seeds for c in trainings] == [1, 1, 1]
    assert len(list_runs(tmp_path)) == 3


# ------------------------------------------------------------------ the command
def test_no_pack_on_the_command_line_runs_each_seed_alone(tmp_path, trainings, capsys):
    parser = add_sweep_arguments(argparse.ArgumentParser())
    flags = ["--serial", "--quiet", "--out", str(tmp_path), "--name", "cli", "--set", "steps=20",
             "--set", "width=20", "--set", "rule=bp", "--grid", "lr=0.01,0.1", "--seeds", "3"]
    assert sweep_command(parser.parse_args(flags + ["--no-pack"])) == 0
    assert [c.seeds for c in trainings] == [1] * 6
    assert sweep_command(parser.parse_args(flags)) == 0 and len(trainings) == 6    # all done
    assert parser.parse_args(flags).pack and not parser.parse_args(flags + ["--no-pack"]).pack


# ------------------------------------------------------------------ on Dask
@pytest.mark.slow
def test_packs_on_a_local_cluster_give_the_serial_results(tmp_path):
    pytest.importorskip("distributed")
    s = spec()
    on_dask = sw.run_sweep(s, tmp_path / "dask", workers=2, progress=False)
    alone = sw.run_sweep(s, tmp_path / "alone", serial=True, progress=False, pack=False)
    assert (on_dask.ran, on_dask.counts["finished"]) == (6, 6)
    same_results(on_dask.table, alone.table)
    assert len(list_runs(tmp_path / "dask")) == 6
    assert sw.run_sweep(s, tmp_path / "dask", workers=2, progress=False).ran == 0
