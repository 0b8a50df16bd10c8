"""Hostile sweep input ends in one line, fast and in little memory: sweep files nested past the
recursion limit, ranges past int64, special and huge files, sweeps of billions of trials, and run
and sweep folders whose JSON is a FIFO, a device, huge, nested or of the wrong types.

The code under test runs within `bounded`: a time limit (a FIFO would block it forever, a billion
trials would expand for hours) and a cap on the address space (reading /dev/zero raises
MemoryError instead of eating the machine), and its peak allocation is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import MiB, bounded

from engine import sweep as sw
from engine.cli.sweep import add_sweep_arguments, sweep_command

ROOT = Path(__file__).resolve().parents[1]
BASE = '[base]\ndataset = "digits"\nsteps = 5\nmetric_interval = 5\neval_interval = 5\nwidth = 8\n'
RANDOM_LR = "[random]\nlr = { log_uniform = [1e-3, 1] }\n"

def sweep_cli(argv: list[str], capsys, **bounds) -> tuple[int, str]:
    """`creditlab sweep ARGV` in this process, within bounds: (exit status, stderr)."""
    parser = add_sweep_arguments(argparse.ArgumentParser(prog="creditlab sweep"))
    with bounded(**bounds):
        rc = sweep_command(parser.parse_args(argv))
    return rc, capsys.readouterr().err


def one_line_error(rc: int, err: str) -> str:
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("creditlab: error: "), (rc, err[-2000:])
    assert "Traceback" not in err
    return lines[0]


def write(tmp_path: Path, text: str, name: str = "s.toml") -> str:
    (tmp_path / name).write_text(text)
    return str(tmp_path / name)


# ----------------------------------------------------------------- the sweep file
@pytest.mark.parametrize("name, text", [
    ("s.toml", BASE.replace("width = 8\n", "") + "width = " + "[" * 100_000 + "]" * 100_000 + "\n"),
    ("s.toml", "[grid]\nx = " + "{a=" * 50_000 + "1" + "}" * 50_000 + "\n"),
    ("s.yaml", "base:\n  width: " + "[" * 100_000 + "]" * 100_000 + "\n"),
], ids=["toml arrays", "toml inline tables", "yaml"])
def test_a_sweep_file_nested_past_the_recursion_limit_is_one_line(tmp_path, capsys, name, text):
    if name.endswith(".yaml"):
        pytest.importorskip("yaml")
    bounds = {"peak_mib": None} if name.endswith(".yaml") else {}
    line = one_line_error(*sweep_cli([write(tmp_path, text, name), "--dry-run"], capsys, **bounds))
    assert f"{name} nests lists or tables deeper than Python's recursion limit" in line


def test_nesting_the_parser_takes_but_copying_would_not_is_one_line(tmp_path, capsys):
    # 400 levels: tomllib reads them; deepcopy and json.dumps of the trials would recurse past
    # the limit, so the file is refused at 32.
    text = "[grid]\nwidth = [" + "[" * 400 + "1" + "]" * 400 + "]\n"
    line = one_line_error(*sweep_cli([write(tmp_path, text), "--dry-run"], capsys))
    assert "s.toml nests lists or tables more than 32 levels deep; at most 32 are allowed" in line
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    with bounded(), pytest.raises(sw.SweepError, match="the sweep nests lists or tables more than 32"):
        sw.parse_sweep({"base": {"width": deep}})


def test_yaml_aliases_that_expand_to_billions_of_values_are_one_line(tmp_path, capsys):
    pytest.importorskip("yaml")
    # Ten grid values, the last of them 10^10 ones: a few hundred bytes of YAML.
    lines = ["grid:", "  width:", "    - &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"    - &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    line = one_line_error(*sweep_cli([write(tmp_path, "\n".join(lines) + "\n", "s.yaml"), "--dry-run"],
                                     capsys, peak_mib=None))
    assert "s.yaml holds more than 1,000,000 values; at most 1,000,000 are allowed" in line


@pytest.mark.parametrize("run", [["--dry-run"], ["--serial"]])
@pytest.mark.parametrize("text, says", [
    ("[random]\nbatch_size = { int_uniform = [0, 1000000000000000000000000000000] }\n",
     "batch_size = {int_uniform = [0, 100000000000… (31 digits)]} in the sweep.random is not "
     "allowed; it needs two integers from -9223372036854775808 to 9223372036854775806"),
    ("[random]\nlr = { uniform = [0, 1" + "0" * 400 + "] }\n", "lr = {uniform = [0, 1000"),
    ("lr = 1" + "0" * 400 + "\n", "lr=1000"),
], ids=["int_uniform", "uniform", "base"])
def test_integers_past_what_a_setting_holds_are_one_line(tmp_path, capsys, run, text, says):
    line = one_line_error(*sweep_cli([write(tmp_path, BASE + text), *run, "--out", str(tmp_path / "runs")], capsys))
    assert says in line and len(line) < 400


@pytest.mark.parametrize("special", ["FIFO", "/dev/zero", "a link to /dev/zero", "a directory"])
def test_a_special_file_as_the_sweep_file_is_refused_before_it_is_read(tmp_path, capsys, special):
    path = tmp_path / "s.toml"
    if special == "FIFO":
        os.mkfifo(path)
    elif special == "/dev/zero":
        path = Path("/dev/zero")
    elif special == "a directory":
        path.mkdir()
    else:
        path.symlink_to("/dev/zero")
    line = one_line_error(*sweep_cli([str(path), "--dry-run"], capsys))
    assert f"cannot read the sweep file {str(path)!r}: " in line
    if special != "a directory":
        kind = "a FIFO" if special == "FIFO" else "a character device"
        assert f"it is {kind}, not a regular file; a sweep file is a regular .toml" in line
        assert "at most 1,048,576 bytes" in line


def test_a_sweep_file_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path, capsys):
    path = tmp_path / "big.toml"
    with open(path, "w") as f:                         # valid TOML: minutes to parse
        f.write(BASE + '[grid]\nrule = ["np"')
        for _ in range(16 * MiB // (64 * 6)):
            f.write(', "np"' * 64)
        f.write("]\n")
    line = one_line_error(*sweep_cli([str(path), "--dry-run"], capsys))
    size = path.stat().st_size
    assert f"cannot read the sweep file {str(path)!r}: it has {size:,} bytes, more than the 1,048,576 allowed" in line


# ----------------------------------------------------------------- billions of trials
@pytest.mark.parametrize("run", [["--dry-run"], ["--serial"]])
@pytest.mark.parametrize("text, flags, says", [
    ("[sweep]\nsamples = 1000000000\n" + BASE + RANDOM_LR, [],
     "samples=1000000000 is not allowed; it must be an integer >= 1 and <= 100,000"),
    ("[sweep]\nsamples = 1" + "0" * 30 + "\n" + BASE + RANDOM_LR, [], "samples=100000000000… (31 digits) is"),
    (BASE + RANDOM_LR, ["--samples", "1000000000"], "samples=1000000000 is not allowed"),
    (BASE, ["--seeds", "1000000000"], "seeds_per_point=1000000000 is not allowed"),
    (BASE.replace("steps = 5\n", "").replace("width = 8\n", "") + "[grid]\n" + "\n".join(
        f"{k} = [{', '.join(map(str, range(1, 101)))}]"
        for k in ("steps", "batch_size", "depth", "noise_draws", "width")) + "\n", [],
     "the sweep has 10,000,000,000 trials (grid points x samples x seeds_per_point), more than the "
     "100,000 allowed"),
    ("[sweep]\nsamples = 1000\nseeds_per_point = 1000\n" + BASE + RANDOM_LR, [],
     "the sweep has 1,000,000 trials"),
], ids=["samples", "samples past int64", "--samples", "--seeds", "grid product", "samples x seeds"])
def test_a_sweep_of_too_many_trials_is_counted_and_refused_before_it_is_expanded(
        tmp_path, capsys, run, text, flags, says):
    line = one_line_error(*sweep_cli([write(tmp_path, text), *flags, *run, "--out", str(tmp_path / "runs")],
                                     capsys))
    assert says in line
    assert not (tmp_path / "runs").exists()


def test_trials_of_huge_values_are_refused_by_their_size(tmp_path, capsys):
    width = "[" + ",".join(["7"] * 20_000) + "]"
    text = "[sweep]\nsamples = 100\nseeds_per_point = 100\n" + BASE.replace("width = 8\n", "") + \
        f"width = {width}\n" + RANDOM_LR
    line = one_line_error(*sweep_cli([write(tmp_path, text), "--dry-run"], capsys))
    assert "the sweep's 10,000 trials would hold" in line and "more than the 200,000,000 allowed" in line


def test_the_limits_hold_for_a_spec_built_in_python(tmp_path):
    s = sw.SweepSpec(samples=10**9, searches=[sw.Search("s", random={"lr": sw.Distribution("uniform", (0.0, 1.0))})])
    with bounded(), pytest.raises(sw.SweepError, match="the sweep has 1,000,000,000 trials"):
        s.trials()
    with bounded(), pytest.raises(sw.SweepError, match="the sweep has 1,000,000,000 trials"):
        sw.run_sweep(s, tmp_path, serial=True, progress=False)


@pytest.mark.parametrize("flag", ["--set", "--grid"])
def test_a_flag_nested_past_the_recursion_limit_is_one_line(capsys, flag):
    line = one_line_error(*sweep_cli([flag, "width=" + "[" * 50_000 + "]" * 50_000, "--dry-run"], capsys))
    assert "nests lists deeper than Python's recursion limit" in line and len(line) < 300


def test_a_long_name_is_one_line_not_a_file_name_too_long(tmp_path, capsys):
    text = '[sweep]\nname = "' + "x" * 500_000 + '"\n' + BASE
    line = one_line_error(*sweep_cli([write(tmp_path, text), "--serial", "--out", str(tmp_path)], capsys))
    assert "(500,000 characters) is not allowed; it must be at most 100 characters" in line


# ----------------------------------------------------------------- what a resume reads
def tiny_spec(tmp_path: Path) -> sw.SweepSpec:
    return sw.parse_sweep(sw.load_sweep_file(write(tmp_path, "[sweep]\nname = \"t\"\n" + BASE)))


def hostile_tag(kind: str, path: Path) -> None:
    if kind == "FIFO":
        os.mkfifo(path)
    elif kind == "/dev/zero":
        path.symlink_to("/dev/zero")
    elif kind == "deep":
        path.write_text("[" * 200_000 + "]" * 200_000)
    elif kind == "deep object":
        path.write_text('{"a":' * 200_000 + "1" + "}" * 200_000)
    elif kind == "huge":
        with open(path, "w") as f:
            f.write('{"pad": "')
            f.truncate(64 * MiB)                        # 64 MB of NULs: not even read
    else:                                               # the sweep's id, a trial id that is a list
        path.write_text(json.dumps({"sweep_id": kind, "trial_id": ["a"], "point_id": "p", "search": "s",
                                    "sample": 0, "seed_index": 0, "varied": []}))


@pytest.mark.parametrize("kind", ["FIFO", "/dev/zero", "deep", "deep object", "huge", "wrong types"])
def test_a_hostile_run_folder_tag_is_skipped_on_resume(tmp_path, capsys, kind):
    s = tiny_spec(tmp_path)
    runs = tmp_path / "runs"
    (runs / "r1").mkdir(parents=True)
    hostile_tag(s.sweep_id if kind == "wrong types" else kind, runs / "r1" / sw.SWEEP_FILE)
    with bounded():
        assert sw.sweep_runs(runs, s.sweep_id) == {} and sw.finished_trials(runs, s.sweep_id) == {}
    rc, err = sweep_cli([str(tmp_path / "s.toml"), "--dry-run", "--out", str(runs)], capsys)
    assert rc == 0 and "Traceback" not in err


@pytest.mark.parametrize("summary", [
    '{"status": "finished", "steps": 1e400}',           # float("inf"): int() overflows
    '{"status": "finished", "steps": 5, "error": {"a": [1]}}',
    '{"status": "diverged", "steps": 5, "diverged_step": "x"}',
    '{"status": "finished", "steps": 5, "test_accuracy": 1' + "0" * 400 + "}",
])
def test_a_hostile_summary_is_a_damaged_trial_run_again(tmp_path, summary):
    s = tiny_spec(tmp_path)
    first = sw.run_sweep(s, tmp_path / "runs", serial=True, progress=False)
    assert first.ran == 1
    run_dir = Path(first.table["run_dir"][0])
    (run_dir / "summary.json").write_text(summary)
    again = sw.run_sweep(s, tmp_path / "runs", serial=True, progress=False)
    damaged = "test_accuracy" not in summary
    assert (again.ran, again.skipped) == ((1, 0) if damaged else (0, 1))
    assert list(again.table["status"]) == ["finished"]


def test_a_run_folder_config_of_the_wrong_types_never_reaches_the_table(tmp_path):
    s = tiny_spec(tmp_path)
    first = sw.run_sweep(s, tmp_path / "runs", serial=True, progress=False)
    run_dir = Path(first.table["run_dir"][0])
    (run_dir / "config.json").write_text(json.dumps({"lr": {"x": [1]}, "width": {"a": 1}, "rule": ["np"]}))
    again = sw.run_sweep(s, tmp_path / "runs", serial=True, progress=False)
    assert again.skipped == 1
    row = again.table.iloc[0]
    trial = s.trials()[0]
    assert (row["lr"], row["rule"], row["width"]) == (trial.config["lr"], trial.config["rule"], "8")
    assert sw.load_trials(again.path)["lr"].tolist() == [trial.config["lr"]]


def test_hostile_files_in_a_sweeps_folder_are_skipped_by_the_listing(tmp_path):
    base = tmp_path / "sweeps"
    for kind in ("FIFO", "/dev/zero", "deep", "huge"):
        (base / kind.strip("/")).mkdir(parents=True)
        hostile_tag(kind, base / kind.strip("/") / sw.SWEEP_FILE)
    (base / "ok").mkdir()
    (base / "ok" / sw.SWEEP_FILE).write_text('{"sweep_id": "ok"}')
    os.mkfifo(base / "ok" / sw.TRIALS_FILE)
    with bounded():
        assert [s["sweep_id"] for s in sw.list_sweeps(tmp_path)] == ["ok"]
        assert sw.load_trials(base / "ok").empty


def test_a_fifo_as_the_sweep_lock_is_one_line(tmp_path, capsys):
    s = tiny_spec(tmp_path)
    sdir = sw.sweep_dir(tmp_path / "runs", s.sweep_id)
    sdir.mkdir(parents=True)
    os.mkfifo(sdir / "running.lock")
    rc, err = sweep_cli([str(tmp_path / "s.toml"), "--serial", "--out", str(tmp_path / "runs")], capsys)
    assert rc == 1 and err.strip().splitlines()[-1].endswith("running.lock is not a regular file; remove it")


# ----------------------------------------------------------------- the command line
@pytest.mark.parametrize("case", ["FIFO", "a billion samples"])
def test_the_command_line_ends_in_exit_2_and_one_line(tmp_path, case):
    if case == "FIFO":
        os.mkfifo(tmp_path / "s.toml")
        path, says = str(tmp_path / "s.toml"), "it is a FIFO, not a regular file"
    else:
        path, says = write(tmp_path, "[sweep]\nsamples = 1000000000\n" + BASE + RANDOM_LR), "samples=1000000000"
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "engine", "sweep", path, "--serial", "--out",
                           str(tmp_path / "runs")], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "OMP_NUM_THREADS": "1"},
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30)))
    line = one_line_error(done.returncode, done.stderr)
    assert says in line and time.perf_counter() - started < 30
