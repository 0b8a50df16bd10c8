"""Reading and checking values, one line per refusal: numbers as text (the CLI, a URL) and a
value against a choice or bounds. It imports only engine.errors: the config, the CLI and the app
share it."""

from __future__ import annotations

import math
import re
from typing import Any

from engine.errors import ConfigError

# Numbers as text (the CLI, a URL): ASCII digits only, so "٣", "1_0" or "1e3" for an integer
# and "1_0.5" for a number are refused instead of read as something else.
INTEGER = re.compile(r"[+-]?[0-9]+")
NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[+-]?(inf|nan)", re.I)


def parse_int(name: str, text: str) -> int:
    if not INTEGER.fullmatch(text.strip()):
        raise ConfigError(f"{name}={text!r} is not allowed; it must be an integer, in digits")
    return int(text)


def parse_float(name: str, text: str) -> float:
    if not NUMBER.fullmatch(text.strip()):
        raise ConfigError(f"{name}={text!r} is not allowed; it must be a number")
    value = float(text)
    if value == 0.0 and re.search(r"[1-9]", text.split("e")[0].split("E")[0]):
        raise ConfigError(f"{name}={text!r} is not allowed; it is too small to represent "
                          "(it would be 0)")
    return value


def check_choice(name: str, value: Any, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not allowed; choose one of {', '.join(map(str, allowed))}")


def check_integer(name: str, value: Any, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (
            high is not None and value > high):
        rng = f">= {low}" + ("" if high is None else f" and <= {high:,}")
        raise ConfigError(f"{name}={value!r} is not allowed; it must be an integer {rng}")


def check_real(name: str, value: Any, low: float | None = None, high: float | None = None,
          low_open: bool = False, high_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
        hi = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
        rng = " and ".join(s for s in (lo, hi) if s)
        raise ConfigError(f"{name}={value!r} is not allowed; it must be a finite number {rng}")
