"""Sweeps (engine/sweep.py): sampling, resume, failures, Dask, the CLI and the dashboard view."""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest

from engine import sweep as sw
from engine.cli.sweep import add_sweep_arguments, spec_from_args, sweep_command
from engine.sweep.run import _hold_sweep_lock
from engine.runs.reader import list_runs, load_run, load_summary

TINY = {"dataset": "digits", "steps": 50, "metric_interval": 25, "eval_interval": 50,
        "width": 20}


pytestmark = pytest.mark.usefixtures("one_thread")


def spec(seed=0, samples=3, seeds=2, rules=("np", "bp"), base=None, random=None, **head):
    return sw.parse_sweep({
        "sweep": {"name": "t", "seed": seed, "samples": samples, "seeds_per_point": seeds, **head},
        "base": {**TINY, **(base or {})},
        "grid": {"rule": list(rules)},
        "random": random if random is not None else {
            "sigma": {"log_uniform": [1e-4, 1e-1]}, "lr": {"log_uniform": [1e-2, 0.3]}}})


def values(trials, name):
    return [t.config[name] for t in trials]


# ------------------------------------------------------------------ sampling
def test_sampling_is_reproducible_for_a_seed_and_differs_for_another():
    a, b, c = spec(seed=0).trials(), spec(seed=0).trials(), spec(seed=1).trials()
    assert [t.trial_id for t in a] == [t.trial_id for t in b]
    assert [t.config for t in a] == [t.config for t in b]
    assert spec(seed=0).sweep_id == spec(seed=0).sweep_id != spec(seed=1).sweep_id
    assert set(values(a, "sigma")).isdisjoint(values(c, "sigma"))
    assert set(values(a, "lr")).isdisjoint(values(c, "lr"))


def test_trial_count_is_grid_times_samples_times_seeds():
    s = sw.parse_sweep({"sweep": {"samples": 4, "seeds_per_point": 2},
                        "grid": {"rule": ["np", "fa"], "width": [20, [30, 10], 50]},
                        "random": {"lr": {"log_uniform": [1e-3, 1]}}})
    trials = s.trials()
    assert len(trials) == 2 * 3 * 4 * 2
    assert len({t.trial_id for t in trials}) == len(trials)
    assert len({t.point_id for t in trials}) == 2 * 3 * 4         # seeds share a point
    assert sorted(set(values(trials, "seed"))) == [0, 1]
    # a pure grid has one "sample"; equal configurations are one trial
    g = sw.parse_sweep({"grid": {"rule": ["np", "np", "bp"]}})
    assert len(g.trials()) == 2


def test_log_uniform_draws_stay_in_bounds_and_cover_the_decades():
    s = sw.parse_sweep({"sweep": {"samples": 2000, "seed": 3},
                        "random": {"sigma": {"log_uniform": [1e-4, 1e-1]},
                                   "momentum": {"uniform": [0.5, 0.9]},
                                   "depth": {"int_uniform": [1, 3]},
                                   "activation": {"choice": ["tanh", "relu"]}}})
    trials = s.trials()
    sigma = np.array(values(trials, "sigma"))
    assert sigma.min() >= 1e-4 and sigma.max() <= 1e-1
    counts = np.histogram(np.log10(sigma), bins=[-4, -3, -2, -1])[0]
    assert all(500 < c < 830 for c in counts), counts                 # ≈ 667 per decade
    mom = np.array(values(trials, "momentum"))
    assert mom.min() >= 0.5 and mom.max() <= 0.9 and abs(mom.mean() - 0.7) < 0.02
    assert set(values(trials, "depth")) == {1, 2, 3}
    assert set(values(trials, "activation")) == {"tanh", "relu"}


def test_searches_share_their_draws_so_rules_are_compared_pairwise():
    s = sw.parse_sweep({"sweep": {"samples": 5}, "search": [
        {"name": "np", "grid": {"rule": ["np"]},
         "random": {"sigma": {"log_uniform": [1e-4, 1e-1]}, "lr": {"log_uniform": [1e-3, 1]}}},
        {"name": "fixed", "grid": {"rule": ["bp", "fa"]},
         "random": {"lr": {"log_uniform": [1e-3, 1]}}}]})
    trials = s.trials()
    assert len(trials) == 5 + 2 * 5
    by_rule = {r: [t.config["lr"] for t in trials if t.config["rule"] == r] for r in ("np", "bp", "fa")}
    assert by_rule["np"] == by_rule["bp"] == by_rule["fa"]
    assert {t.config["sigma"] for t in trials if t.config["rule"] == "bp"} == {0.01}   # default
    assert s.varied == ["rule", "sigma", "lr"]


# ------------------------------------------------------------------ bad input
BAD_FILES = {
    "unknown table": ("[swep]\nname = 'x'\n", "unknown key 'swep'"),
    "unknown setting": ("[base]\nsigmaa = 0.1\n", "unknown setting 'sigmaa'"),
    "bad range": ("[random]\nlr = { log_uniform = [0, 1] }\n", "0 < low"),
    "bad distribution": ("[random]\nlr = { normal = [0, 1] }\n", "must be one of"),
    "reversed range": ("[random]\nlr = { uniform = [1, 0] }\n", "low <= high"),
    "grid not a list": ("[grid]\nrule = 'np'\n", "non-empty list"),
    "both": ("[grid]\nrule = ['np']\n[[search]]\ngrid = { rule = ['bp'] }\n", "not both"),
    "bad samples": ("[sweep]\nsamples = 0\n", "samples=0"),
    "bad metric": ("[sweep]\nmetric = 'acc'\n", "metric='acc'"),
    "seed varied": ("[grid]\nseed = [1, 2]\n", "seeds_per_point"),
    "invalid toml": ("[sweep\nname = 1\n", "not valid TOML"),
    "all invalid": ("[grid]\nrule = ['nq']\n", "no trial has a valid configuration: rule='nq'"),
}


def _cli(argv, capsys):
    parser = add_sweep_arguments(argparse.ArgumentParser(prog="creditlab sweep"))
    rc = sweep_command(parser.parse_args(argv))
    return rc, capsys.readouterr()


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_sweep_file_is_one_line_and_exit_2(case, tmp_path, capsys):
    text, expected = BAD_FILES[case]
    path = tmp_path / "s.toml"
    path.write_text(text)
    rc, out = _cli([str(path), "--out", str(tmp_path / "runs"), "--serial"], capsys)
    assert rc == 2
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("creditlab: error: "), out.err
    assert expected in lines[0]
    assert "Traceback" not in out.err and out.out == ""


def test_missing_file_wrong_suffix_and_bad_flags_are_one_line(tmp_path, capsys):
    (tmp_path / "s.json").write_text("{}")
    for argv, expected in ([[str(tmp_path / "nope.toml")], "cannot read"],
                           [[str(tmp_path / "s.json")], "must end in .toml"],
                           [["--grid", "rule"], "NAME=VALUE"],
                           [["--random", "lr=gauss:0:1"], "KIND one of"],
                           [["--set", "lr=0.1", "--serial", "--scheduler", "tcp://h:8786"], "cannot be combined"]):
        rc, out = _cli(argv + ["--out", str(tmp_path / "runs")], capsys)
        assert rc == 2 and len(out.err.strip().splitlines()) == 1, out.err
        assert expected in out.err


def test_without_dask_the_error_suggests_the_extra_or_serial(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)          # import fails
    rc, out = _cli(["--set", "steps=10", "--out", str(tmp_path)], capsys)
    assert rc == 2
    assert "pip install 'creditlab[sweep]'" in out.err and "--serial" in out.err
    assert len(out.err.strip().splitlines()) == 1


def test_flags_build_the_same_sweep_as_a_file(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text("""
[sweep]
name = "t"
samples = 3
seeds_per_point = 2
[base]
dataset = "digits"
steps = 50
width = [30, 10]
[grid]
rule = ["np", "bp"]
[random]
lr = { log_uniform = [1e-2, 0.3] }
""")
    parser = add_sweep_arguments(argparse.ArgumentParser())
    from_file = spec_from_args(parser.parse_args([str(path)]))
    from_flags = spec_from_args(parser.parse_args(
        ["--name", "t", "--samples", "3", "--seeds", "2", "--set", "dataset=digits",
         "--set", "steps=50", "--set", "width=[30,10]", "--grid", "rule=np,bp",
         "--random", "lr=log_uniform:1e-2:0.3"]))
    assert from_file.sweep_id == from_flags.sweep_id
    assert [t.config for t in from_file.trials()] == [t.config for t in from_flags.trials()]


# ------------------------------------------------------------------ running, serially
def test_a_serial_sweep_writes_runs_and_the_table_and_resume_skips_them(tmp_path):
    s = spec(samples=2, seeds=2, rules=("np",))
    first = sw.run_sweep(s, tmp_path, serial=True, progress=False)
    assert (first.total, first.ran, first.skipped) == (4, 4, 0)
    table = sw.load_trials(sw.sweep_dir(tmp_path, s.sweep_id))
    assert len(table) == 4 and set(table["status"]) <= {"finished", "diverged"}
    assert {"sigma", "lr", "feedback_lr", "rule", "width", "depth", "test_accuracy",
            "run_dir", "trial_id", "sweep_id"} <= set(table.columns)
    runs = list_runs(tmp_path)                     # trials are runs like any other
    assert len(runs) == 4 and set(runs["rule"]) == {"np"}
    for path in table["run_dir"]:
        tag = json.loads((tmp_path / path.split("/")[-1] / "sweep.json").read_text())
        assert tag["sweep_id"] == s.sweep_id
        cfg, metrics = load_run(path)
        assert cfg.steps == 50 and not metrics.empty
    info = json.loads((sw.sweep_dir(tmp_path, s.sweep_id) / "sweep.json").read_text())
    assert info["n_trials"] == 4 and info["varied"] == ["rule", "sigma", "lr"]

    calls = []
    again = sw.run_sweep(s, tmp_path, serial=True, progress=False,
                         on_row=lambda row: calls.append(row))
    assert (again.ran, again.skipped, calls) == (0, 4, [])
    assert len(list_runs(tmp_path)) == 4
    assert sorted(again.table["trial_id"]) == sorted(table["trial_id"])


def test_more_samples_or_seeds_extend_the_same_sweep(tmp_path):
    small, big = spec(samples=1, seeds=1, rules=("bp",)), spec(samples=2, seeds=2, rules=("bp",))
    assert small.sweep_id == big.sweep_id
    assert {t.trial_id for t in small.trials()} < {t.trial_id for t in big.trials()}
    assert sw.run_sweep(small, tmp_path, serial=True, progress=False).ran == 1
    more = sw.run_sweep(big, tmp_path, serial=True, progress=False)
    assert (more.ran, more.skipped, len(more.table)) == (3, 1, 4)


def test_an_interrupted_sweep_resumes_with_the_trials_not_done(tmp_path):
    # momentum, not lr: trials that differ in lr alone would train as one population (one row set)
    s = spec(samples=3, seeds=1, rules=("bp",), base={"optimizer": "sgd"}, random={"momentum": {"uniform": [0.5, 0.9]}})
    stop = threading.Event()
    first = sw.run_sweep(s, tmp_path, serial=True, progress=False, stop=stop,
                         on_row=lambda row: stop.set())
    assert first.interrupted and first.ran == 1
    rest = sw.run_sweep(s, tmp_path, serial=True, progress=False)
    assert (rest.ran, rest.skipped, len(rest.table)) == (2, 1, 3)


def test_a_trial_that_raises_is_recorded_as_failed_and_the_sweep_completes(tmp_path, monkeypatch):
    from engine.trainer import Trainer

    real_run = Trainer.run

    def run(self, *a, **k):
        if self.cfg.rule == "fa":
            raise RuntimeError("boom\nsecond line")
        return real_run(self, *a, **k)

    monkeypatch.setattr(Trainer, "run", run)
    s = spec(samples=1, seeds=2, rules=("fa", "bp"), random={})
    result = sw.run_sweep(s, tmp_path, serial=True, progress=False)
    t = result.table.set_index("rule")
    assert result.counts == {"finished": 2, "diverged": 0, "failed": 2}
    assert set(t.loc["fa", "status"]) == {"failed"}
    assert set(t.loc["fa", "error"]) == {"boom second line"}            # one line
    assert set(t.loc["bp", "status"]) == {"finished"}
    for path in t.loc["fa", "run_dir"]:
        assert load_summary(path)["status"] == "failed"
    # failed trials are done: a rerun skips them too
    assert sw.run_sweep(s, tmp_path, serial=True, progress=False).ran == 0


def test_a_config_that_fails_validation_at_trial_time_is_a_failed_run(tmp_path):
    s = sw.parse_sweep({"base": {**TINY, "rule": "np"}, "grid": {"sigma": [0.0, 0.01]}})
    assert sw.check_trials(s.trials())[0] == 1
    result = sw.run_sweep(s, tmp_path, serial=True, progress=False)
    t = result.table.set_index("sigma")
    assert t.loc[0.0, "status"] == "failed" and "sigma=0.0 is not allowed" in t.loc[0.0, "error"]
    assert t.loc[0.01, "status"] == "finished"
    runs = list_runs(tmp_path).set_index("status")
    assert set(runs.index) == {"failed", "finished"}           # a run folder either way


def test_a_diverging_trial_is_recorded_as_diverged(tmp_path):
    s = sw.parse_sweep({"base": {**TINY, "rule": "bp", "optimizer": "sgd", "metric_interval": 1},
                        "grid": {"lr": [1e6, 0.1]}})
    result = sw.run_sweep(s, tmp_path, serial=True, progress=False)
    t = result.table.set_index("lr")
    assert t.loc[1e6, "status"] == "diverged" and t.loc[1e6, "diverged_step"] >= 1
    assert "diverged" in t.loc[1e6, "error"]
    assert t.loc[0.1, "status"] == "finished"
    best = result.best()
    assert list(best["rule"]) == ["bp"] and best["lr"].iloc[0] == 0.1   # diverged never wins


def test_best_table_averages_seeds_and_rules_out_configs_with_a_failed_seed():
    rows = []
    for rule, point, lr, accs, statuses in [
            ("np", "a", 0.1, [0.9, 0.8], ["finished", "finished"]),
            ("np", "b", 0.2, [0.99, 0.1], ["finished", "diverged"]),
            ("np", "c", 0.3, [0.8, 0.8], ["finished", "finished"]),
            ("bp", "d", 0.1, [0.95, 0.97], ["finished", "finished"])]:
        for seed, (acc, st) in enumerate(zip(accs, statuses)):
            rows.append({"rule": rule, "point_id": point, "lr": lr, "seed": seed, "status": st,
                         "test_accuracy": acc, "varied": "rule,lr"})
    best = sw.best_table(pd.DataFrame(rows))
    assert list(best["rule"]) == ["bp", "np"]
    np_row = best.set_index("rule").loc["np"]
    assert np_row["lr"] == 0.1 and math.isclose(np_row["test_accuracy_mean"], 0.85)
    assert np_row["configs"] == 2 and np_row["trials"] == 6
    worst = sw.best_table(pd.DataFrame(rows), metric="test_accuracy", mode="min")
    assert worst.set_index("rule").loc["np", "lr"] == 0.3


def test_the_command_prints_the_summary_table(tmp_path, capsys):
    rc, out = _cli(["--serial", "--quiet", "--out", str(tmp_path), "--name", "cli",
                    "--set", "steps=50", "--set", "width=20", "--grid", "rule=bp,fa",
                    "--random", "lr=log_uniform:1e-2:0.3", "--samples", "2"], capsys)
    assert rc == 0, out.err
    assert "best per rule by test_accuracy" in out.out and "trials.parquet" in out.out
    assert list_runs(tmp_path)["rule"].value_counts().to_dict() == {"bp": 2, "fa": 2}
    rc, out = _cli(["--serial", "--json", "--quiet", "--out", str(tmp_path), "--name", "cli",
                    "--set", "steps=50", "--set", "width=20", "--grid", "rule=bp,fa",
                    "--random", "lr=log_uniform:1e-2:0.3", "--samples", "2"], capsys)
    data = json.loads(out.out)
    assert rc == 0 and data["ran"] == 0 and data["skipped"] == 4
    assert {r["rule"] for r in data["best"]} <= {"bp", "fa"}


def test_dry_run_lists_every_trial_and_marks_the_done_ones(tmp_path, capsys):
    flags = ["--out", str(tmp_path), "--name", "dry", "--set", "steps=20", "--set", "width=10",
             "--grid", "rule=bp,fa", "--random", "lr=log_uniform:1e-2:0.3", "--samples", "4",
             "--seeds", "2"]                               # 16 trials: more than a screenful cut
    rc, out = _cli(flags + ["--dry-run"], capsys)
    lines = out.out.splitlines()
    assert rc == 0 and lines[0].endswith("16 trials (0 done), varying rule, lr")
    assert len(lines) == 17 and not any("(done)" in line for line in lines)
    assert _cli(flags + ["--serial", "--quiet", "--samples", "1"], capsys)[0] == 0   # 4 of them
    rc, out = _cli(flags + ["--dry-run", "--json"], capsys)
    info = json.loads(out.out)
    assert info["trials"] == len(info["list"]) == 16 and info["done"] == 4
    assert sum(t["done"] for t in info["list"]) == 4
    rc, out = _cli(flags + ["--dry-run"], capsys)
    assert sum(line.endswith("(done)") for line in out.out.splitlines()) == 4


# ------------------------------------------------------------------ on Dask
@pytest.mark.slow
def test_eight_trials_on_a_two_worker_local_cluster(tmp_path):
    pytest.importorskip("distributed")
    s = spec(samples=2, seeds=2, rules=("np", "bp"))
    assert len(s.trials()) == 8
    started = time.perf_counter()
    result = sw.run_sweep(s, tmp_path, workers=2, progress=False)
    assert time.perf_counter() - started < 120
    assert (result.ran, result.total) == (8, 8)
    assert sum(result.counts.values()) == 8 and result.counts["failed"] == 0
    assert len(list_runs(tmp_path)) == 8
    hosts_pids = sw.load_trials(result.path)["run_dir"].nunique()
    assert hosts_pids == 8
    assert sw.run_sweep(s, tmp_path, workers=2, progress=False).ran == 0   # no cluster needed


# ------------------------------------------------------------------ the dashboard component
def test_the_sweep_view_plots_a_trials_table_without_a_browser(tmp_path):
    pytest.importorskip("panel")
    pytest.importorskip("holoviews")
    from app.sweep_view import SweepView

    s = spec(samples=2, seeds=1, rules=("np", "bp"))
    rows = []
    for t in s.trials():
        tag = {"sweep_id": s.sweep_id, "trial_id": t.trial_id, "point_id": t.point_id,
               "search": t.search, "sample": t.sample, "seed_index": t.seed_index,
               "varied": list(t.varied)}
        rows.append(sw.make_row(t.config, tag, {"status": "finished", "steps": 50,
                                                "test_accuracy": t.config["lr"]}, tmp_path / t.trial_id))
    rows[-1] = {**rows[-1], "status": "diverged", "test_accuracy": float("nan")}
    folder = sw.sweep_dir(tmp_path, s.sweep_id)
    folder.mkdir(parents=True)
    (folder / "sweep.json").write_text(json.dumps({**s.to_json(), "n_trials": 4,
                                                   "varied": s.varied}))
    sw.trials_frame(rows[:2]).to_parquet(folder / "trials.parquet")

    view = SweepView(tmp_path)
    try:
        assert view.sweep_select.value == s.sweep_id
        assert view.x_select.value == "sigma"                 # the first varied parameter
        assert len(view.plot_data) == 2
        scatter = view.plot.object
        assert scatter.kdims[0].name == "sigma" and scatter.vdims[0].name == "test_accuracy"
        assert view.plot.object.opts.get("plot").kwargs["logx"] is True
        assert "2 / 4 trials done" in view.status.object

        sw.trials_frame(rows).to_parquet(folder / "trials.parquet")   # two more finish
        view.refresh()
        assert len(view.plot_data) == 3                        # the diverged one is not drawn
        assert set(view.plot_data["rule"]) == {"np", "bp"}
        view.x_select.value = "lr"
        assert list(view.plot.object.data["lr"]) == list(view.plot_data["lr"])
        assert np.allclose(view.plot.object.data["test_accuracy"], view.plot.object.data["lr"])
        assert "3 finished, 1 diverged" in view.status.object
        view.x_select.value = "width"
        assert view.plot.object.opts.get("plot").kwargs["logx"] is False
        import panel as pn
        pn.panel(view).get_root()                              # renders to a Bokeh model
    finally:
        view.close()


def test_the_sweep_view_starts_a_sweep_in_a_thread_and_stops_it_on_close(tmp_path, monkeypatch):
    pytest.importorskip("panel")
    from app.sweep_view import SweepView

    # In-process (as without the sweep extra): quick and deterministic on a busy CI machine.
    monkeypatch.setattr(sw, "import_dask", lambda: (_ for _ in ()).throw(sw.SweepError("no dask")))
    view = SweepView(tmp_path)
    try:
        view.form_rules.value = ["bp"]
        view.form_samples.value, view.form_steps.value = 3, 50
        clicked = time.perf_counter()
        view._on_start()                                      # the Start button's handler
        assert time.perf_counter() - clicked < 1.0            # returns at once
        assert "in-process" in view.form_message.object
        assert view.handle.join(60)
        view.refresh()
        assert view.handle.status == "finished", view.handle.error
        assert view.sweep_select.value == view.handle.sweep_id
        assert len(view.frame) == 3 and len(view.plot_data) <= 3
        assert view.start_button.disabled is False and view.stop_button.disabled is True
    finally:
        view.close()
    assert view.handle._stop.is_set()                         # closing the session stops it


# ------------------------------------------------------------------ damaged input, two at once
def test_a_sweep_file_that_is_not_utf8_is_refused_in_one_line(tmp_path):
    path = tmp_path / "s.toml"
    path.write_bytes(b'[sweep]\nname = "\xff"\n')
    with pytest.raises(sw.SweepError, match="not UTF-8 text"):
        sw.load_sweep_file(path)


def test_resume_runs_again_the_trials_whose_folders_are_damaged(tmp_path):
    s = spec(samples=1, seeds=2, rules=("bp",))
    first = sw.run_sweep(s, tmp_path, serial=True, progress=False)
    assert first.ran == 2
    damaged = sorted(p for p in tmp_path.iterdir() if (p / "sweep.json").exists())
    (damaged[0] / "sweep.json").write_text("[1, 2]")            # valid JSON, not an object
    (damaged[1] / "summary.json").write_text('{"status": "finished", "steps": "abc"}')
    again = sw.run_sweep(s, tmp_path, serial=True, progress=False)
    assert (again.ran, again.skipped) == (2, 0) and set(again.table["status"]) == {"finished"}


def test_the_same_sweep_twice_at_once_is_refused_not_run_twice(tmp_path):
    s = spec(samples=1, seeds=1, rules=("bp",))
    sdir = sw.sweep_dir(tmp_path, s.sweep_id)
    sdir.mkdir(parents=True)
    held = _hold_sweep_lock(sdir)             # as the first sweep holds it while it runs
    try:
        with pytest.raises(sw.SweepBusy, match=f"sweep {s.sweep_id} is already running \\(pid"):
            sw.run_sweep(s, tmp_path, serial=True, progress=False)
        assert list_runs(tmp_path).empty
    finally:
        held.close()
    assert sw.run_sweep(s, tmp_path, serial=True, progress=False).ran == 1    # free again


def test_a_setting_added_later_leaves_the_ids_of_trials_at_its_default_alone():
    """`seeds`, the weight-mirror and sign-symmetry settings and independent noise came after sweeps and experiments
    began hashing configs: at their default they are not part of a trial's identity, so trials
    already run (and the report's saved tables) keep their ids; a population (seeds > 1) or
    another mirror rate is another trial. The settings that moved from RunConfig's fields into
    the rules' modules still count, whichever rule a config names."""
    from engine.config import RunConfig
    from engine.sweep.spec import identity, stable_hash

    single = RunConfig().to_dict()
    later = {"seeds", "ss_variant", "mirror_lr", "mirror_decay", "independent_noise"}
    assert later <= set(single) and not later & set(identity(single))
    without = {k: v for k, v in single.items() if k not in later}
    assert stable_hash(identity(single)) == stable_hash(without)
    assert stable_hash(identity({**single, "seeds": 4})) != stable_hash(without)
    assert stable_hash(identity({**single, "mirror_lr": 0.05})) != stable_hash(without)
    assert stable_hash(identity({**single, "independent_noise": True})) != stable_hash(without)
    fa = RunConfig(rule="fa").validate().to_dict()
    assert {"feedback_mode", "noise_draws", "weight_decay", "control_variate"} <= set(identity(fa))
