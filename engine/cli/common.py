"""What every `creditlab` command shares: the program's name, its exit statuses, the one-line
error and the number formats of its output."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

PROG = "creditlab"
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_DIVERGED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class UsageError(Exception):
    """Bad command-line input; the message is one line."""


def print_error(message: str) -> None:
    print(f"{PROG}: error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)


def dumps(data: Any) -> str:
    from engine.runs.layout import json_safe
    return json.dumps(json_safe(data), allow_nan=False)


def fmt(value: Any, spec: str = ".3g", scale: float = 1.0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value * scale, spec)


def cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
