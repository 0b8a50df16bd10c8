"""Try every `creditlab train` setting with hostile values and count how each ends.

Each case is `creditlab train --no-save --quiet --steps 3 --FLAG VALUE`, run in this process
(so hundreds take minutes, not an hour) with a 60 s alarm to catch hangs. An outcome is one of:
clean (exit 2 and one line naming the setting), trained (the value is allowed and 3 steps ran),
traceback (an exception escaped), multi-line (exit 2 but more than one line), hang.

    .venv/bin/python scripts/hostile_inputs.py            # counts, then the cases that are not clean
"""

from __future__ import annotations

import contextlib
import io
import signal
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.cli import main  # noqa: E402
from engine.config import defaults  # noqa: E402

NUMBERS = ["nan", "inf", "-inf", "1e308", "1e999", "-1", "0", "1e-400", "abc", "", " ", "٣",
           "1_0", "1e3", "0x10", "9223372036854775808", "18446744073709551616", "-1e-3", "1.5"]
CHOICES = ["", "nope", "\x00", "NP", " np", "a" * 10_000]
WIDTHS = ["0", "-5", "abc", "1,,2", "99999999999999999999", "100000", "3.5", ""]
SKIP = {"device", "steps"}           # device: cuda absent here is a clean refusal; steps is fixed


class Hang(Exception):
    pass


def cases() -> list[list[str]]:
    out = []
    for name, default in defaults().items():
        if name in SKIP:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(default, bool):
            out.append([flag, "yes"])             # a switch takes no value
            continue
        values = WIDTHS if name == "width" else CHOICES if isinstance(default, str) else NUMBERS
        out += [[flag, v] for v in values]
    out += [["--batch-size", "65536", "--width", "65536", "--depth", "1"],
            ["--width", "60000", "--depth", "5"], ["--rule", "np", "--sigma", "1e-30"]]
    return out


def run(argv: list[str]) -> tuple[str, str]:
    err = io.StringIO()

    def alarm(signum, frame):
        raise Hang

    signal.signal(signal.SIGALRM, alarm)
    signal.alarm(60)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = main(["train", "--no-save", "--quiet", "--steps", "3", *argv])
    except Hang:
        return "hang", ""
    except BaseException as exc:              # noqa: BLE001  what we are counting
        return "traceback", f"{type(exc).__name__}: {exc}"[:200]
    finally:
        signal.alarm(0)
    lines = err.getvalue().strip().splitlines()
    if rc == 2:
        return ("clean" if len(lines) == 1 else "multi-line"), (lines[0] if lines else "")
    if rc == 0:
        return "trained", ""
    return f"exit {rc}", " | ".join(lines)[:200]


def main_() -> int:
    tally: Counter = Counter()
    bad = []
    all_cases = cases()
    for argv in all_cases:
        outcome, detail = run(argv)
        tally[outcome] += 1
        if outcome not in ("clean", "trained"):
            bad.append((argv, outcome, detail))
    print(f"{len(all_cases)} cases: " + ", ".join(f"{k} {v}" for k, v in tally.most_common()))
    for argv, outcome, detail in bad:
        print(f"  {outcome}: {' '.join(map(repr, argv))}  {detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main_())
