"""The `creditlab` command line's flags. train's are derived from engine.config's settings: one
per RunConfig field, with its doc, choices and default."""

from __future__ import annotations

import argparse
from typing import Any

from engine.cli.argtypes import int_at_least
from engine.cli.common import PROG, UsageError
from engine.config import DEVICES, RunConfig, choices_of, eval_interval_for, settings
from engine.errors import ConfigError
from engine.rules import RULES
from engine.values import check_choice, format_width, parse_float, parse_float_list, parse_int_list


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
    for name, s in settings().items():
        text = getattr(args, name, None)
        if text is None:
            continue
        default = getattr(_DEFAULTS, name)
        if name == "width":
            changes["width"] = parse_int_list("width", text, s.read_int)
        elif isinstance(default, bool):
            changes[name] = text
        elif isinstance(default, int):
            changes[name] = s.read_int(name, text)
        elif isinstance(default, float):
            changes[name] = (parse_float_list if s.many else parse_float)(name, text)
        else:
            changes[name] = text
    if isinstance(changes.get("width"), list) and "depth" not in changes:
        changes["depth"] = len(changes["width"])
    # A run asked to measure every K steps does: the test set, left out, follows K (a step that
    # evaluates measures every curve too). A bad K is left for validate() to name.
    if changes.get("metric_interval", 0) >= 1 and "eval_interval" not in changes:
        changes["eval_interval"] = eval_interval_for(changes["metric_interval"])
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
            shown = format_width(default) if name == "width" else default
            if name == "eval_interval":
                shown = f"{default}, or with --metric-interval K the first multiple of K from {default} on"
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
    serve.add_argument("--port", type=int_at_least(1, "port", 65535), default=5006,
                       help="port (default: 5006)")
    serve.add_argument("--address", default="localhost", help="address (default: localhost)")
    serve.add_argument("--show", action="store_true", help="open it in a browser")
    serve.add_argument("--out", default=None, metavar="DIR",
                       help="folder the dashboard saves its runs in and lists saved runs from "
                       "(default: $CREDITLAB_RUNS or ./runs)")
    serve.add_argument("--no-save", action="store_true",
                       help="do not save the dashboard's runs unless its switch is turned on "
                       "(sets CREDITLAB_SAVE_RUNS=0)")

    from engine.cli.sweep import add_sweep_arguments
    sweep = sub.add_parser("sweep", help="hyper-parameter sweeps: grid, random search and seeds, "
                           "on Dask (needs the sweep extra) or --serial")
    if wanted("sweep"):
        add_sweep_arguments(sweep)

    bench = sub.add_parser("bench", help="time a training step of every rule against backprop")
    bench.add_argument("--device", default="cpu", metavar=_choices(DEVICES),
                       help="device (default: cpu)")
    bench.add_argument("--quick", action="store_true", help="few steps: a smoke test, not a timing")
    # torch.set_num_threads takes a C int
    bench.add_argument("--threads", type=int_at_least(1, "threads", 2**31 - 1), default=None, metavar="N",
                       help="torch.set_num_threads(N) (default: torch's)")
    bench.add_argument("--rounds", type=int_at_least(1, "rounds"), default=None, metavar="R",
                       help="interleaved timing rounds (default: 15, quick: 2)")
    bench.add_argument("--steps", type=int_at_least(1, "steps"), default=None, metavar="N",
                       help="timed steps per round and candidate (default: the metric "
                       f"interval, {_DEFAULTS.metric_interval}, so each block holds one logged "
                       "step; quick: 3)")
    bench.add_argument("--population", type=_populations, default=None, metavar="P,…",
                       help="time populations of these sizes instead (e.g. 1,8,32,128): model-steps/s "
                       "of P seeds trained in one batched step, and the ratio to P = 1")
    bench.add_argument("--rules", type=_rule_list, default=None, metavar="RULE,…",
                       help="with --population: the rules to time (default: np,fa,bp)")
    bench.add_argument("--json", action="store_true", help="print the results as JSON")
    return parser


def _populations(text: str) -> list[int]:
    """--population: population sizes, each one the seeds setting allows (one line otherwise,
    not argparse's "invalid value", which would hide what is allowed)."""
    try:
        sizes = [settings()["seeds"].read_int("population", part) for part in text.split(",")]
        for p in sizes:
            settings()["seeds"].check("population", p, 1)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    return sizes


def _rule_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",")]
    try:
        for n in names:
            check_choice("rules", n, sorted(RULES))
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    return names

