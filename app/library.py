"""Runs on disk (for the comparison) and the session's runs as a table (for export).

A finished run is a folder `runs/<id>/` holding `config.json` (RunConfig.to_dict()) and
`metrics.parquet` (one row per record, or per member and record for a population, plus
hyperparameter columns), read with engine/runs/reader.py, which names any file that cannot be
read instead of raising.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pandas as pd

from engine.status import Status
from engine.runs.layout import METRICS_FILE
from engine.runs.reader import UnreadableRun, load_run, load_summary, read_config
from engine.stream import member_rows

from app.network_view import hidden_layers
from app.run_status import display_name
from app.safe_text import plain
from engine.values import format_width
from engine.labels import run_label


def runs_root() -> Path:
    """Where saved runs live: $CREDITLAB_RUNS, else ./runs (the CLI's default)."""
    return Path(os.environ.get("CREDITLAB_RUNS", "runs"))


def save_runs_default() -> bool:
    """Whether the dashboard's runs are saved unless the page says otherwise: yes, unless
    $CREDITLAB_SAVE_RUNS is 0, no, false or off (`creditlab serve --no-save` sets it)."""
    return os.environ.get("CREDITLAB_SAVE_RUNS", "1").strip().lower() not in ("0", "no", "false", "off")


def list_saved_runs(root: Path | None = None) -> dict[str, str]:
    """{display name: folder} of the run folders under root that have metrics, newest first;
    one that cannot be read is listed as "<id>: unreadable: <why>" (loading it says so too).
    The names are plain text (app/safe_text.py): folder names and files are anyone's."""
    root = Path(root or runs_root())
    try:
        folders = list(root.iterdir()) if root.is_dir() else []
    except OSError:
        return {}
    found = []
    for folder in folders:
        try:
            if (folder / METRICS_FILE).is_file():
                found.append((folder.stat().st_mtime, folder))
        except OSError:                            # unreadable, or gone since it was listed
            continue
    out = {}
    for _, folder in sorted(found, reverse=True):
        out[plain(_describe(folder))] = str(folder)
    return out


def _describe(folder: Path) -> str:
    """A run folder's line in the list. Never raises: the list is built with the page, and one
    folder that cannot be read must not keep the page from being built."""
    try:
        name = f"{folder.name}: {run_label(read_config(folder))}"
        summary = load_summary(folder) or {}
        status = summary.get("status", "unknown")
        if status != Status.FINISHED:              # e.g. "interrupted at step 1,200": its process died
            steps = summary.get("steps")
            name += f" ({status}" + (f" at step {steps:,})" if isinstance(steps, int) else ")")
        return name
    except UnreadableRun as exc:
        return f"{folder.name}: unreadable: {exc}"
    except Exception as exc:                       # values the readers let through (e.g. an unknown rule)
        return f"{folder.name}: unreadable: {type(exc).__name__}: {exc}"


class SavedRun:
    """A finished run read from disk; the comparison treats it like a run that has ended."""

    active = False
    status = "loaded"
    error = None
    changes: list = []

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        self.id = f"saved-{plain(folder.name)}"        # (it names the run's data sources on the page)
        self.cfg, self.frame = load_run(folder)
        self.label = plain(f"{run_label(self.cfg)} [{folder.name}]")
        self.step_count = int(self.frame["step"].max()) if len(self.frame) else 0
        self._layers = hidden_layers(self.cfg)     # now, so that a config it cannot draw fails the load

    def rows(self) -> list[dict[str, Any]]:
        return self.frame.to_dict("records")

    def n_layers(self) -> int:
        return self._layers                     # (a conv net's layers are its own)


def run_rows(run: Any) -> list[dict[str, Any]]:
    """One flat row per record of a live (RunHandle) or loaded (SavedRun) run; for a population
    one per member and record, as its saved metrics.parquet has them."""
    if isinstance(run, SavedRun):
        return run.rows()
    return [row for r in run.buffer.records() for row in member_rows(r)]


def runs_frame(runs: list[Any]) -> pd.DataFrame:
    """All runs in one tidy table: flat record rows + the run's name as the page shows it
    (unique in the session: two runs of the same settings are "#1 …" and "#2 …", not one run
    twice as long) + its settings as columns.

    Record columns win over settings of the same name (σ and the learning rates are recorded at
    every row, so a live change is visible in the data).
    """
    frames = []
    for run in runs:
        rows = [{k: v for k, v in row.items() if k != "_seq"} for row in run_rows(run)]
        frame = pd.DataFrame(rows)
        settings = run.cfg.to_dict()
        settings["width"] = format_width(settings["width"])
        for name, value in settings.items():
            if name not in frame.columns:
                frame[name] = value
        frame.insert(0, "run", display_name(run))
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["run", "step"])
    return pd.concat(frames, ignore_index=True)


def to_parquet_bytes(frame: pd.DataFrame) -> io.BytesIO:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    buf.seek(0)
    return buf


def to_csv_bytes(frame: pd.DataFrame) -> io.BytesIO:
    buf = io.BytesIO(frame.to_csv(index=False).encode())
    buf.seek(0)
    return buf
