"""argparse value types shared by the commands' flags (parser.py, sweep.py)."""

from __future__ import annotations

import argparse
from typing import Callable


def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse `type=` that accepts integers >= low, with a one-line message otherwise."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"{text!r} is not allowed; it must be an integer >= {low}")
        return value
    parse.__name__ = f"integer >= {low}"      # argparse names the type in its messages
    return parse
