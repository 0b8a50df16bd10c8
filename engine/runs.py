"""Runs on disk: one folder per run, written so that nothing the user ran is ever lost.

Layout of `<root>/<run id>/`:

- `config.json`      `RunConfig.to_dict()`, written once, atomically, when the run starts.
- `metrics.parquet`  one tidy row per logged step: `engine.stream.flatten_record(record)` plus
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
from engine.control import Status
from engine.errors import SaveError
from engine.stream import flatten_record

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.parquet"
SUMMARY_FILE = "summary.json"
CHECKPOINT_FILE = "checkpoint.pt"
LIST_COLUMNS = ["id", "rule", "dataset", "depth", "width", "seed", "steps", "status",
                "test_accuracy", "test_loss", "path"]


# ------------------------------------------------------------------ helpers
def json_safe(value: Any) -> Any:
    """A copy of `value` that `json.dumps(allow_nan=False)` accepts: NaN and ±inf become None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):      # numpy / torch scalars
        try:
            return json_safe(value.item())
        except (TypeError, ValueError):
            pass
    return value


def _atomic_write(path: Path, write) -> None:
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
    _atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))


def _text_writer(text: str):
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    return write


def atomic_write_text(path: Path, text: str) -> None:
    _atomic_write(Path(path), _text_writer(text))


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n")


def width_label(width) -> str:
    """50 → "50"; [50, 20] → "50-20"."""
    if isinstance(width, (list, tuple)):
        return "-".join(str(int(w)) for w in width)
    return str(int(width))


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
    first logged record is written at once, and `close` always writes the rest.

    A write that fails raises SaveError out of the record callback (so the run stops: training
    on without saving would lose it silently), and the writer writes nothing more except, at
    `close`, a best-effort summary saying why; `broken` keeps the error.
    """

    def __init__(self, root: str | os.PathLike, trainer, run_id: str | None = None,
                 flush_interval: float = 2.0, checkpoint_interval: float = 60.0,
                 resume: str | os.PathLike | None = None):
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
        self.checkpoint_interval = checkpoint_interval
        self._last_checkpoint = -math.inf        # the first flush checkpoints: resumable at once
        # Which data the run really saw (e.g. full MNIST or the 5k subset) is part of its record.
        self._fixed = {"run_id": self.run_id, **hyperparameter_columns(self.cfg),
                       "dataset_variant": str(trainer.data.meta.get("variant", "full"))}
        self._tables: list = []               # pyarrow tables already converted
        self._pending: list[dict] = []        # rows not yet converted
        self._last_flush = -math.inf
        self._lock = threading.Lock()
        self._closed = False
        self.broken: SaveError | None = None
        self.checkpoint_step: int | None = None     # the step of the last checkpoint written
        self.started_at = time.time()
        self.last_step = trainer.step_count
        if resume is not None and (self.path / METRICS_FILE).is_file():
            import pyarrow as pa
            import pyarrow.parquet as pq

            done = pq.read_table(self.path / METRICS_FILE).to_pandas()
            done = done[done["step"] <= trainer.step_count].copy()
            for name, value in self._fixed.items():    # e.g. steps: the run's setting is now this
                done[name] = value
            self._tables = [pa.Table.from_pandas(done, preserve_index=False)]
        atomic_write_json(self.path / CONFIG_FILE, self.cfg.to_dict())
        self._write_summary({"status": Status.RUNNING, "steps": self.last_step,
                             "dataset_meta": trainer.data.meta})
        self._subscription = trainer.subscribe(self._on_record)

    # -------------------------------------------------------------- writing
    def _on_record(self, record: dict) -> None:
        row = flatten_record(record)
        for name in LIVE_FIELDS:              # a live change to lr=1 must not make an int column
            if name in row:
                row[name] = float(row[name])
        row.update(self._fixed)
        with self._lock:
            if self._closed:
                return
            self._pending.append(row)
            self.last_step = record["step"]
            due = time.monotonic() - self._last_flush >= self.flush_interval
        if due:
            self.flush()

    def flush(self) -> None:
        """Rewrite metrics.parquet (atomically) with every row so far, and summary.json."""
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
        self._save(CHECKPOINT_FILE, lambda tmp: torch.save(self.trainer.checkpoint(), tmp))
        self._last_checkpoint, self.checkpoint_step = time.monotonic(), step

    def _save(self, name: str, write) -> None:
        """Write one of the run's files atomically; the first failure makes the writer broken."""
        if self.broken is not None:
            raise self.broken
        try:
            _atomic_write(self.path / name, write)
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
            "run_id": self.run_id, **data, "pid": os.getpid(), "host": socket.gethostname(),
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
            atomic_write_text(self.path / SUMMARY_FILE, self._summary_text(data))
        except OSError:
            pass


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


# ------------------------------------------------------------------ reading
# A run folder can hold anything: a file cut short by a full disk, one edited by hand, one from
# another program. Readers name what is wrong with it and go on; they never raise on its contents.
RUN_FILES = (CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, CHECKPOINT_FILE)


class UnreadableRun(ValueError):
    """A run folder's file cannot be used; the message names the file and why, in one line."""


def read_json_object(path: Path) -> dict | None:
    """A JSON object from `path`; None when the file is absent; UnreadableRun when it is not
    UTF-8, not JSON or not an object."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UnreadableRun(f"{path.name}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UnreadableRun(f"{path.name}: not UTF-8 text") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UnreadableRun(f"{path.name}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UnreadableRun(f"{path.name}: holds {_json_kind(data)}, not a JSON object")
    return data


def _json_kind(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    return {list: "an array", str: "a string"}.get(type(value), "a number")


def try_read_json_object(path: Path) -> dict | None:
    """Like read_json_object, with None for an unusable file too (for callers that only skip)."""
    try:
        return read_json_object(path)
    except UnreadableRun:
        return None


def read_config(path: str | os.PathLike) -> RunConfig:
    """The RunConfig of a run folder; UnreadableRun naming the problem when there is none."""
    path = Path(path)
    data = read_json_object(path / CONFIG_FILE)
    if data is None:
        raise UnreadableRun(f"{CONFIG_FILE}: missing")
    try:
        cfg = RunConfig.from_dict(data)
    except (TypeError, ValueError) as exc:      # ConfigError is a ValueError
        raise UnreadableRun(f"{CONFIG_FILE}: {exc}") from None
    # Types only, not validate(): a run stays listed when today's bounds would refuse its values.
    for name, default in RunConfig().to_dict().items():
        value = getattr(cfg, name)
        if not _same_kind(value, default):
            kind = {bool: "true or false", int: "an integer", float: "a number"}.get(
                type(default), "a string")
            raise UnreadableRun(f"{CONFIG_FILE}: {name}={value!r} is not {kind}")
    return cfg


def _same_kind(value: Any, default: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) == isinstance(default, bool)
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        if isinstance(default, int) and isinstance(value, list):        # width: one or per layer
            return all(_same_kind(v, default) for v in value)
        return isinstance(value, int) or (isinstance(default, float) and isinstance(value, float))
    return isinstance(value, type(default))


def _checked_summary(path: Path) -> dict:
    """summary.json with its listed fields of the right type ({} when absent)."""
    summary = load_summary(path, strict=True) or {}
    steps = summary.get("steps")
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 0):
        raise UnreadableRun(f"{SUMMARY_FILE}: steps={steps!r} is not a step count")
    for key in ("test_accuracy", "test_loss"):
        value = summary.get(key)
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            raise UnreadableRun(f"{SUMMARY_FILE}: {key}={value!r} is not a number")
    if not isinstance(summary.get("status", ""), str):
        raise UnreadableRun(f"{SUMMARY_FILE}: status={summary['status']!r} is not a status")
    return summary


def list_runs(root: str | os.PathLike = "runs") -> pd.DataFrame:
    """One row per run folder under `root` (oldest first): id, rule, dataset, depth, width, seed,
    steps (done), status, test_accuracy, test_loss, path. A folder with a run's files that
    cannot be read is listed with status "unreadable: <file>: <why>"; other folders are not runs
    and are left out."""
    root = Path(root)
    rows = []
    if root.is_dir():
        for path in sorted(p for p in root.iterdir() if p.is_dir()):
            if not any((path / name).exists() for name in RUN_FILES):
                continue
            row = {"id": path.name, "path": str(path)}
            try:
                cfg, summary = read_config(path), _checked_summary(path)
            except UnreadableRun as exc:
                rows.append({**row, "status": f"unreadable: {exc}"})
                continue
            rows.append({
                **row, "rule": cfg.rule, "dataset": cfg.dataset, "depth": cfg.depth,
                "width": width_label(cfg.width), "seed": cfg.seed, "steps": summary.get("steps"),
                "status": summary.get("status", "unknown"),
                "test_accuracy": _float(summary.get("test_accuracy")),
                "test_loss": _float(summary.get("test_loss"))})
    # object columns: a listing with unreadable rows keeps its integers integers
    return pd.DataFrame(rows, columns=LIST_COLUMNS, dtype=object)


def _float(v) -> float:
    return math.nan if v is None else float(v)


def load_run(path: str | os.PathLike) -> tuple[RunConfig, pd.DataFrame]:
    """(RunConfig, metrics DataFrame) of a run folder; an empty frame if nothing was logged yet.
    UnreadableRun names the file when either cannot be read."""
    path = Path(path)
    cfg = read_config(path)
    metrics = path / METRICS_FILE
    try:
        df = pd.read_parquet(metrics) if metrics.exists() else pd.DataFrame()
    except Exception as exc:                # pyarrow raises its own types for a damaged file
        raise UnreadableRun(f"{METRICS_FILE}: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    if len(df) and "step" not in df:
        raise UnreadableRun(f"{METRICS_FILE}: has no step column")
    return cfg, df


def load_summary(path: str | os.PathLike, strict: bool = False) -> dict | None:
    """summary.json of a run folder (None when absent, or when unreadable unless `strict`). A
    run still marked "running" whose process has gone (killed, or its machine crashed) is
    reported as "interrupted": it can be continued from its last checkpoint with
    `creditlab train --resume <folder>`."""
    file = Path(path) / SUMMARY_FILE
    summary = read_json_object(file) if strict else try_read_json_object(file)
    if summary and summary.get("status") == Status.RUNNING and _gone(summary):
        summary["status"] = Status.INTERRUPTED
    return summary


def _gone(summary: dict) -> bool:
    """Whether the process that wrote a "running" summary no longer runs (on this host; a run
    on another host cannot be checked and counts as alive)."""
    pid = summary.get("pid")
    if not isinstance(pid, int) or summary.get("host") != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:                 # alive, another user's
        return False
    # A zombie (ended, not yet reaped by its parent) has not run since it ended either.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


__all__ = ["RunWriter", "SaveError", "UnreadableRun", "list_runs", "load_run", "load_summary", "read_config",
           "read_json_object", "try_read_json_object", "new_run_id", "json_safe",
           "hyperparameter_columns", "width_label"]
