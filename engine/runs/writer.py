"""Runs on disk: one folder per run, written so that nothing the user ran is ever lost.

Layout of `<root>/<run id>/`:

- `config.json`      `RunConfig.to_dict()`, written once, atomically, when the run starts.
- `metrics.parquet`  one tidy row per logged step (per member and step for a population of
                     several seeds, with `member` and `seed` columns): `engine.stream.member_rows` plus
                     the run's hyperparameters as columns (rule, dataset, depth, width as "50" or
                     "50-20", seed, …; σ, lr and feedback_lr are live columns of the record) and
                     `run_id`. Rewritten atomically (temp file in the same folder, then
                     `os.replace`) at most every `flush_interval` seconds of wall time while the
                     run goes, and once more at the end, so a crash leaves the last complete file.
- `summary.json`     status (running / finished / stopped / diverged), steps done and the final
                     test metrics; atomically rewritten with each flush and at the end.
- `checkpoint.pt`    `Trainer.checkpoint()`, saved through a temp file as well: at the end, and
                     every `checkpoint_interval` seconds of wall time while the run goes, so
                     `creditlab train --resume <run dir>` can continue it exactly (the metrics
                     rows after the checkpoint's step are dropped then: they are retrained).

Run ids sort by start time and are unique: `20261127-013012-np-s0-ab12` (UTC time, rule,
seed, random suffix); the folder is created exclusively, so two runs never share one.

This module writes run folders (RunWriter and the atomic file writes); engine/runs/layout.py
holds the file names and value conventions, engine/runs/reader.py the readers.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd

from engine.config import LIVE_FIELDS, RunConfig
from engine.status import Status
from engine.errors import SaveError
from engine.runs.layout import CHECKPOINT_FILE, CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, json_safe, process_started
from engine.labels import width_label
from engine.runs.reader import read_metrics
from engine.stream import member_rows


# ------------------------------------------------------------------ atomic writes
def atomic_write(path: Path, write) -> None:
    """Call write(tmp_path) on a temp file in path's folder, then move it over path."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_parquet(df: pd.DataFrame, path: Path) -> None:
    """Write a DataFrame to Parquet so that readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))


def _text_writer(text: str):
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    return write


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(Path(path), _text_writer(text))


def _json_text(data: Any) -> str:
    return json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n"


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, _json_text(data))


def hyperparameter_columns(cfg: RunConfig) -> dict[str, Any]:
    """The run's fixed settings as flat columns (live fields are columns of every record)."""
    cols = {k: v for k, v in cfg.to_dict().items() if k not in LIVE_FIELDS}
    cols["width"] = width_label(cfg.width)
    return cols


def new_run_id(cfg: RunConfig) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return f"{stamp}-{cfg.rule}-s{cfg.seed}-{secrets.token_hex(2)}"


def _make_run_dir(root: Path, cfg: RunConfig, run_id: str | None) -> tuple[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        rid = run_id or new_run_id(cfg)
        path = root / rid
        try:
            path.mkdir()
            return rid, path
        except FileExistsError:
            if run_id is not None:
                raise
    raise RuntimeError(f"could not create a unique run folder in {root}")



# ------------------------------------------------------------------ writer
class RunWriter:
    """Saves one trainer's run under `root`. Subscribes itself; call `close(status)` at the end.

    `flush_interval` (seconds of wall time) bounds how often metrics.parquet is rewritten; the
    first logged record is written at once, and `close` always writes the rest. With
    `flush_share`, the interval also grows so that rewriting takes at most that share of the
    run's time: each rewrite writes every row so far, which takes ~0.2 s at 10⁵ rows.

    A write that fails raises SaveError out of the record callback (so the run stops: training
    on without saving would lose it silently), and the writer writes nothing more except, at
    `close`, a best-effort summary saying why; `broken` keeps the error. With `on_error`, the
    failure is handed to it once instead and the run trains on unsaved (the dashboard's runs,
    whose page shows every record anyway: engine/host/saving.py).
    """

    # How each of the run's files is written: atomically. A class attribute, so that a test can
    # make the writes of every writer fail (a full or read-only disk) wherever it is created.
    write_file = staticmethod(atomic_write)

    def __init__(self, root: str | os.PathLike, trainer, run_id: str | None = None,
                 flush_interval: float = 2.0, checkpoint_interval: float = 60.0,
                 resume: str | os.PathLike | None = None, on_error=None, flush_share: float | None = None):
        """`resume`: an existing run folder whose checkpoint the trainer was restored from;
        its metrics are kept up to the trainer's step and the run goes on in the same folder."""
        self.trainer = trainer
        self.cfg: RunConfig = trainer.cfg
        if resume is None:
            self.run_id, self.path = _make_run_dir(Path(root), self.cfg, run_id)
        else:
            self.path = Path(resume)
            self.run_id = self.path.name
        self.flush_interval = flush_interval
        self.flush_share = flush_share
        self._flush_every = flush_interval
        self.on_error = on_error
        self.checkpoint_interval = checkpoint_interval
        self._last_checkpoint = -math.inf        # the first flush checkpoints: resumable at once
        # Which data the run really saw (e.g. full MNIST or the 5k subset) is part of its record.
        self._fixed = {"run_id": self.run_id, **hyperparameter_columns(self.cfg),
                       "dataset_variant": str(trainer.data.meta.get("variant", "full"))}
        if self.cfg.members() > 1:            # each member's row carries its own seed (and σ)
            del self._fixed["seed"]
        self._tables: list = []               # pyarrow tables already converted
        self._pending: list[dict] = []        # rows not yet converted
        self._last_flush = -math.inf
        self._lock = threading.Lock()
        self._closed = False
        self.broken: SaveError | None = None
        self.checkpoint_step: int | None = None     # the step of the last checkpoint written
        self.started_at = time.time()
        self.last_step = trainer.step_count
        done = read_metrics(self.path) if resume is not None else pd.DataFrame()
        if len(done):
            import pyarrow as pa

            done = done[done["step"] <= trainer.step_count].copy()
            for name, value in self._fixed.items():    # e.g. steps: the run's setting is now this
                done[name] = value
            self._tables = [pa.Table.from_pandas(done, preserve_index=False)]
        self.write_file(self.path / CONFIG_FILE, _text_writer(_json_text(self.cfg.to_dict())))
        self._write_summary({"status": Status.RUNNING, "steps": self.last_step,
                             "dataset_meta": trainer.data.meta})
        self._subscription = trainer.subscribe(self._on_record)

    # -------------------------------------------------------------- writing
    def _on_record(self, record: dict) -> None:
        rows = member_rows(record)
        for row in rows:
            for name in LIVE_FIELDS:              # a live change to lr=1 must not make an int column
                if name in row:
                    row[name] = float(row[name])
            row.update(self._fixed)
        with self._lock:
            if self._closed:
                return
            self._pending.extend(rows)
            self.last_step = record["step"]
            due = time.monotonic() - self._last_flush >= self._flush_every
        if due:
            self.flush()

    def flush(self) -> None:
        """Rewrite metrics.parquet (atomically) with every row so far, and summary.json. A failed
        write raises SaveError, or with `on_error` is handed to it and ends the writing."""
        started = time.monotonic()
        try:
            self._flush()
            if self.flush_share:
                self._flush_every = max(self.flush_interval, (time.monotonic() - started) / self.flush_share)
        except SaveError as exc:
            if self.on_error is None:
                raise
            self.trainer.unsubscribe(self._subscription)    # no rows kept that nothing will write
            self.on_error(exc)

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        with self._lock:
            if self._pending:
                self._tables.append(pa.Table.from_pylist(self._pending))
                self._pending = []
            self._last_flush = time.monotonic()
            if not self._tables:
                return
            if len(self._tables) > 1:
                self._tables = [pa.concat_tables(self._tables, promote_options="permissive")]
            table = self._tables[0]
            self._save(METRICS_FILE, lambda tmp: pq.write_table(table, tmp))
            if not self._closed:
                self._write_summary({"status": Status.RUNNING, "steps": self.last_step})
                # Called between steps (from the trainer's record callback): a consistent state.
                if time.monotonic() - self._last_checkpoint >= self.checkpoint_interval:
                    self.save_checkpoint()

    def save_checkpoint(self) -> None:
        import torch

        step = self.trainer.step_count
        state = self.trainer.checkpoint()

        def write(tmp):
            # Through a Python file: given a path, torch writes itself and reports a full disk
            # as a RuntimeError, which would escape the writer's handling of failed writes.
            with open(tmp, "wb") as f:
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
        self._save(CHECKPOINT_FILE, write)
        self._last_checkpoint, self.checkpoint_step = time.monotonic(), step

    def _save(self, name: str, write) -> None:
        """Write one of the run's files atomically; the first failure makes the writer broken."""
        if self.broken is not None:
            raise self.broken
        try:
            self.write_file(self.path / name, write)
        except OSError as exc:
            kept = ("nothing before it" if self.checkpoint_step is None else
                    f"its checkpoint at step {self.checkpoint_step}")
            reason = exc.strerror or " ".join(str(exc).split())
            self.broken = SaveError(f"cannot write {self.path / name}: {reason}; the run folder "
                                    f"keeps what was saved before, with {kept}")
            self.broken.errno = exc.errno
            raise self.broken from None

    def _summary_text(self, data: dict) -> str:
        return json.dumps(json_safe({
            "run_id": self.run_id, **data, "pid": os.getpid(),
            "pid_started": process_started(os.getpid()),     # tells this process from a later one
            "host": socket.gethostname(),
            "started_at": _iso(self.started_at), "updated_at": _iso(time.time()),
            "wall_seconds": time.time() - self.started_at}), indent=2, allow_nan=False) + "\n"

    def _write_summary(self, data: dict) -> None:
        self._save(SUMMARY_FILE, _text_writer(self._summary_text(data)))

    def close(self, status: str | None = None, error: BaseException | str | None = None) -> dict:
        """Final flush, summary.json and checkpoint.pt. Returns the trainer's summary dict
        (plus run_id and run_dir). `status` defaults to the trainer's; `error` (e.g. the
        DivergedError) is recorded in summary.json, with the step it names."""
        self.trainer.unsubscribe(self._subscription)
        try:
            self.flush()
        except SaveError:
            pass
        with self._lock:
            self._closed = True
        status = status or self.trainer.status
        summary = self.trainer.summary()
        summary["status"] = status
        extra: dict[str, Any] = {}
        if error is not None:
            extra["error"] = str(error)
            if getattr(error, "step", None) is not None:
                extra["diverged_step"] = int(error.step)
        try:
            self._write_summary({**summary, **extra})
            self.save_checkpoint()
        except SaveError:
            pass
        if self.broken is not None:
            extra["save_error"] = str(self.broken)
            self._last_word({**summary, **extra})
        return {**summary, **extra, "run_id": self.run_id, "run_dir": str(self.path)}

    def _last_word(self, data: dict) -> None:
        """After a failed write: try once to leave a summary that says so (a small file may
        still fit where the metrics did not); the earlier summary stays if this fails too."""
        try:
            self.write_file(self.path / SUMMARY_FILE, _text_writer(self._summary_text(data)))
        except OSError:
            pass


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


__all__ = ["RunWriter", "atomic_write", "atomic_write_json", "atomic_write_parquet", "atomic_write_text",
           "hyperparameter_columns", "new_run_id"]
