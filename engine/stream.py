"""A bounded, thread-safe store of a run's records, for consumers that pull (the dashboard).

The trainer's thread pushes records into a `RecordBuffer` (subscribe it with
`trainer.subscribe(buffer.push, matrices=True)`); a UI thread pulls what is new with
`since(cursor)` and the latest matrices with `latest_matrices()`. Nothing here blocks the
trainer for longer than a list append, and memory stays bounded however long the run: once
`capacity` records are held, the older half is thinned to every other record (so a long
history is kept at decreasing resolution, never dropped wholesale).
"""

from __future__ import annotations

import threading
from typing import Any


class RecordBuffer:
    def __init__(self, capacity: int = 4000):
        if capacity < 4:
            raise ValueError(f"capacity={capacity!r} is not allowed; it must be >= 4")
        self.capacity = capacity
        self._records: list[dict[str, Any]] = []
        self._count = 0                      # records ever pushed: cursors count these
        self._matrices: list[dict] | None = None
        self._matrix_version = 0
        self._first: tuple[Any, list[dict]] | None = None    # (step, matrices) of the first snapshot
        self._last_eval: dict[str, Any] | None = None        # the newest record with test metrics
        self._lock = threading.Lock()

    def push(self, record: dict[str, Any]) -> None:
        matrices = record.get("matrices")
        scalars = {k: v for k, v in record.items() if k != "matrices"}
        with self._lock:
            self._count += 1
            scalars["_seq"] = self._count
            self._records.append(scalars)
            if scalars.get("test_accuracy") is not None or scalars.get("test_loss") is not None:
                self._last_eval = scalars
            if len(self._records) > self.capacity:
                half = len(self._records) // 2
                self._records = self._records[:half:2] + self._records[half:]
            if matrices is not None:
                self._matrices = matrices
                self._matrix_version += 1
                if self._first is None:
                    self._first = (record.get("step"), matrices)

    def since(self, cursor: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Records pushed after `cursor` (still held), and the cursor to pass next time."""
        with self._lock:
            new = [r for r in self._records[-(self._count - cursor):] if r["_seq"] > cursor] \
                if self._count > cursor else []
            return new, self._count

    def records(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._records)

    def tail(self, n: int = 1) -> list[dict[str, Any]]:
        """The newest `n` records held (a bounded copy, for a status line)."""
        with self._lock:
            return self._records[-n:] if n > 0 else []

    def last_eval(self) -> dict[str, Any] | None:
        """The newest record that carries the test-set loss and accuracy, or None."""
        with self._lock:
            return self._last_eval

    def latest_matrices(self) -> tuple[int, list[dict] | None]:
        """(version, matrices): the version grows by one with every new snapshot."""
        with self._lock:
            return self._matrix_version, self._matrices

    def set_first(self, step: int, matrices: list[dict]) -> None:
        """The run's matrices before its first step (the "B at the start" map), unless a
        snapshot came first."""
        with self._lock:
            if self._first is None:
                self._first = (step, matrices)

    def first_matrices(self) -> tuple[Any, list[dict] | None]:
        """(step, matrices) of the run's first snapshot, kept for its whole life (a short run's
        "B at the start"): the one `set_first` gave, else the first pushed; (None, None) before."""
        with self._lock:
            return self._first or (None, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)


def flatten_record(record: dict[str, Any]) -> dict[str, Any]:
    """One flat row per record: per-layer metrics become `<metric>_<layer>` columns, plus
    `<metric>_mean` over layers (NaN-aware). Matrices and a population's members are dropped
    (a population's record is its members' mean: see `member_rows`)."""
    import math

    row = {k: v for k, v in record.items() if k not in ("layers", "matrices", "members")}
    layers = record.get("layers", [])
    for i, layer in enumerate(layers, start=1):
        for name, value in layer.items():
            row[f"{name}_{i}"] = value
    if layers:
        for name in layers[0]:
            values = [layer[name] for layer in layers if not math.isnan(layer[name])]
            row[f"{name}_mean"] = sum(values) / len(values) if values else math.nan
    return row


def member_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The Parquet rows of a record: one, or for a population one per member (with its
    `member` and `seed` columns and the step's shared values), never their mean."""
    members = record.get("members")
    if not members:
        return [flatten_record(record)]
    shared = {k: v for k, v in record.items() if k not in members[0]}
    return [flatten_record({**shared, **member}) for member in members]
