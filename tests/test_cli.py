"""The `creditlab` command line (engine/cli/main.py), mostly in-process through `main(argv)`."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from engine import cli
from engine.cli.main import main
from engine.config import RunConfig
from engine.errors import ConfigError
from engine.rules import RULES

LAYER_KEYS = {"weight_angle_deg", "signal_angle_deg", "update_angle_deg", "sign_congruence",
              "relative_error"}
TOP_KEYS = {"rule", "steps", "test_accuracy", "test_loss", "status", "run_dir", "layers"}
SHORT = ["--steps", "20", "--metric-interval", "5", "--eval-interval", "10", "--quiet"]


def strict_json(text: str):
    """json.loads that rejects NaN / Infinity (they are not valid JSON)."""
    def bad(name):
        raise ValueError(f"invalid JSON constant {name}")
    return json.loads(text, parse_constant=bad)


def run_cli(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


# ----------------------------------------------------------------- train --json
@pytest.mark.parametrize("rule,shape,n_layers", [
    ("np", [], 2),                                    # RunConfig's default depth
    ("fa", ["--width", "16,12,8"], 3),                # depth follows a width list
    ("dfa", ["--depth", "1", "--width", "10"], 1),
])
def test_train_json_reports_final_metrics_per_hidden_layer(capsys, tmp_path, rule, shape, n_layers):
    rc, out, err = run_cli(capsys, "train", "--rule", rule, "--dataset", "digits", *shape, *SHORT,
                           "--out", str(tmp_path), "--json")
    assert rc == 0, err
    assert len(out.strip().splitlines()) == 1                    # ONE object on stdout
    data = strict_json(out)
    assert TOP_KEYS <= set(data)
    assert data["rule"] == rule and data["steps"] == 20 and data["status"] == "finished"
    assert 0.0 <= data["test_accuracy"] <= 1.0 and data["test_loss"] > 0
    assert len(data["layers"]) == n_layers
    for i, layer in enumerate(data["layers"], start=1):
        assert layer["layer"] == i and LAYER_KEYS <= set(layer)
        assert layer["signal_angle_deg"] is not None and layer["update_angle_deg"] is not None
        if rule == "dfa":                 # not defined for direct feedback: NaN → null
            assert layer["weight_angle_deg"] is None
    run_dir = Path(data["run_dir"])
    assert run_dir.parent == tmp_path
    assert {"config.json", "metrics.parquet", "summary.json", "checkpoint.pt"} <= {
        p.name for p in run_dir.iterdir()}
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"


def test_train_human_summary_and_no_save(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, out, err = run_cli(capsys, "train", "--dataset", "teacher", "--rule", "kp", *SHORT,
                           "--no-save")
    assert rc == 0, err
    assert "kp on teacher: finished after 20 steps" in out
    assert "saved to" not in out and not (tmp_path / "runs").exists()


def test_train_progress_bar_goes_to_stderr(capsys, tmp_path):
    rc, out, err = run_cli(capsys, "train", "--steps", "10", "--metric-interval", "5",
                           "--out", str(tmp_path), "--json")
    assert rc == 0
    strict_json(out)                                  # stdout is still only the JSON object
    assert "10/10" in err and "signal°" in err


# ----------------------------------------------------------------- bad input
BAD = [
    (["--rule", "nope"], "rule='nope'"),
    (["--dataset", "nosuchset"], "dataset='nosuchset'"),
    (["--depth", "0"], "depth=0"),
    (["--width", "0"], "width=0"),
    (["--width", "abc"], "width='abc'"),
    (["--rule", "np", "--sigma", "0"], "sigma=0"),
    (["--sigma", "-1"], "sigma=-1"),
    (["--lr", "nan"], "lr=nan"),
    (["--lr", "inf"], "lr=inf"),
    (["--lr", "-1"], "lr=-1"),
    (["--feedback-lr", "-0.1"], "feedback_lr=-0.1"),
    (["--steps", "0"], "steps=0"),
    (["--batch-size", "0"], "batch_size=0"),
    (["--steps", "ten"], "steps='ten'"),
    (["--lr", "fast"], "lr='fast'"),
    (["--bogus-flag"], "--bogus-flag"),
    (["--device", "tpu"], "device='tpu'"),
    (["--depth", "2", "--width", "50,20,10"], "width has 3 entries but depth is 2"),
    (["--activation", "swish"], "activation='swish'"),
    (["--depth"], "--depth"),                          # argparse: missing value
    # values that used to pass validation and then crash, hang or be silently changed
    (["--lr", "1e308"], "lr=1e+308"),
    (["--feedback-lr", "1e308"], "feedback_lr=1e+308"),
    (["--rule", "kp", "--weight-decay", "1e308"], "weight_decay=1e+308"),
    (["--sigma", "1e308"], "sigma=1e+308"),
    (["--rule", "np", "--feedback-mode", "ridge", "--ridge-gamma", "1e-50"], "ridge_gamma=1e-50"),
    (["--seed", "18446744073709551615"], "seed=18446744073709551615"),
    (["--steps", "9223372036854775808"], "steps=9223372036854775808"),
    (["--width", "99999999999999999999"], "width=99999999999999999999"),
    (["--width", "60000", "--depth", "5"], "weights"),
    (["--batch-size", "1000000000"], "batch_size=1000000000"),
    (["--depth", "٣"], "depth='٣'"),
    (["--depth", "1_0"], "depth='1_0'"),
    (["--steps", "1e3"], "steps='1e3'"),
    (["--lr", "1e-400"], "lr='1e-400'"),
    (["--lr", "-1e-3"], "lr=-0.001"),
    (["--rule", "np", "--sigma", "1e-30"], "sigma=1e-30"),     # σ² would overflow λ̂ in float32
]


@pytest.mark.parametrize("argv,names", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_exits_2_with_one_line(capsys, tmp_path, argv, names):
    rc, out, err = run_cli(capsys, "train", *argv, "--out", str(tmp_path), "--quiet")
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("creditlab: error: ") and names in lines[0]
    assert "Traceback" not in err and out == ""
    assert not any(tmp_path.iterdir())                 # nothing saved for a run that never started


@pytest.mark.parametrize("argv", [[], ["frobnicate"], ["runs", "--bogus"], ["serve", "--port", "x"],
                                  ["bench", "--device", "tpu"]])
def test_other_usage_errors_are_one_line_too(capsys, argv):
    rc, out, err = run_cli(capsys, *argv)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_help_exits_0(capsys):
    rc, out, _ = run_cli(capsys, "train", "--help")
    assert rc == 0
    for name in RULES:                                 # choices come from the registry
        assert name in out
    text = " ".join(out.split())
    assert f"(default: {RunConfig().sigma})" in text   # defaults come from RunConfig
    assert f"(default: {RunConfig().steps})" in text


# ----------------------------------------------------------------- intervals
def train_config(*argv: str) -> RunConfig:
    from engine.cli.parser import build_parser, config_from_args
    return config_from_args(build_parser(only="train").parse_args(["train", *argv]))


@pytest.mark.parametrize("argv, metric, evaluate", [
    ([], 50, 250),                                       # the defaults, as they were
    (["--metric-interval", "2000"], 2000, 2000),
    (["--metric-interval", "100"], 100, 300),            # the first multiple from 250 on
    (["--metric-interval", "5"], 5, 250),
    (["--metric-interval", "2000", "--eval-interval", "250"], 2000, 250),     # given: kept
    (["--eval-interval", "100"], 50, 100),
])
def test_an_eval_interval_left_out_follows_the_metric_interval(argv, metric, evaluate):
    cfg = train_config(*argv)
    assert (cfg.metric_interval, cfg.eval_interval) == (metric, evaluate)


def test_a_bad_metric_interval_is_still_named():
    with pytest.raises(ConfigError, match=r"^metric_interval=0 is not allowed; it must be an integer >= 1"):
        train_config("--metric-interval", "0")


def test_a_run_asked_to_measure_every_k_steps_measures_every_k_steps(capsys, tmp_path):
    """--metric-interval 300 with eval_interval at its default (250) logged, and measured every
    curve, at steps 250 and 500 too: every step that evaluates the test set is a full record."""
    rc, out, err = run_cli(capsys, "train", "--steps", "600", "--metric-interval", "300", "--width", "8",
                           "--quiet", "--out", str(tmp_path), "--json")
    assert rc == 0, err
    records = pd.read_parquet(Path(strict_json(out)["run_dir"]) / "metrics.parquet")
    assert records["step"].tolist() == [300, 600]
    assert records["test_loss"].notna().all() and records["signal_angle_deg_mean"].notna().all()


# ----------------------------------------------------------------- divergence
def test_diverging_run_exits_3_naming_the_step_and_is_saved(capsys, tmp_path):
    rc, out, err = run_cli(capsys, "train", "--optimizer", "sgd", "--lr", "1e6", "--steps", "50",
                           "--quiet", "--out", str(tmp_path), "--json")
    assert rc == 3
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert re.search(r"diverged.*at step \d+; lower lr \(now 1e\+06\)", lines[0]), lines[0]
    data = strict_json(out)
    assert data["status"] == "diverged" and data["test_loss"] is None
    summary = json.loads((Path(data["run_dir"]) / "summary.json").read_text())
    assert summary["status"] == "diverged"
    assert f"at step {summary['diverged_step']}" in lines[0]


# ----------------------------------------------------------------- determinism
def metric_history(run_dir: str) -> pd.DataFrame:
    df = pd.read_parquet(Path(run_dir) / "metrics.parquet")
    return df.drop(columns=["time", "run_id"])


def test_same_seed_gives_identical_metric_history(capsys, tmp_path):
    dirs = []
    for i, seed in enumerate(["3", "3", "4"]):
        rc, out, err = run_cli(capsys, "train", "--rule", "np", "--seed", seed, *SHORT,
                               "--out", str(tmp_path / str(i)), "--json")
        assert rc == 0, err
        dirs.append(strict_json(out)["run_dir"])
    a, b, c = (metric_history(d) for d in dirs)
    assert len(a) == 4
    pd.testing.assert_frame_equal(a, b)
    assert not a["train_loss"].equals(c["train_loss"])      # a different seed differs


# ----------------------------------------------------------------- runs
def test_runs_lists_saved_runs(capsys, tmp_path):
    rc, out, _ = run_cli(capsys, "runs", "--out", str(tmp_path))
    assert rc == 0 and out.strip() == f"no runs in {tmp_path}"
    ids = []
    for rule in ("bp", "ss"):
        rc, out, _ = run_cli(capsys, "train", "--rule", rule, *SHORT, "--out", str(tmp_path), "--json")
        ids.append(Path(strict_json(out)["run_dir"]).name)
    rc, out, _ = run_cli(capsys, "runs", "--out", str(tmp_path))
    assert rc == 0 and all(i in out for i in ids) and "finished" in out
    rc, out, _ = run_cli(capsys, "runs", "--out", str(tmp_path), "--json")
    listed = strict_json(out)
    assert [r["id"] for r in listed] == sorted(ids)
    assert {r["rule"] for r in listed} == {"bp", "ss"} and {r["steps"] for r in listed} == {20}


# ----------------------------------------------------------------- serve
def test_serve_runs_panel_on_the_app_package(capsys, monkeypatch):
    import importlib.util
    calls = []
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name == "panel" else _app_spec())

    envs = []

    class Server:
        def __init__(self, cmd, preexec_fn=None, env=None):
            calls.append(cmd)
            envs.append(env)

        def wait(self):
            return 0

    monkeypatch.setattr(subprocess, "Popen", Server)
    monkeypatch.delenv("CREDITLAB_SAVE_RUNS", raising=False)
    before = signal.getsignal(signal.SIGTERM)
    rc, _, _ = run_cli(capsys, "serve", "--port", "5111", "--address", "127.0.0.1", "--show")
    assert rc == 0
    assert "CREDITLAB_SAVE_RUNS" not in envs[0] and envs[0]["CREDITLAB_RUNS"] == os.environ["CREDITLAB_RUNS"]
    # --out and --no-save reach the dashboard through its environment (app/library.py reads it)
    assert run_cli(capsys, "serve", "--out", "elsewhere", "--no-save")[0] == 0
    assert envs[1]["CREDITLAB_RUNS"] == os.path.abspath("elsewhere") and envs[1]["CREDITLAB_SAVE_RUNS"] == "0"
    assert signal.getsignal(signal.SIGTERM) is before        # our forwarding handler is gone
    cmd = calls[0]
    assert cmd[1:4] == ["-m", "panel", "serve"] and os.path.basename(cmd[4]) == "app"
    assert cmd[5:] == ["--address", "127.0.0.1", "--port", "5111",
                       "--check-unused-sessions", "1000", "--unused-session-lifetime", "10000",
                       "--allow-websocket-origin", "127.0.0.1:5111",
                       "--allow-websocket-origin", "localhost:5111", "--show"]


def _app_spec():
    import importlib.machinery
    spec = importlib.machinery.ModuleSpec("app", None, is_package=True)
    spec.submodule_search_locations = [str(Path(cli.__file__).parent.parent / "app")]
    return spec


def test_serve_without_panel_says_how_to_install(capsys, monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "panel" else real(name, *a))
    rc, _, err = run_cli(capsys, "serve")
    assert rc == 2
    assert err.strip() == "creditlab: error: the dashboard needs the app extra: pip install 'creditlab[app]'"


# ----------------------------------------------------------------- bench
def test_bench_quick_json(capsys):
    rc, out, err = run_cli(capsys, "bench", "--quick", "--json", "--threads", "1")
    assert rc == 0, err
    data = strict_json(out)
    assert data["device"] == "cpu" and data["threads"] == 1 and data["torch"] == torch.__version__
    assert [n["name"] for n in data["networks"]] == ["784-50-20-10", "784-256-256-10",
                                                   "conv-small 1×28×28"]
    for net in data["networks"]:
        assert net["baseline_ms"] > 0
        assert [r["rule"] for r in net["rules"]] == list(RULES) + ["np-ridge"]
        assert all(r["ratio"] > 0 and r["ratio_metrics_off"] > 0 for r in net["rules"])
        floors = [(f["floor"], f["rule"]) for f in net["floors"] if f["ratio"] > 0]
        assert floors == ([] if net["name"].startswith("conv") else
                          [("np-floor", "np"), ("np-dfa-floor", "np-dfa")])
    assert {g["rule"] for g in data["goals"]} == {"np", "np-dfa", "sg", "fa"}
    ridge = data["ridge_goal"]
    assert (ridge["rule"], ridge["against"], ridge["network"]) == ("np-ridge", "np", "784-50-20-10")
    assert ridge["ratio"] > 0
    # a smoke test's timings give no verdict on the goals
    from engine.bench.rules import format_report
    text = format_report(data)
    assert "QUICK: not a real timing" in text and ": met" not in text and "MISSED" not in text


# ----------------------------------------------------------------- real processes
def console_script() -> list[str]:
    exe = shutil.which("creditlab", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "engine"]


def test_console_script_errors_without_traceback(tmp_path):
    for argv, rc in [(["train", "--rule", "nope"], 2), (["train", "--nope"], 2),
                     (["train", "--optimizer", "sgd", "--lr", "1e6", "--steps", "30", "--quiet"], 3)]:
        proc = subprocess.run(console_script() + argv + ["--out", str(tmp_path)],
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert proc.returncode == rc, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert proc.stderr.startswith("creditlab: error: ") and "Traceback" not in proc.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_stops_gracefully_saves_and_exits_130(tmp_path):
    proc = subprocess.Popen(console_script() + ["train", "--steps", "10000000", "--metric-interval", "1",
                                                "--quiet", "--out", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 90
        while not list(tmp_path.glob("*/metrics.parquet")):     # training (and logging) has begun
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    run_dir = next(tmp_path.iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "stopped" and 0 < summary["steps"] < 10000000
    assert (run_dir / "checkpoint.pt").exists()


# ------------------------------------------------------------------ --resume
def _metrics(run_dir: Path) -> pd.DataFrame:
    df = pd.read_parquet(run_dir / "metrics.parquet")
    return df.drop(columns=[c for c in ("time", "run_id") if c in df]).reset_index(drop=True)


@pytest.mark.parametrize("extra", [["--rule", "np", "--perturb", "cycle"],
                                   ["--rule", "np", "--feedback-mode", "ridge", "--optimizer", "adam"],
                                   ["--rule", "np", "--independent-noise", "--seeds", "2"]])
def test_resume_continues_a_run_exactly(tmp_path, capsys, extra):
    """75 steps, then --resume to 150, gives the history of one uninterrupted 150-step run:
    same batches, same noise, same optimiser and feedback-solver state."""
    common = ["train", "--metric-interval", "25", "--eval-interval", "75", "--quiet", "--json",
              "--seed", "3", *extra]
    assert main([*common, "--steps", "150", "--out", str(tmp_path / "whole")]) == 0
    whole = Path(json.loads(capsys.readouterr().out)["run_dir"])
    assert main([*common, "--steps", "75", "--out", str(tmp_path / "parts")]) == 0
    part = Path(json.loads(capsys.readouterr().out)["run_dir"])
    assert main(["train", "--resume", str(part), "--steps", "150", "--quiet", "--json"]) == 0
    resumed = json.loads(capsys.readouterr().out)
    assert resumed["run_dir"] == str(part) and resumed["steps"] == 150
    pd.testing.assert_frame_equal(_metrics(part), _metrics(whole))
    assert json.loads((part / "summary.json").read_text())["status"] == "finished"
    assert json.loads((part / "config.json").read_text())["steps"] == 150


def test_resume_refuses_what_it_cannot_do_in_one_line(tmp_path, capsys):
    assert main(["train", "--steps", "20", "--quiet", "--out", str(tmp_path)]) == 0
    run = next(tmp_path.iterdir())
    capsys.readouterr()
    for argv, words in [(["--resume", str(run), "--sigma", "0.1"], "drop --sigma"),
                        (["--resume", str(run), "--steps", "10"], "has done 20 steps"),
                        (["--resume", str(tmp_path / "nothing")], "does not exist"),
                        (["--resume", str(run), "--no-save"], "drop --no-save")]:
        assert main(["train", *argv]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("creditlab: error:") and words in err and "\n" not in err, err


def _start_long_run(tmp_path):
    proc = subprocess.Popen(console_script() + ["train", "--steps", "10000000", "--metric-interval", "5",
                                                "--quiet", "--out", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 90
    while not list(tmp_path.glob("*/checkpoint.pt")):     # logging, and its first checkpoint
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
        time.sleep(0.1)
    return proc


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_stops_gracefully_saves_and_exits_143(tmp_path):
    proc = _start_long_run(tmp_path)
    try:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err and "--resume" in err
    summary = json.loads((next(tmp_path.iterdir()) / "summary.json").read_text())
    assert summary["status"] == "stopped" and summary["steps"] > 0


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_killed_run_is_reported_interrupted_and_can_be_resumed(tmp_path, capsys):
    proc = _start_long_run(tmp_path)
    try:
        # while it runs, it is not resumed a second time into the same folder
        assert main(["train", "--resume", str(next(tmp_path.iterdir())), "--quiet"]) == 2
        assert "still running" in capsys.readouterr().err
        proc.kill()                                   # SIGKILL: nothing gets to clean up
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    run = next(tmp_path.iterdir())
    assert main(["runs", "--out", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["status"] == "interrupted"
    done = torch.load(run / "checkpoint.pt", weights_only=False)["step"]
    assert main(["train", "--resume", str(run), "--steps", str(done + 20), "--quiet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == done + 20
    assert json.loads((run / "summary.json").read_text())["status"] == "finished"
    assert pd.read_parquet(run / "metrics.parquet")["step"].max() == done + 20


def test_the_program_ends_at_once_and_keeps_its_output_and_exit_status(tmp_path):
    """`creditlab train` skips Python's slow shutdown with torch loaded (os._exit): what it
    printed and saved, and its exit status, must all survive that."""
    done = subprocess.run([sys.executable, "-m", "engine", "train", "--steps", "5", "--quiet",
                           "--json", "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["steps"] == 5
    run_dir = Path(result["run_dir"])
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"
    assert len(pd.read_parquet(run_dir / "metrics.parquet")) >= 1
    diverged = subprocess.run([sys.executable, "-m", "engine", "train", "--optimizer", "sgd",
                               "--lr", "1e6", "--steps", "50", "--no-save", "--quiet"],
                              capture_output=True, text=True, timeout=300)
    assert diverged.returncode == 3 and "diverged" in diverged.stderr


def test_the_cli_trains_a_population_in_one_process_and_its_folder_has_a_row_per_member(capsys, tmp_path):
    """`creditlab train --seeds 3`: one run folder whose metrics hold each member's rows, whose
    summary gives each member and their spread, listed with its P, and resumed whole."""
    from engine.runs.reader import list_runs

    common = ["train", "--seeds", "3", "--width", "12", "--metric-interval", "10", "--quiet", "--json"]
    assert main([*common, "--steps", "20", "--out", str(tmp_path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["seeds"] == 3 and [m["seed"] for m in summary["members"]] == [0, 1, 2]
    folder = Path(summary["run_dir"])
    df = pd.read_parquet(folder / "metrics.parquet")
    assert sorted(df["step"].unique()) == [10, 20]
    assert df.groupby("step")["member"].apply(list).tolist() == [[0, 1, 2], [0, 1, 2]]
    assert df.groupby("step")["seed"].apply(list).tolist() == [[0, 1, 2], [0, 1, 2]]
    last = df[df["step"] == 20].set_index("member")
    assert last["test_accuracy"].tolist() == pytest.approx([m["test_accuracy"] for m in summary["members"]])
    listed = list_runs(tmp_path).iloc[0]
    assert listed["seeds"] == 3 and listed["test_accuracy_std"] == pytest.approx(summary["test_accuracy_std"])

    assert main(["train", "--resume", str(folder), "--steps", "30", "--quiet", "--json"]) == 0
    resumed = json.loads(capsys.readouterr().out)
    assert resumed["steps"] == 30 and len(resumed["members"]) == 3
    df = pd.read_parquet(folder / "metrics.parquet")
    assert sorted(df["step"].unique()) == [10, 20, 30] and len(df) == 9
    assert df["seed"].tolist() == [0, 1, 2] * 3
