"""The `creditlab` command line's flags. train's are derived from engine.config's settings: one
per RunConfig field, with its doc, choices and default."""

from __future__ import annotations

import argparse
from typing import Any

from engine.cli.argtypes import int_at_least
from engine.cli.common import PROG, UsageError
from engine.config import DEVICES, RunConfig, choices_of, parse_int, settings
from engine.values import parse_float, parse_int_list


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):                      # never argparse's multi-line usage
        raise UsageError(" ".join(message.split()))


# ----------------------------------------------------------------- train options
_DEFAULTS = RunConfig()


def _choices(values) -> str:
    return "{" + ",".join(values) + "}"


def _train_options() -> list[tuple[str, str, str | None, str]]:
    """(field, flag, metavar, help) for every RunConfig field, from its Setting (engine.config)."""
    options = []
    for name, s in settings().items():
        choices = choices_of(name)
        text = s.off if s.off and getattr(_DEFAULTS, name) is True else s.doc
        if choices and any(choices.values()) and not s.off:
            text += ": " + "; ".join(f"{value}: {desc}" if desc else value
                                     for value, desc in choices.items())
        metavar = _choices(choices) if choices else s.metavar or name.upper()
        options.append((name, "--" + name.replace("_", "-"), metavar, text))
    return options


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """A validated RunConfig: RunConfig's defaults, overridden by the flags that were given."""
    changes: dict[str, Any] = {}
    for name in settings():
        text = getattr(args, name, None)
        if text is None:
            continue
        default = getattr(_DEFAULTS, name)
        if name == "width":
            changes["width"] = parse_int_list("width", text, parse_int)
        elif isinstance(default, bool):
            changes[name] = text
        elif isinstance(default, int):
            changes[name] = parse_int(name, text)
        elif isinstance(default, float):
            changes[name] = parse_float(name, text)
        else:
            changes[name] = text
    if isinstance(changes.get("width"), list) and "depth" not in changes:
        changes["depth"] = len(changes["width"])
    return RunConfig.from_dict({**_DEFAULTS.to_dict(), **changes}).validate()


# ----------------------------------------------------------------- parser
def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with `only`, the options of that command alone (main passes the
    command being run: the rule and dataset registries behind train's and sweep's options import
    torch, which `creditlab --help` or `creditlab runs` should not wait for)."""
    def wanted(command: str) -> bool:
        return only is None or only == command

    parser = _Parser(prog=PROG, description="Learning feedback weights by node perturbation "
                     "(Lansdell, Prakash & Kording, ICLR 2020), with BP/FA/DFA/KP/SG/SS baselines.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    train = sub.add_parser("train", help="train one network and save the run")
    for name, flag, metavar, help_text in (_train_options() if wanted("train") else []):
        default = getattr(_DEFAULTS, name)
        if isinstance(default, bool):
            # A switch that is on by default is turned off by --no-<name>.
            train.add_argument(flag if not default else "--no-" + flag[2:], dest=name,
                               action="store_const", const=not default, default=None,
                               help=help_text)
        else:
            shown = ",".join(map(str, default)) if isinstance(default, list) else default
            train.add_argument(flag, dest=name, metavar=metavar, default=None,
                               help=f"{help_text} (default: {shown})")
    train.add_argument("--resume", metavar="RUN_DIR", default=None,
                       help="continue a saved run from its checkpoint, exactly, in its own folder "
                       "and with its own settings (only --steps may be given, to go further)")
    train.add_argument("--out", default="runs", metavar="DIR",
                       help="folder that run folders are written into (default: ./runs)")
    train.add_argument("--no-save", action="store_true", help="do not write the run to disk")
    train.add_argument("--json", action="store_true",
                       help="print one JSON object with the final metrics on stdout")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--data-dir", metavar="DIR", default=None,
                       help="where datasets are found and downloaded "
                       "(default: $CREDITLAB_DATA or ~/.cache/creditlab)")

    runs = sub.add_parser("runs", help="list saved runs")
    runs.add_argument("--out", default="runs", metavar="DIR", help="runs folder (default: ./runs)")
    runs.add_argument("--json", action="store_true", help="print the list as JSON")

    serve = sub.add_parser("serve", help="start the dashboard (needs the app extra)")
    serve.add_argument("--port", type=_port, default=5006, help="port (default: 5006)")
    serve.add_argument("--address", default="localhost", help="address (default: localhost)")
    serve.add_argument("--show", action="store_true", help="open it in a browser")

    from engine.cli.sweep import add_sweep_arguments
    sweep = sub.add_parser("sweep", help="hyper-parameter sweeps: grid, random search and seeds, "
                           "on Dask (needs the sweep extra) or --serial")
    if wanted("sweep"):
        add_sweep_arguments(sweep)

    bench = sub.add_parser("bench", help="time a training step of every rule against backprop")
    bench.add_argument("--device", default="cpu", metavar=_choices(DEVICES),
                       help="device (default: cpu)")
    bench.add_argument("--quick", action="store_true", help="few steps: a smoke test, not a timing")
    bench.add_argument("--threads", type=int_at_least(1), default=None, metavar="N",
                       help="torch.set_num_threads(N) (default: torch's)")
    bench.add_argument("--rounds", type=int_at_least(1), default=None, metavar="R",
                       help="interleaved timing rounds (default: 15, quick: 2)")
    bench.add_argument("--steps", type=int_at_least(1), default=None, metavar="N",
                       help="timed steps per round and candidate (default: the metric "
                       f"interval, {_DEFAULTS.metric_interval}, so each block holds one logged "
                       "step; quick: 3)")
    bench.add_argument("--json", action="store_true", help="print the results as JSON")
    return parser


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"port={text!r} is not allowed; it must be an integer "
                                         "from 1 to 65535")
    return value
