"""Reading run folders: the listing, a run's config, metrics and summary (engine/runs/writer.py
re-exports all of it; the layout is described there).

A run folder can hold anything: a file cut short by a full disk, one edited by hand, one from
another program. Readers name what is wrong with it and go on; they never raise on its contents.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import socket
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from engine.config import RunConfig, settings
from engine.status import Status
from engine.files import read_regular
from engine.runs.layout import CHECKPOINT_FILE, CONFIG_FILE, MAX_JSON_BYTES, METRICS_FILE, SUMMARY_FILE, process_started
from engine.labels import width_label

LIST_COLUMNS = ["id", "rule", "dataset", "depth", "width", "seed", "seeds", "steps", "status",
                "test_accuracy", "test_accuracy_std", "test_loss", "path"]
# A folder holding none of these is not a run: the listing leaves it out.
RUN_FILES = (CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, CHECKPOINT_FILE)


class UnreadableRun(ValueError):
    """A run folder's file cannot be used; the message names the file and why, in one line."""


def read_json_object(path: Path) -> dict | None:
    """A JSON object from `path`; None when the file is absent; UnreadableRun when it is not
    a regular file of at most MAX_JSON_BYTES, not UTF-8, not JSON or not an object."""
    try:
        text = read_regular(path, MAX_JSON_BYTES).decode("utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UnreadableRun(f"{path.name}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UnreadableRun(f"{path.name}: not UTF-8 text") from None
    except ValueError as exc:
        raise UnreadableRun(f"{path.name}: {exc}") from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise UnreadableRun(f"{path.name}: nested too deeply to be a run's JSON") from None
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
    declared = settings()
    for name, default in RunConfig().to_dict().items():
        value = getattr(cfg, name)
        many = name in declared and declared[name].many and isinstance(value, list) and value
        if not (all(_same_kind(v, default) for v in value) if many else _same_kind(value, default)):
            kind = {bool: "true or false", int: "an integer", float: "a number"}.get(
                type(default), "a string")
            raise UnreadableRun(f"{CONFIG_FILE}: {name}={value!r} is not {kind}")
    return cfg


def _same_kind(value: Any, default: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) == isinstance(default, bool)
    if isinstance(default, (int, float)) and not isinstance(default, bool):
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
    seeds (a population's members), steps (done), status, test_accuracy (the members' mean),
    test_accuracy_std (their spread; NaN for one), test_loss, path. A folder with a run's files that
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
                "width": width_label(cfg.width), "seed": cfg.seed, "seeds": cfg.members(),
                "steps": summary.get("steps"), "status": summary.get("status", "unknown"),
                "test_accuracy": _float(summary.get("test_accuracy")),
                "test_accuracy_std": _float(summary.get("test_accuracy_std")),
                "test_loss": _float(summary.get("test_loss"))})
    # object columns: a listing with unreadable rows keeps its integers integers
    return pd.DataFrame(rows, columns=LIST_COLUMNS, dtype=object)


def _float(v) -> float:
    return math.nan if v is None else float(v)


def load_run(path: str | os.PathLike) -> tuple[RunConfig, pd.DataFrame]:
    """(RunConfig, metrics DataFrame) of a run folder; an empty frame if nothing was logged yet.
    UnreadableRun names the file when either cannot be read."""
    path = Path(path)
    return read_config(path), read_metrics(path)


def read_metrics(path: str | os.PathLike) -> pd.DataFrame:
    """metrics.parquet of a run folder (an empty frame when there is none yet); UnreadableRun
    naming the file when it cannot be read or has no integer step column."""
    import pyarrow as pa

    try:
        data = read_regular(Path(path) / METRICS_FILE, None)
    except FileNotFoundError:
        return pd.DataFrame()
    except (OSError, ValueError) as exc:
        raise UnreadableRun(f"{METRICS_FILE}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        df = pd.read_parquet(pa.BufferReader(data))
    except Exception as exc:                # pyarrow raises its own types for a damaged file
        raise UnreadableRun(f"{METRICS_FILE}: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    if len(df) and "step" not in df:
        raise UnreadableRun(f"{METRICS_FILE}: has no step column")
    if len(df) and not pd.api.types.is_integer_dtype(df["step"]):
        raise UnreadableRun(f"{METRICS_FILE}: its step column holds {df['step'].dtype}, not integers")
    return df


# What `Trainer.checkpoint()` writes, key by key: the types a checkpoint must hold to be resumed.
CHECKPOINT_KEYS = {"config": dict, "step": int, "model": dict, "optimizer": dict, "rule": dict,
                   "generators": dict, "order": "tensor", "cursor": int}


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """checkpoint.pt of a run folder: `Trainer.checkpoint()`'s state, on the CPU (what
    `Trainer.restore` continues from, and where a finished run's weights are). UnreadableRun,
    naming the file, when it is absent, cannot be read or is not such a state.

    Run folders are shared, so the file is anyone's: it is unpickled with torch's
    `weights_only` loader, which builds tensors and plain containers and refuses any other
    object, so a crafted pickle cannot run code. It is read whole first (a regular file, no
    larger than the memory free now): a FIFO or a device cannot hang or flood the reader."""
    import io

    import torch

    from engine.memory import free_bytes

    file = Path(path) / CHECKPOINT_FILE
    try:
        data = read_regular(file, free_bytes(torch.device("cpu")))
    except FileNotFoundError:
        raise UnreadableRun(f"{file} does not exist") from None
    except (OSError, ValueError) as exc:
        raise UnreadableRun(f"{file} cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        with warnings.catch_warnings():     # torch warns of odd pickle protocols: noise here
            warnings.simplefilter("ignore")
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise UnreadableRun(f"{file} cannot be read: it is not a checkpoint of tensors and plain "
                            "data (anything else is refused, never loaded)") from None
    except Exception as exc:                # torch's zip reader raises RuntimeError and others
        raise UnreadableRun(f"{file} cannot be read ({type(exc).__name__})") from None
    _check_state(state, file)
    return state


def _check_state(state: Any, file: Path) -> None:
    """UnreadableRun unless `state` has the keys and types of `Trainer.checkpoint()`'s state."""
    import torch

    if not isinstance(state, dict):
        raise UnreadableRun(f"{file} holds {type(state).__name__}, not a run's checkpoint")
    for key, kind in CHECKPOINT_KEYS.items():
        value = state.get(key)
        ok = (isinstance(value, torch.Tensor) if kind == "tensor"
              else isinstance(value, kind) and not isinstance(value, bool))
        if not ok:
            what = "missing" if value is None else f"a {type(value).__name__}"
            raise UnreadableRun(f"{file}: its {key} is {what}, not a checkpoint's")
    if not 0 <= state["step"] < 2**63:
        raise UnreadableRun(f"{file}: its step is not a step count")
    try:
        RunConfig.from_dict(state["config"])
    except (TypeError, ValueError) as exc:
        raise UnreadableRun(f"{file}: its config: {' '.join(str(exc).split())}") from None


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


# Linux's largest pid (pid_max cannot be set higher); 0 and negative numbers name groups.
PID_MAX = 1 << 22


def _gone(summary: dict) -> bool:
    """Whether the process that wrote a "running" summary no longer runs (on this host; a run
    on another host cannot be checked and counts as alive). A pid that no process can have,
    or one now held by a process that started later than the run's, is gone."""
    pid = summary.get("pid")
    if isinstance(pid, bool) or not isinstance(pid, int) or summary.get("host") != socket.gethostname():
        return False
    if not 0 < pid <= PID_MAX:
        return True
    started = summary.get("pid_started")
    if isinstance(started, int) and process_started(pid) not in (None, started):
        return True
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

