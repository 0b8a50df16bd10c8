"""The run folder's names and value conventions, shared by its writer and its readers.

The layout itself is described in engine/runs.py, which re-exports everything here.
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


def width_label(width) -> str:
    """50 → "50"; [50, 20] → "50-20"."""
    if isinstance(width, (list, tuple)):
        return "-".join(str(int(w)) for w in width)
    return str(int(width))
