"""Run folders handed over by someone else: loading one never runs code, and every damaged file
ends in one line naming it.

Each case plants one hostile or damaged file in a copy of a real run folder, then resumes it
(`creditlab train --resume`), lists it (`creditlab runs`) or reads it (engine.runs.writer). A payload
that would run code writes a marker file; no test may ever see it.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from engine.cli.main import main
from engine.runs.reader import UnreadableRun, list_runs, load_run, load_summary, read_checkpoint

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("no_hang")


@pytest.fixture
def no_hang():
    """A case that blocks (a FIFO read, an endless parse) fails here instead of stalling the suite."""
    def hang(signum, frame):
        raise TimeoutError("the case hung for 120 s")
    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


class Payload:
    """Unpickling this runs `touch <marker>`: the code a crafted checkpoint would carry."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> Path:
    """One real run folder (4 steps, saved), copied by each test before it damages it."""
    out = tmp_path_factory.mktemp("runs")
    rc = main(["train", "--steps", "4", "--width", "8", "--metric-interval", "2",
               "--eval-interval", "4", "--quiet", "--out", str(out)])
    assert rc == 0
    return next(out.iterdir())


@pytest.fixture
def run(original, tmp_path) -> Path:
    folder = tmp_path / "runs" / original.name
    shutil.copytree(original, folder)
    return folder


def _cli(capsys, *argv) -> tuple[int, list[str], str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, err.strip().splitlines(), out


def _edit_checkpoint(folder: Path, change) -> None:
    state = torch.load(folder / "checkpoint.pt", weights_only=True)
    state = change(state) or state
    torch.save(state, folder / "checkpoint.pt")


def _set(path: list, value):
    def change(state):
        target = state
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


def _drop(key):
    return lambda state: state.pop(key) and None


def _write(name: str, data: bytes | str):
    def plant(folder: Path, marker: Path):
        target = folder / name
        target.unlink(missing_ok=True)
        target.write_bytes(data.encode() if isinstance(data, str) else data)
    return plant


def _pickle_payload(folder: Path, marker: Path):
    (folder / "checkpoint.pt").write_bytes(pickle.dumps({"config": {}, "x": Payload(marker)}))


def _torch_zip_payload(folder: Path, marker: Path):
    state = torch.load(folder / "checkpoint.pt", weights_only=True)
    state["rule"] = {"hidden": Payload(marker)}
    torch.save(state, folder / "checkpoint.pt")


def _payload_in_old_protocol(folder: Path, marker: Path):
    with open(folder / "checkpoint.pt", "wb") as f:       # torch's legacy, non-zip format
        torch.save({"x": Payload(marker)}, f, _use_new_zipfile_serialization=False)


def _fifo(name: str):
    def plant(folder: Path, marker: Path):
        (folder / name).unlink(missing_ok=True)
        os.mkfifo(folder / name)
    return plant


def _directory(name: str):
    def plant(folder: Path, marker: Path):
        (folder / name).unlink(missing_ok=True)
        (folder / name).mkdir()
    return plant


def _link_to(name: str, target: str):
    def plant(folder: Path, marker: Path):
        (folder / name).unlink(missing_ok=True)
        (folder / name).symlink_to(target)
    return plant


def _truncated(name: str):
    def plant(folder: Path, marker: Path):
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: len(data) // 2])
    return plant


def _checkpoint(change):
    return lambda folder, marker: _edit_checkpoint(folder, change)


def _metrics(frame_change):
    def plant(folder: Path, marker: Path):
        df = pd.read_parquet(folder / "metrics.parquet")
        frame_change(df).to_parquet(folder / "metrics.parquet")
    return plant


DEEP = "[" * 100_000 + "]" * 100_000

# The code-running payloads: refused, and the marker never written.
PAYLOADS = {
    "plain pickle": _pickle_payload,
    "pickle inside torch's zip": _torch_zip_payload,
    "pickle in torch's legacy format": _payload_in_old_protocol,
}

# Damaged or edited run folders that --resume must refuse in one line naming what is wrong.
DAMAGED = {
    "checkpoint garbage": _write("checkpoint.pt", os.urandom(4096)),
    "checkpoint empty": _write("checkpoint.pt", b""),
    "checkpoint text": _write("checkpoint.pt", '{"config": {}}'),
    "checkpoint cut short": _truncated("checkpoint.pt"),
    "checkpoint a folder": _directory("checkpoint.pt"),
    "checkpoint a fifo": _fifo("checkpoint.pt"),
    "checkpoint a device": _link_to("checkpoint.pt", "/dev/zero"),
    "checkpoint not a dict": _checkpoint(lambda s: [1, 2, 3]),
    "no model": _checkpoint(_drop("model")),
    "no optimizer": _checkpoint(_drop("optimizer")),
    "no generators": _checkpoint(_drop("generators")),
    "no config": _checkpoint(_drop("config")),
    "config a list": _checkpoint(_set(["config"], [1])),
    "config unknown setting": _checkpoint(_set(["config", "no_such_setting"], 1)),
    "config bad value": _checkpoint(_set(["config", "depth"], -1)),
    "config plugin rule": _checkpoint(_set(["config", "rule"], "my-plugin-rule")),
    "width changed": _checkpoint(_set(["config", "width"], 9)),
    "depth changed": _checkpoint(_set(["config", "depth"], 3)),
    "rule changed": _checkpoint(_set(["config", "rule"], "dfa")),
    "model changed": _checkpoint(_set(["config", "model"], "conv-small")),
    "model a string": _checkpoint(_set(["model"], "weights")),
    "weight reshaped": _checkpoint(lambda s: s["model"].update(
        {k: v.reshape(-1) for k, v in s["model"].items()})),
    "step a string": _checkpoint(_set(["step"], "four")),
    "step negative": _checkpoint(_set(["step"], -3)),
    "step huge": _checkpoint(_set(["step"], 10**30)),
    "cursor huge": _checkpoint(_set(["cursor"], 10**9)),
    "cursor a tensor": _checkpoint(_set(["cursor"], torch.zeros(3))),
    "order wrong": _checkpoint(_set(["order"], torch.zeros(3))),
    "order out of range": _checkpoint(lambda s: s.update(order=s["order"] + 10**6)),
    "generator state garbage": _checkpoint(_set(["generators", "rule"], torch.zeros(3))),
    "optimizer garbage": _checkpoint(_set(["optimizer"], {"state": 5})),
    "rule state garbage": _checkpoint(_set(["rule"], {"x": 1})),
    "metrics garbage": _write("metrics.parquet", os.urandom(2048)),
    "metrics cut short": _truncated("metrics.parquet"),
    "metrics without steps": _metrics(lambda df: df.drop(columns=["step"])),
    "metrics steps as text": _metrics(lambda df: df.assign(step=df["step"].astype(str))),
    "metrics a folder": _directory("metrics.parquet"),
    "metrics a fifo": _fifo("metrics.parquet"),
    "summary deeply nested": _write("summary.json", DEEP),
    "summary a fifo": _fifo("summary.json"),
    "summary garbage": _write("summary.json", os.urandom(512)),
}


@pytest.mark.parametrize("plant", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_a_crafted_checkpoint_runs_no_code(run, tmp_path, capsys, plant):
    marker = tmp_path / "code-ran"
    plant(run, marker)
    with pytest.raises(UnreadableRun):
        read_checkpoint(run)
    rc, err, _ = _cli(capsys, "train", "--resume", str(run), "--steps", "8", "--quiet")
    assert not marker.exists(), "the checkpoint's payload ran"
    assert rc == 2 and len(err) == 1 and "checkpoint.pt" in err[0], err
    assert not marker.exists()


@pytest.mark.parametrize("plant", DAMAGED.values(), ids=DAMAGED.keys())
def test_resuming_a_damaged_run_is_one_line_naming_the_file(run, tmp_path, capsys, plant):
    plant(run, tmp_path / "code-ran")
    kept = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and not p.is_symlink()
            and not p.is_fifo()}
    rc, err, _ = _cli(capsys, "train", "--resume", str(run), "--steps", "8", "--quiet")
    assert rc == 2 and len(err) == 1, err
    assert "resume=" in err[0] and any(name in err[0] for name in (
        "checkpoint.pt", "metrics.parquet", "summary.json")), err[0]
    for name, data in kept.items():                     # a refused resume changes nothing
        assert (run / name).read_bytes() == data, name


# A bad folder beside a good one: listed as unreadable (or with its plain status), never an
# exception, and the good run stays listed.
LISTED = {
    "config plugin rule": _write("config.json", json.dumps({"rule": "my-plugin-rule", "my_option": 3})),
    "config deeply nested": _write("config.json", DEEP),
    "config huge": _write("config.json", '{"rule": "np", "x": "' + "a" * 3_000_000 + '"}'),
    "config a fifo": _fifo("config.json"),
    "config a device": _link_to("config.json", "/dev/zero"),
    "config not UTF-8": _write("config.json", b"\xff\xfe{}"),
    "config huge integer": _write("config.json", '{"depth": ' + "9" * 5000 + "}"),
    "summary pid past 2**31": _write("summary.json", json.dumps(
        {"status": "running", "pid": 2**31, "host": os.uname().nodename})),
    "summary pid huge": _write("summary.json", json.dumps(
        {"status": "running", "pid": 10**30, "host": os.uname().nodename})),
    "summary pid negative": _write("summary.json", json.dumps(
        {"status": "running", "pid": -1, "host": os.uname().nodename})),
    "summary pid zero": _write("summary.json", json.dumps(
        {"status": "running", "pid": 0, "host": os.uname().nodename})),
    "summary deeply nested": _write("summary.json", DEEP),
    "summary a fifo": _fifo("summary.json"),
    "summary steps huge": _write("summary.json", json.dumps({"status": "finished", "steps": 10**40})),
    "summary accuracy infinite": _write("summary.json", '{"status": "finished", "test_accuracy": 1e999}'),
}


@pytest.mark.parametrize("plant", LISTED.values(), ids=LISTED.keys())
def test_one_bad_folder_does_not_stop_the_listing(original, tmp_path, capsys, plant):
    root = tmp_path / "runs"
    shutil.copytree(original, root / "a-good-run")
    (root / "z-bad-run").mkdir()
    shutil.copy(original / "config.json", root / "z-bad-run" / "config.json")
    plant(root / "z-bad-run", tmp_path / "code-ran")
    listed = list_runs(root).set_index("id")
    assert list(listed.index) == ["a-good-run", "z-bad-run"]
    assert listed.loc["a-good-run", "status"] == "finished"
    assert listed.loc["z-bad-run", "status"] != "running"       # no such process can be alive
    rc, err, out = _cli(capsys, "runs", "--out", str(root))
    assert rc == 0 and not err and "a-good-run" in out and "z-bad-run" in out
    load_summary(root / "z-bad-run")                            # reads, never raises


def test_the_listing_shows_control_characters_in_folder_names_as_escapes(original, tmp_path, capsys):
    root = tmp_path / "runs"
    shutil.copytree(original, root / "evil\x1b[2J\x1b]0;owned\x07\nname")
    rc, err, out = _cli(capsys, "runs", "--out", str(root))
    assert rc == 0 and not err
    assert "\x1b" not in out and "\\x1b[2J" in out and "\\n" in out


def test_a_killed_runs_reused_pid_does_not_make_it_running(run):
    """A "running" summary whose pid now belongs to another process (here: this one, started
    after the run) reads "interrupted"."""
    summary = json.loads((run / "summary.json").read_text())
    assert summary["pid_started"] is not None
    summary.update(status="running", pid=os.getpid(), pid_started=summary["pid_started"] - 1)
    (run / "summary.json").write_text(json.dumps(summary))
    assert load_summary(run)["status"] == "interrupted"
    summary.update(pid_started=None)                 # a folder written before pids had a start
    (run / "summary.json").write_text(json.dumps(summary))
    assert load_summary(run)["status"] == "running"


def test_an_unreadable_metrics_file_is_named_when_loaded(run):
    (run / "metrics.parquet").write_bytes(b"PAR1" + os.urandom(100))
    with pytest.raises(UnreadableRun, match="metrics.parquet"):
        load_run(run)


# ----------------------------------------------------------------------- output errors
def _train_subprocess(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "engine", "train", "--steps", "3", "--quiet", *args],
                          cwd=ROOT, env=env, capture_output=False, text=True, timeout=300,
                          stderr=subprocess.PIPE, **kwargs)


@pytest.mark.parametrize("stdout", ["closed", "full"])
def test_json_to_a_closed_or_full_stdout_is_one_line_and_the_run_is_saved(tmp_path, stdout):
    if stdout == "full":
        with open("/dev/full", "w") as full:
            proc = _train_subprocess(["--json", "--out", str(tmp_path)], stdout=full)
    else:
        proc = _train_subprocess(["--json", "--out", str(tmp_path)], stdout=subprocess.DEVNULL,
                                 preexec_fn=lambda: os.close(1))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and "stdout" in lines[0], proc.stderr
    listed = list_runs(tmp_path)
    assert list(listed["status"]) == ["finished"] and list(listed["steps"]) == [3]


@pytest.mark.parametrize("out", ["a file", "/proc/creditlab", "/dev/null/runs"])
def test_an_unusable_out_folder_is_one_line(tmp_path, capsys, out):
    if out == "a file":
        out = str(tmp_path / "file")
        Path(out).write_text("")
    rc, err, _ = _cli(capsys, "train", "--steps", "2", "--quiet", "--out", out)
    assert rc == 2 and len(err) == 1 and "out=" in err[0], err


def test_a_failed_final_checkpoint_keeps_the_exit_status_and_the_earlier_checkpoint(
        tmp_path, capsys, monkeypatch):
    """torch writes a file itself and reports a full disk as RuntimeError; the writer hands it a
    Python file instead, so a full disk is an OSError like every other write."""
    from engine.runs.writer import RunWriter

    real, calls = RunWriter.write_file, []

    def write(path, fn):
        if path.name == "checkpoint.pt":
            calls.append(path)
            if len(calls) > 1:
                return real(path, lambda tmp: fn("/dev/full"))
        return real(path, fn)

    monkeypatch.setattr(RunWriter, "write_file", staticmethod(write))
    rc, err, _ = _cli(capsys, "train", "--steps", "6", "--metric-interval", "2", "--quiet",
                      "--out", str(tmp_path))
    assert rc == 1 and len(err) == 1 and "No space left on device" in err[0], err
    folder = next(tmp_path.iterdir())
    assert read_checkpoint(folder)["step"] == 2


@pytest.mark.parametrize("save", [True, False], ids=["saved", "no-save"])
def test_a_failure_inside_a_run_is_one_line_saved_or_not(tmp_path, capsys, monkeypatch, save):
    from engine.trainer import Trainer

    real = Trainer.step

    def step(self):
        if self.step_count == 2:
            raise RuntimeError("boom")
        return real(self)

    monkeypatch.setattr(Trainer, "step", step)
    rc, err, _ = _cli(capsys, "train", "--steps", "5", "--quiet",
                      *(["--out", str(tmp_path)] if save else ["--no-save"]))
    assert rc == 1 and err == ["creditlab: error: the run failed at step 2: RuntimeError: boom"]
