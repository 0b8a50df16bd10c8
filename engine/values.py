"""Reading and checking values, one line per refusal: numbers and widths as text (the CLI, a URL,
a box) and a value against a choice or bounds; and a width written back as that text. It imports
only engine.errors: the config, the CLI and the app share it."""

from __future__ import annotations

import math
import re
from typing import Any, Callable

from engine.errors import ConfigError

# Numbers as text (the CLI, a URL): ASCII digits only, so "٣", "1_0" or "1e3" for an integer
# and "1_0.5" for a number are refused instead of read as something else.
INTEGER = re.compile(r"[+-]?[0-9]+")
NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[+-]?(inf|nan)", re.I)
# What torch keeps an integer in: every integer setting's bounds lie within it.
INT64_MIN, INT64_MAX = -2**63, 2**63 - 1
# Between a width's layers: "50,20" (engine/labels.py shows it as "50-20" in tables and legends).
WIDTH_SEPARATOR = ","

# A message shows a value whole up to these lengths, then its start and its size: an integer of
# thousands of digits (which Python will not even turn into text past 4,300) or a megabyte of
# text would otherwise be the whole message.
_SHOWN_DIGITS = 30
_SHOWN_CHARS = 200
_LEADING = 12


def shown(value: Any) -> str:
    """`value` as a message shows it: its repr, shortened when huge (the first digits of an
    integer and how many there are, the start of a text and its length). Never raises."""
    if isinstance(value, bool) or not isinstance(value, (int, str, list, tuple)):
        try:
            text = repr(value)
        except Exception:                      # noqa: BLE001  a message must not fail
            return f"<{type(value).__name__}>"
        return text if len(text) <= _SHOWN_CHARS else f"{text[:60]}… ({len(text):,} characters)"
    if isinstance(value, int):
        return _integer_text(value)
    if isinstance(value, str):
        return repr(value) if len(value) <= _SHOWN_CHARS else f"{value[:60]!r}… ({len(value):,} characters)"
    items = ", ".join(shown(v) for v in value[:8]) + (f", … ({len(value):,} entries)" if len(value) > 8 else "")
    return f"[{items}]" if isinstance(value, list) else f"({items})"


def _integer_text(value: int) -> str:
    sign, size = ("-" if value < 0 else ""), abs(value)
    if size.bit_length() <= 14_000:            # under Python's 4,300-digit limit on int → str
        return _digits_text(str(value))
    # Beyond it, the leading digits by division: exact, and quick for any integer one can type.
    digits = int(size.bit_length() * math.log10(2)) + 1         # this or one more than the truth
    lead = size // 10 ** (digits - _LEADING)
    if lead < 10 ** (_LEADING - 1):
        digits, lead = digits - 1, size // 10 ** (digits - 1 - _LEADING)
    return f"{sign}{str(lead)[:_LEADING]}… ({digits:,} digits)"


def _digits_text(text: str) -> str:
    """An integer written in digits (with an optional sign), shortened when long."""
    sign = text[0] if text[:1] in "+-" else ""
    digits = text[len(sign):]
    if len(digits) <= _SHOWN_DIGITS:
        return text
    return f"{sign}{digits[:_LEADING]}… ({len(digits):,} digits)"


def integer_range(low: int, high: int | None) -> str:
    return f">= {low:,}" + ("" if high is None else f" and <= {high:,}")


def parse_int(name: str, text: str, low: int = INT64_MIN, high: int = INT64_MAX, *,
              check: bool = True) -> int:
    """The integer `text` writes in ASCII digits: the one integer grammar of the CLI's flags, a
    link and a box. Refused in one line when it is not one or lies outside [low, high]. With
    check=False the bounds only word the refusal of text beyond int64: a value within int64 is
    returned whatever they say, for validate() to name with the rest (the app applies a link's
    steps=-1, then names it). Its length is checked before it is converted: int() refuses more
    than 4,300 digits with a traceback and takes quadratic time well before that."""
    stripped = text.strip()
    if not INTEGER.fullmatch(stripped):
        raise ConfigError(f"{name}={shown(text)} is not allowed; it must be an integer, in digits")
    lo, hi = (low, high) if check else (INT64_MIN, INT64_MAX)
    digits = stripped.lstrip("+-").lstrip("0")
    if len(digits) > len(str(max(abs(lo), abs(hi)))):
        raise ConfigError(_out_of_range(name, _digits_text(stripped), low, high))
    value = int(digits or "0") * (-1 if stripped[0] == "-" else 1)     # (int() counts leading zeros too)
    if not lo <= value <= hi:
        raise ConfigError(_out_of_range(name, shown(value), low, high))
    return value


def _out_of_range(name: str, text: str, low: int, high: int | None) -> str:
    return f"{name}={text} is not allowed; it must be an integer {integer_range(low, high)}"


def parse_int_list(name: str, text: Any, parse_one: Callable[[str, str], int] = parse_int) -> int | list[int]:
    """One integer, or comma-separated integers, one per hidden layer ("50" → 50, "50,20" →
    [50, 20]: a width), each read by `parse_one`; ConfigError in one line otherwise. The inverse
    of format_width."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    parts = [p.strip() for p in str(text).split(WIDTH_SEPARATOR)]
    if not all(INTEGER.fullmatch(p) for p in parts):
        raise ConfigError(f"{name}={shown(str(text))} is not allowed; give one integer or comma-separated "
                          "integers, one per hidden layer (e.g. 50 or 50,20)")
    values = [parse_one(name, p) for p in parts]      # an entry of thousands of digits: one line
    return values[0] if len(values) == 1 else values


def format_width(width: Any) -> str:
    """A width as the CLI, a link and the sidebar write it, which parse_int_list reads back: 50 →
    "50", [50, 20] → "50,20". Anything else (text typed for it) is shown as it is."""
    if isinstance(width, (list, tuple)):
        return WIDTH_SEPARATOR.join(str(w) for w in width)
    return str(width)


def parse_float_list(name: str, text: str) -> float | list[float]:
    """One number, or comma-separated numbers ("1e-3,1e-2": the values of σ a population
    compares), each read by parse_float."""
    values = [parse_float(name, part) for part in str(text).split(WIDTH_SEPARATOR)]
    return values[0] if len(values) == 1 else values


def format_numbers(value: Any) -> str:
    """One number, or several, as the CLI takes them and parse_float_list reads them back, in
    messages and labels too: 0.001 → "0.001", [0.001, 0.01] → "0.001,0.01"."""
    values = value if isinstance(value, (list, tuple)) else [value]
    return WIDTH_SEPARATOR.join(f"{v:g}" for v in values)


def parse_float(name: str, text: str) -> float:
    if not NUMBER.fullmatch(text.strip()):
        raise ConfigError(f"{name}={shown(text)} is not allowed; it must be a number")
    value = float(text)
    if value == 0.0 and re.search(r"[1-9]", text.split("e")[0].split("E")[0]):
        raise ConfigError(f"{name}={shown(text)} is not allowed; it is too small to represent "
                          "(it would be 0)")
    return value


def check_choice(name: str, value: Any, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}={shown(value)} is not allowed; choose one of {', '.join(map(str, allowed))}")


def check_integer(name: str, value: Any, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (
            high is not None and value > high):
        raise ConfigError(_out_of_range(name, shown(value), low, high))


def check_real(name: str, value: Any, low: float | None = None, high: float | None = None,
          low_open: bool = False, high_open: bool = False) -> None:
    # An int is finite however large, and compares with a float exactly: no float() of it, which
    # overflows past 1e308.
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
        isinstance(value, int) or math.isfinite(value))
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
        hi = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
        rng = " and ".join(s for s in (lo, hi) if s)
        raise ConfigError(f"{name}={shown(value)} is not allowed; it must be a finite number {rng}")
