"""The `creditlab` command line: train, runs, sweep, serve, bench.

Every bad input ends the same way: one line on stderr, `creditlab: error: <message>`, naming
the bad value and what is allowed, and exit status 2. Settings are checked by
`RunConfig.validate()` (not by argparse), so the CLI, the dashboard and the API report the
same message; argparse's own complaints (unknown flag, missing value) are folded into one line
too. A run that diverges exits 3 with the step it diverged at (a population: when its last
member does; one that loses only some finishes, exits 0 and names them); Ctrl-C stops a run
gracefully, saves it as "stopped" and exits 130.

Layout: parser.py (the flags; train's come from engine.config's settings), train.py
(`creditlab train`: its signals, progress bar, resume and exit statuses), commands.py (runs,
serve, bench, sweep) and common.py (what they share: exit statuses, the one-line error, number
formats). This module dispatches to them and ends the program.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

from engine.cli.commands import cmd_bench, cmd_runs, cmd_serve, cmd_sweep
from engine.cli.common import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, PROG, UsageError, print_error
from engine.cli.parser import build_parser
from engine.cli.train import cmd_train
from engine.values import NUMBER
from engine.errors import ConfigError
from engine.data.download import DataError

COMMANDS = {"train": cmd_train, "runs": cmd_runs, "serve": cmd_serve, "bench": cmd_bench,
            "sweep": cmd_sweep}


def _negative_values(argv: Sequence[str]) -> list[str]:
    """argparse takes '-1e-3' after a flag for another option ("expected one argument"); joined
    as '--lr=-1e-3' it is the value, which validate() then names and refuses."""
    out, i = [], 0
    while i < len(argv):
        flag = argv[i]
        if (flag.startswith("--") and "=" not in flag and i + 1 < len(argv)
                and argv[i + 1].startswith("-") and NUMBER.fullmatch(argv[i + 1])):
            out.append(f"{flag}={argv[i + 1]}")
            i += 2
        else:
            out.append(flag)
            i += 1
    return out


# Commands after which nothing is left running or open when they return.
FAST_EXIT = ("train", "bench")


def main(argv: Sequence[str] | None = None) -> int:
    program = argv is None                 # the creditlab command itself, not a Python caller
    argv = _negative_values(sys.argv[1:] if argv is None else list(argv))
    command = next((a for a in argv if not a.startswith("-")), "")
    code = _run(argv, command)
    if program and command in FAST_EXIT and "torch" in sys.modules:
        # Python's own shutdown with torch loaded takes 0.6 s here (tearing down thousands of
        # modules); every file of the run is written and closed by now, so end at once.
        for stream in (sys.stdout, sys.stderr):
            try:
                if stream is not None:             # None: started with the descriptor closed
                    stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    return code


def _run(argv: list[str], command: str) -> int:
    try:
        args = build_parser(only=command).parse_args(argv)
        return COMMANDS[args.command](args)
    except (UsageError, ConfigError, DataError) as exc:   # DataError: a dataset cannot be had
        print_error(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit as exc:                      # --help and friends
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BrokenPipeError:                        # `creditlab runs | head`
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
