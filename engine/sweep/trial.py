"""One trial, which runs anywhere (in-process or on a Dask worker): train its RunConfig into
a run folder tagged with the sweep, and return its row of the trials table."""

from __future__ import annotations

import math
import socket
import time
from pathlib import Path

from engine.config import RunConfig
from engine.status import Status
from engine.errors import one_line
from engine.sweep.spec import SWEEP_FILE, slug


def trial_run_id(cfg: dict, trial_id: str, attempt: int = 1) -> str:
    """Like engine.runs.writer.new_run_id (UTC time, rule, seed) with the trial id as the suffix."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    stem = f"{stamp}-{slug(cfg.get('rule'))}-s{cfg.get('seed')}-{trial_id[:8]}"
    return stem if attempt == 1 else f"{stem}-{attempt}"


def _run_dir_for(root: Path, cfg: dict, trial_id: str) -> tuple[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 100):
        rid = trial_run_id(cfg, trial_id, attempt)
        try:
            (root / rid).mkdir()
            return rid, root / rid
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a unique run folder in {root}")


def sweep_tag(trial: dict, sweep_id: str) -> dict:
    return {"sweep_id": sweep_id, "trial_id": trial["trial_id"], "point_id": trial["point_id"],
            "search": trial["search"], "sample": trial["sample"],
            "seed_index": trial["seed_index"], "varied": list(trial["varied"])}


def run_trial(trial: dict, runs_root: str, sweep_id: str, threads: int | None = 1,
              flush_interval: float = 5.0) -> dict:
    """Train one trial and save it as a run tagged with the sweep; return its table row.

    Never raises for a trial's own failure: an exception while building or training is recorded
    (status "failed", the one-line error), a NaN loss as "diverged". Ctrl-C saves the run as
    "stopped" and propagates. This is what a Dask worker calls, so it imports lazily.
    """
    import torch

    from engine.runs.layout import CONFIG_FILE, SUMMARY_FILE
    from engine.runs.writer import atomic_write_json
    from engine.divergence import DivergedError
    from engine.trainer import Trainer

    if threads:
        torch.set_num_threads(threads)
    root = Path(runs_root)
    tag = sweep_tag(trial, sweep_id)
    started, cpu_started = time.time(), time.thread_time()
    try:
        cfg = RunConfig.from_dict(trial["config"])
        trainer = Trainer(cfg)
    except Exception as exc:                 # bad config or data: a failed run, no trainer
        run_id, path = _run_dir_for(root, trial["config"], trial["trial_id"])
        atomic_write_json(path / CONFIG_FILE, trial["config"])
        atomic_write_json(path / SWEEP_FILE, tag)
        summary = {"run_id": run_id, "status": Status.FAILED, "steps": 0, "error": one_line(exc),
                   "wall_seconds": time.time() - started}
        atomic_write_json(path / SUMMARY_FILE, summary)
        return make_row(trial["config"], tag, summary, path)

    writer = open_writer(root, trainer, trial, sweep_id, flush_interval)
    status, error = Status.FINISHED, None
    try:
        status = trainer.run()
    except DivergedError as exc:
        status, error = Status.DIVERGED, exc
    except Exception as exc:
        status, error = Status.FAILED, one_line(exc)
    except BaseException:                     # Ctrl-C, worker shutdown: keep what was done
        try:
            writer.close(Status.STOPPED)
        finally:
            raise
    try:
        result = writer.close(status, error)
    except Exception as exc:                  # e.g. the summary's evaluation fails
        result = {"status": Status.FAILED, "steps": trainer.step_count,
                  "error": one_line(f"{error}; then saving failed: {exc}" if error else exc)}
        atomic_write_json(writer.path / SUMMARY_FILE, {"run_id": writer.run_id, **result})
    result["wall_seconds"] = time.time() - started
    result["cpu_seconds"] = time.thread_time() - cpu_started    # < wall: the core was shared
    return make_row(trial["config"], tag, result, writer.path)


def open_writer(root: Path, trainer, trial: dict, sweep_id: str, flush_interval: float):
    """A RunWriter for `trainer` (a Trainer, or anything that looks like one to the writer) in a
    new folder named after the trial, tagged with the sweep."""
    from engine.runs.writer import RunWriter, atomic_write_json

    for attempt in range(1, 100):             # RunWriter creates the folder exclusively
        run_id = trial_run_id(trial["config"], trial["trial_id"], attempt)
        try:
            writer = RunWriter(root, trainer, run_id=run_id, flush_interval=flush_interval)
            break
        except FileExistsError:
            continue
    else:
        raise RuntimeError(f"could not create a unique run folder in {root}")
    atomic_write_json(writer.path / SWEEP_FILE, sweep_tag(trial, sweep_id))
    return writer


def make_row(config: dict, tag: dict, summary: dict, run_dir: Path | str) -> dict:
    """One row of trials.parquet: sweep tag, flat config (width as "50-20"), status, metrics."""
    from engine.labels import width_label

    cfg = dict(config)
    try:
        cfg["width"] = width_label(cfg.get("width", 0))
    except (TypeError, ValueError):
        cfg["width"] = str(cfg.get("width"))
    row = {"sweep_id": tag["sweep_id"], "trial_id": tag["trial_id"], "point_id": tag["point_id"],
           "search": tag["search"], "sample": tag["sample"], "seed_index": tag["seed_index"],
           "varied": ",".join(tag.get("varied", [])), **cfg,
           "status": summary.get("status", "unknown"), "error": summary.get("error"),
           "steps_done": int(summary.get("steps") or 0),
           "diverged_step": summary.get("diverged_step"),
           "test_accuracy": number_or_nan(summary.get("test_accuracy")),
           "test_loss": number_or_nan(summary.get("test_loss")), "train_loss": number_or_nan(summary.get("train_loss")),
           "wall_seconds": number_or_nan(summary.get("wall_seconds")),
           "cpu_seconds": number_or_nan(summary.get("cpu_seconds")),
           "run_id": Path(run_dir).name if run_dir else "", "run_dir": str(run_dir or ""),
           "host": socket.gethostname(), "finished_at": time.time()}


    return row


def number_or_nan(v) -> float:
    try:
        return math.nan if v is None else float(v)
    except (TypeError, ValueError, OverflowError):       # OverflowError: an int past 1.8e308
        return math.nan
