"""Every `creditlab train` setting with hostile values: each ends in one clean line (exit 2,
naming the setting) or, where the value is allowed, trains; never a traceback or a hang.

Each case is `creditlab train --no-save --quiet --steps 3 --FLAG VALUE`, run in this process,
so the few hundred cases take seconds. The other hostile-input tests plant files: run folders
(test_hostile_runs.py), sweep files (test_hostile_sweeps.py), dataset files
(test_hostile_data.py), links and page text (test_app_escaping.py), huge numbers and networks
(test_hostile_numbers.py).
"""

from __future__ import annotations

import contextlib
import io
import signal

import pytest

from engine.cli.main import main
from engine.config import defaults

NUMBERS = ["nan", "inf", "-inf", "1e308", "1e999", "-1", "0", "1e-400", "abc", "", " ", "٣",
           "1_0", "1e3", "0x10", "9223372036854775808", "18446744073709551616", "-1e-3", "1.5"]
CHOICES = ["", "nope", "\x00", "NP", " np", "a" * 10_000]
WIDTHS = ["0", "-5", "abc", "1,,2", "99999999999999999999", "100000", "3.5", ""]
SKIP = {"device", "steps"}           # device: an absent CUDA is refused elsewhere; steps is fixed here


def cases() -> dict[str, list[str]]:
    out = {}
    for name, default in defaults().items():
        if name in SKIP:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(default, bool):
            out[f"{flag} yes"] = [flag, "yes"]            # a switch takes no value
            continue
        values = WIDTHS if name == "width" else CHOICES if isinstance(default, str) else NUMBERS
        out.update((f"{flag} {v[:20]!r}", [flag, v]) for v in values)
    out.update({"huge batch and width": ["--batch-size", "65536", "--width", "65536", "--depth", "1"],
                "60000 wide and deep": ["--width", "60000", "--depth", "5"],
                "tiny sigma": ["--rule", "np", "--sigma", "1e-30"]})
    return out


CASES = cases()


@pytest.mark.parametrize("argv", CASES.values(), ids=CASES.keys())
def test_a_hostile_value_is_refused_in_one_line_or_trains(argv):
    def hang(signum, frame):
        raise TimeoutError("the case hung for 60 s")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(60)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = main(["train", "--no-save", "--quiet", "--steps", "3", *argv])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    lines = err.getvalue().strip().splitlines()
    assert rc in (0, 2), lines
    if rc == 2:
        named = [a.lstrip("-").replace("-", "_") for a in argv if a.startswith("--")] + ["unrecognized"]
        assert len(lines) == 1 and lines[0].startswith("creditlab: error: "), lines
        assert any(name in lines[0] for name in named), lines[0]
