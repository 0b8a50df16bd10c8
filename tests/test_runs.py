"""Runs on disk (engine/runs/writer.py): atomic files, the listing, round trips, diverged runs."""

from __future__ import annotations

import json
import math
import re

import pandas as pd
import pytest
import torch

from engine.config import RunConfig
from engine.runs.reader import LIST_COLUMNS, list_runs, load_run, load_summary
from engine.runs.writer import RunWriter, new_run_id
from engine.runs.layout import json_safe
from engine.labels import width_label
from engine.divergence import DivergedError
from engine.trainer import Trainer

FILES = {"config.json", "metrics.parquet", "summary.json", "checkpoint.pt"}


def small(**kw) -> RunConfig:
    base = dict(dataset="teacher", width=[16, 8], depth=2, steps=20, metric_interval=5,
                eval_interval=10, batch_size=16, lr=0.05)
    base.update(kw)
    return RunConfig(**base)


def leftovers(path):
    """Temp files a writer could leave behind."""
    return [p.name for p in path.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp")]


def test_files_are_written_atomically_and_readable_mid_run(tmp_path):
    trainer = Trainer(small())
    writer = RunWriter(tmp_path, trainer, flush_interval=0.0)      # flush at every record
    # Written at start: the config (exactly RunConfig.to_dict()) and a "running" summary.
    assert json.loads((writer.path / "config.json").read_text()) == trainer.cfg.to_dict()
    assert load_summary(writer.path)["status"] == "running"
    seen = []

    def check(record):        # subscribed after the writer, so its flush has happened
        df = pd.read_parquet(writer.path / "metrics.parquet")
        seen.append((record["step"], len(df), int(df["step"].iloc[-1])))
        assert leftovers(writer.path) == []
        assert load_summary(writer.path)["status"] == "running"

    trainer.subscribe(check)
    assert trainer.run() == "finished"
    assert seen == [(5, 1, 5), (10, 2, 10), (15, 3, 15), (20, 4, 20)]
    result = writer.close("finished")
    assert {p.name for p in writer.path.iterdir()} == FILES            # no temp files left
    assert result["status"] == "finished" and result["run_dir"] == str(writer.path)
    summary = load_summary(writer.path)
    assert summary["status"] == "finished" and summary["steps"] == 20
    assert math.isfinite(summary["test_loss"])
    ckpt = torch.load(writer.path / "checkpoint.pt")
    assert ckpt["step"] == 20 and ckpt["config"] == trainer.cfg.to_dict()


def test_rewrites_are_throttled_and_a_crash_keeps_the_last_complete_file(tmp_path):
    trainer = Trainer(small())
    writer = RunWriter(tmp_path, trainer, flush_interval=3600.0)
    trainer.run()
    # Only the first record was flushed (the interval never elapsed); no close(): a "crash".
    cfg, df = load_run(writer.path)
    assert cfg == trainer.cfg
    assert list(df["step"]) == [5]
    assert leftovers(writer.path) == []
    listed = list_runs(tmp_path)
    assert list(listed["status"]) == ["running"]
    writer.close()                                        # the final flush writes the rest
    assert list(load_run(writer.path)[1]["step"]) == [5, 10, 15, 20]


def test_list_runs_and_load_run_round_trip(tmp_path):
    cfgs = [small(rule="fa", seed=3), small(rule="np", seed=4, width=12, depth=1)]
    paths = []
    for cfg in cfgs:
        trainer = Trainer(cfg)
        writer = RunWriter(tmp_path, trainer)
        trainer.run()
        writer.close()
        paths.append(str(writer.path))
    (tmp_path / "not-a-run").mkdir()                    # folders without a config are skipped
    listed = list_runs(tmp_path)
    assert list(listed.columns) == LIST_COLUMNS
    assert sorted(listed["path"]) == sorted(paths)
    by_rule = listed.set_index("rule")
    assert by_rule.loc["fa", "seed"] == 3 and by_rule.loc["fa", "width"] == "16-8"
    assert by_rule.loc["np", "width"] == "12" and by_rule.loc["np", "depth"] == 1
    assert set(listed["status"]) == {"finished"} and set(listed["steps"]) == {20}
    assert listed["test_loss"].notna().all()
    for cfg, path in zip(cfgs, paths):
        loaded, df = load_run(path)
        assert loaded == cfg
        assert list(df["step"]) == [5, 10, 15, 20]
        assert set(df["run_id"]) == {path.rsplit("/", 1)[-1]}
        # hyperparameters as columns, live fields as live columns, flattened metrics
        assert set(df["rule"]) == {cfg.rule} and set(df["width"]) == {width_label(cfg.width)}
        assert set(df["seed"]) == {cfg.seed} and set(df["optimizer"]) == {cfg.optimizer}
        for col in ("sigma", "lr", "feedback_lr", "train_loss", "test_loss",
                    "signal_angle_deg_1", "signal_angle_deg_mean", "weight_angle_deg_mean"):
            assert col in df.columns
        assert df["lr"].dtype == "float64"


def test_a_diverged_run_is_saved_with_status_diverged(tmp_path):
    trainer = Trainer(small(dataset="digits", optimizer="sgd", lr=1e6, steps=100, metric_interval=1))
    writer = RunWriter(tmp_path, trainer)
    with pytest.raises(DivergedError) as info:
        trainer.run()
    result = writer.close("diverged", info.value)
    assert result["status"] == "diverged"
    summary = load_summary(writer.path)
    assert summary["status"] == "diverged"
    assert summary["diverged_step"] == info.value.step
    assert f"step {info.value.step}" in summary["error"]
    assert {p.name for p in writer.path.iterdir()} == FILES     # the steps before are kept
    assert list(list_runs(tmp_path)["status"]) == ["diverged"]
    cfg, df = load_run(writer.path)
    assert cfg.lr == 1e6
    assert list(df["step"]) == list(range(1, info.value.step))


def test_run_ids_sort_by_time_and_are_unique(tmp_path):
    cfg = small(rule="np", seed=7)
    rid = new_run_id(cfg)
    assert re.fullmatch(r"\d{8}-\d{6}-np-s7-[0-9a-f]{4}", rid)
    trainers = [Trainer(small(steps=1)) for _ in range(5)]
    ids = [RunWriter(tmp_path, t).run_id for t in trainers]
    assert len(set(ids)) == 5
    assert list(list_runs(tmp_path)["id"]) == sorted(ids)


def test_empty_and_missing_roots_list_nothing(tmp_path):
    assert list_runs(tmp_path).empty
    missing = list_runs(tmp_path / "nope")
    assert missing.empty and list(missing.columns) == LIST_COLUMNS


def test_json_safe_turns_non_finite_numbers_into_null():
    data = {"a": math.nan, "b": [1.0, math.inf, {"c": -math.inf}], "d": torch.tensor(2.5)}
    assert json.dumps(json_safe(data), allow_nan=False) == '{"a": null, "b": [1.0, null, {"c": null}], "d": 2.5}'


# ------------------------------------------------------------------ damaged folders
DAMAGE = {   # file, contents, what the listing must say
    "truncated config": ("config.json", b'{"rule": "np"', "config.json: not valid JSON"),
    "config not an object": ("config.json", b"[]", "config.json: holds an array"),
    "config not UTF-8": ("config.json", b"\xff\xfe{}", "config.json: not UTF-8 text"),
    "config wrong type": ("config.json", b'{"depth": "abc"}', "depth='abc' is not an integer"),
    "config unknown key": ("config.json", b'{"colour": 1}', "unknown setting 'colour'"),
    "summary null": ("summary.json", b"null", "summary.json: holds null"),
    "summary bad steps": ("summary.json", b'{"steps": "abc"}', "steps='abc' is not a step count"),
    "summary bad accuracy": ("summary.json", b'{"test_accuracy": "high"}', "is not a number"),
    "summary bad status": ("summary.json", b'{"status": [1]}', "status=[1] is not a status"),
}


@pytest.fixture
def one_good_run(tmp_path):
    writer = RunWriter(tmp_path, Trainer(small(steps=5)))
    writer.close("finished")
    return writer.path


@pytest.mark.parametrize("case", DAMAGE)
def test_a_damaged_run_folder_is_listed_as_unreadable_and_the_rest_still_list(one_good_run, case):
    name, contents, says = DAMAGE[case]
    bad = one_good_run.parent / "zz-damaged"
    bad.mkdir()
    for f in one_good_run.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    (bad / name).write_bytes(contents)
    (one_good_run.parent / "not-a-run").mkdir()               # no run files: not listed
    listed = list_runs(one_good_run.parent).set_index("id")
    assert list(listed.index) == [one_good_run.name, "zz-damaged"]
    assert listed.loc[one_good_run.name, "status"] == "finished"
    status = listed.loc["zz-damaged", "status"]
    assert status.startswith("unreadable: ") and says in status and "\n" not in status


def test_the_runs_command_lists_damaged_folders_without_a_traceback(one_good_run, capsys):
    from engine.cli.main import main

    for case, (name, contents, _) in DAMAGE.items():
        bad = one_good_run.parent / case.replace(" ", "-")
        bad.mkdir()
        (bad / name).write_bytes(contents)
    assert main(["runs", "--out", str(one_good_run.parent)]) == 0
    out = capsys.readouterr().out
    assert out.count("unreadable: ") == len(DAMAGE) and f"{len(DAMAGE) + 1} runs in" in out
    assert main(["runs", "--out", str(one_good_run.parent), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["depth"] == 2 and isinstance(rows[0]["steps"], int)   # integers stay integers


def test_damaged_metrics_are_named_when_a_run_is_loaded(one_good_run):
    from engine.runs.reader import UnreadableRun

    (one_good_run / "metrics.parquet").write_bytes(b"garbage")
    with pytest.raises(UnreadableRun, match="^metrics.parquet: "):
        load_run(one_good_run)
