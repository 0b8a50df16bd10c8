"""Saved runs (app/library.py): exported, listed (interrupted and unreadable ones named), and
loaded into the comparison."""

from __future__ import annotations

import json

from conftest import TINY

from engine.config import RunConfig
from engine.host.runner import RunHandle

from app.dashboard import Dashboard
from app.library import SavedRun, list_saved_runs, runs_frame


def test_export_and_loading_saved_runs(tmp_path, monkeypatch):
    run = RunHandle(RunConfig(**TINY)).start()
    assert run.join(30)
    frame = runs_frame([run])
    assert {"run", "step", "train_loss", "weight_angle_deg_1", "rule", "seed"} <= set(frame.columns)
    # A run folder as engine/runs/writer.py writes it: config.json + metrics.parquet.
    folder = tmp_path / "runs" / "20260101-np-seed0"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(run.cfg.to_dict()))
    frame.drop(columns=["run"]).to_parquet(folder / "metrics.parquet")
    monkeypatch.setenv("CREDITLAB_RUNS", str(tmp_path / "runs"))
    listed = list_saved_runs()
    assert list(listed.values()) == [str(folder)]
    saved = SavedRun(folder)
    assert saved.step_count == TINY["steps"] and saved.n_layers() == 1
    dash = Dashboard(sync_url=False)
    try:
        dash.saved_select.value = str(folder)
        dash._on_load_saved()
        assert dash.curves.has_run(saved.id) and dash.curves.length(saved.id) == len(frame)
        assert len(dash.frame()) == len(frame)
    finally:
        dash.close()


def test_saved_run_list_names_interrupted_and_unreadable_runs(tmp_path):
    import socket

    good = tmp_path / "20260101-000000-np-s0-aaaa"
    good.mkdir()
    (good / "config.json").write_text(json.dumps(RunConfig(**TINY).to_dict()))
    (good / "metrics.parquet").write_bytes(b"")
    # written by a process that has gone (pid 2**22 + 1 is above Linux's pid limit)
    (good / "summary.json").write_text(json.dumps({"status": "running", "steps": 1200,
                                                   "pid": 2**22 + 1, "host": socket.gethostname()}))
    bad = tmp_path / "20260101-000001-np-s0-bbbb"
    bad.mkdir()
    (bad / "config.json").write_text("[]")
    (bad / "metrics.parquet").write_bytes(b"")
    names = list(list_saved_runs(tmp_path))
    assert any(n.startswith(good.name) and n.endswith("(interrupted at step 1,200)") for n in names)
    assert f"{bad.name}: unreadable: config.json: holds an array, not a JSON object" in names


def test_a_live_populations_export_has_a_row_per_member_as_its_saved_table_does():
    """The export of a live population and its metrics.parquet agree: a row per member and
    record (member, seed and the member's own values), never only the mean."""
    from types import SimpleNamespace

    from app.library import run_rows
    from engine.runs.writer import RunWriter
    from engine.trainer import Trainer
    from engine.config import RunConfig
    import pandas as pd
    import tempfile

    trainer = Trainer(RunConfig(seeds=3, width=8, steps=4, metric_interval=2, eval_interval=4))
    records = []
    trainer.subscribe(records.append)
    with tempfile.TemporaryDirectory() as root:
        writer = RunWriter(root, trainer)
        trainer.run()
        writer.close("finished")
        saved = pd.read_parquet(writer.path / "metrics.parquet")
    live = pd.DataFrame(run_rows(SimpleNamespace(buffer=SimpleNamespace(records=lambda: records))))
    assert live["member"].tolist() == saved["member"].tolist() == [0, 1, 2, 0, 1, 2]
    assert live["seed"].tolist() == saved["seed"].tolist()
    assert live["test_accuracy"].tolist()[3:] == saved["test_accuracy"].tolist()[3:]


def test_two_runs_of_the_same_settings_export_as_two_runs():
    """The export once named each run by its settings' label: two runs of the same settings
    came out as one run with every step twice. It names them as the page does, "#1 …", "#2 …"."""
    first, second = (RunHandle(RunConfig(**TINY)).start() for _ in range(2))
    assert first.join(30) and second.join(30)
    assert first.label == second.label
    frame = runs_frame([first, second])
    names = list(dict.fromkeys(frame["run"]))
    assert names == [f"#{first.id} {first.label}", f"#{second.id} {second.label}"]
    for name, run in zip(names, (first, second)):
        assert frame.loc[frame["run"] == name, "step"].tolist() == [r["step"] for r in run.buffer.records()]
