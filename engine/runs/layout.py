"""The run folder's names and value conventions, shared by its writer and its readers.

The layout itself is described in engine/runs/writer.py, which re-exports everything here.
"""

from __future__ import annotations

import math
from typing import Any

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.parquet"
SUMMARY_FILE = "summary.json"
CHECKPOINT_FILE = "checkpoint.pt"


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


# A run folder's JSON files are a few kB; anything far larger is not one of ours.
MAX_JSON_BYTES = 1 << 20


def process_started(pid: int) -> int | None:
    """When process `pid` started, in clock ticks since boot (None when that cannot be read).
    With the pid it names one process: after a run is killed its pid can be reused, but not
    with the same start."""
    try:
        with open(f"/proc/{int(pid)}/stat", encoding="ascii") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None
