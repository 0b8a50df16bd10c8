"""argparse value types shared by the commands' flags (parser.py, sweep.py)."""

from __future__ import annotations

from typing import Callable

from engine.cli.common import UsageError
from engine.errors import ConfigError
from engine.values import INT64_MAX, parse_int


def int_at_least(low: int, name: str, high: int = INT64_MAX) -> Callable[[str], int]:
    """An argparse `type=` for integer flag `name`, read by the one integer grammar (values.parse_int:
    ASCII digits, from low to high) and refused in one line: `<name>=<text> is not allowed; …`."""
    def parse(text: str) -> int:
        try:
            return parse_int(name, text, low, high)
        except ConfigError as exc:
            # Not argparse's error: it would put "argument --<flag>:" before a line that names it.
            raise UsageError(str(exc)) from None
    return parse
