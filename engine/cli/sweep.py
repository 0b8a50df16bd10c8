"""`creditlab sweep`: flags and files into a SweepSpec, the run, and its one-line errors."""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from engine.cli.argtypes import int_at_least
from engine.cli.common import print_error
from engine.errors import ConfigError, one_line
from engine.sweep.files import load_sweep_file
from engine.sweep.parse import toml_parser, check_trials, parse_sweep
from engine.sweep.spec import (DISTRIBUTIONS, EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE,
                               METRICS, SweepError, SweepSpec, TRIALS_FILE)
from engine.sweep.store import finished_trials, format_best, sweep_dir
from engine.sweep.run import SweepBusy, SweepUnavailable, default_workers, import_dask, run_sweep

def _value(text: str) -> Any:
    """A flag's value read as TOML (1e-3, 50, true, [50, 20], "x"), else as a bare string."""
    try:
        return toml_parser().loads(f"v = {text}")["v"]
    except ValueError:
        return text
    except RecursionError:                 # tomllib recurses once per nesting level
        raise _too_deep(text) from None


def _too_deep(text: str) -> SweepError:
    return SweepError(f"the flag value {text[:40]!r}... nests lists deeper than Python's recursion "
                      "limit; a setting needs a few levels")


def _values(text: str) -> list:
    """"np,fa" → ["np", "fa"]; "0.1,0.01" → [0.1, 0.01]; "[50,20],[100,100]" → lists."""
    try:
        return list(toml_parser().loads(f"v = [{text}]")["v"])
    except ValueError:
        return [_value(part.strip()) for part in text.split(",") if part.strip()]
    except RecursionError:
        raise _too_deep(text) from None


def _assignment(text: str, flag: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise SweepError(f"{flag} {text!r} is not allowed; write {flag} NAME=VALUE")
    return name.strip(), value.strip()


def _random_flag(text: str) -> tuple[str, dict]:
    """sigma=log_uniform:1e-4:1e-1, lr=uniform:0:1, width=int_uniform:10:100, rule=choice:np,fa"""
    name, value = _assignment(text, "--random")
    kind, _, rest = value.partition(":")
    if kind not in DISTRIBUTIONS or not rest:
        raise SweepError(f"--random {text!r} is not allowed; write NAME=KIND:LOW:HIGH or "
                         f"NAME=choice:A,B with KIND one of {', '.join(DISTRIBUTIONS)}")
    args = _values(rest) if kind == "choice" else [_value(p) for p in rest.split(":")]
    return name, {kind: args}


def overrides_from_args(args: argparse.Namespace) -> dict:
    o: dict[str, dict] = {"sweep": {}, "base": {}, "grid": {}, "random": {}}
    for key, flag in (("name", "name"), ("seed", "sweep_seed"), ("samples", "samples"),
                      ("seeds_per_point", "seeds"), ("metric", "metric"), ("mode", "mode")):
        if getattr(args, flag, None) is not None:
            o["sweep"][key] = getattr(args, flag)
    for text in args.set or []:
        k, v = _assignment(text, "--set")
        o["base"][k] = _value(v)
    for text in args.grid or []:
        k, v = _assignment(text, "--grid")
        o["grid"][k] = _values(v)
    for text in args.random or []:
        k, v = _random_flag(text)
        o["random"][k] = v
    return o


def spec_from_args(args: argparse.Namespace) -> SweepSpec:
    data = load_sweep_file(args.file) if args.file else {}
    return parse_sweep(data, overrides_from_args(args))




def add_sweep_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The `creditlab sweep` options, on a (sub)parser."""
    parser.add_argument("file", nargs="?", default=None,
                        help="sweep file (.toml, or .yaml/.yml with PyYAML); flags override it")
    g = parser.add_argument_group("what to sweep (added to / overriding the file)")
    g.add_argument("--name", default=None, help="sweep name (default: the file's, or 'sweep')")
    g.add_argument("--seed", dest="sweep_seed", type=int_at_least(0, "seed"), default=None, metavar="S",
                   help="the sweep's seed: makes the sampled configurations reproducible")
    g.add_argument("--samples", type=int_at_least(1, "samples"), default=None, metavar="N",
                   help="random draws per grid point")
    g.add_argument("--seeds", type=int_at_least(1, "seeds"), default=None, metavar="N",
                   help="training seeds per configuration (seeds_per_point)")
    g.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="a RunConfig setting shared by all trials, e.g. --set steps=1500")
    g.add_argument("--grid", action="append", metavar="NAME=V1,V2",
                   help="grid values, e.g. --grid rule=np,fa,bp or --grid width=[50,20],[100,100]")
    g.add_argument("--random", action="append", metavar="NAME=KIND:LOW:HIGH",
                   help="a sampled setting: log_uniform, uniform, int_uniform (LOW:HIGH) or "
                        "choice:A,B, e.g. --random sigma=log_uniform:1e-4:1e-1")
    g.add_argument("--metric", default=None, choices=list(METRICS),
                   help="what the summary ranks by (default: test_accuracy)")
    g.add_argument("--mode", default=None, choices=["max", "min"],
                   help="max or min (default: max for accuracy, min for losses)")
    h = parser.add_argument_group("where it runs")
    h.add_argument("--workers", type=int_at_least(1, "workers"), default=None, metavar="N",
                   help=f"local worker processes, one thread each (default: one per core, "
                        f"{default_workers()} here)")
    h.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="an existing Dask scheduler, e.g. tcp://host:8786 (workers must see --out)")
    h.add_argument("--serial", action="store_true",
                   help="run the trials one after another in this process, without Dask")
    h.add_argument("--no-pack", dest="pack", action="store_false",
                   help="train every trial as its own run, not the seeds (and the σ, lr and feedback_lr "
                        "values of one grid) together as one population (the same results, to rounding)")
    h.add_argument("--out", default="runs", metavar="DIR",
                   help="runs folder: trials are runs in it; the table goes to DIR/sweeps/<id>/")
    h.add_argument("--dry-run", action="store_true",
                   help="list every trial (and which are done) without running anything")
    h.add_argument("--quiet", action="store_true", help="no progress bar")
    h.add_argument("--json", action="store_true", help="print the result as one JSON object")
    return parser


def sweep_command(args: argparse.Namespace) -> int:
    """`creditlab sweep`: 0 when the sweep completed (whatever its trials did), 2 for bad input
    (one line on stderr), 1 if the scheduler cannot be reached, 130 when interrupted."""
    try:
        spec = spec_from_args(args)
        if args.serial and args.scheduler:
            raise SweepError("--serial and --scheduler cannot be combined; choose one")
        if args.scheduler and not re.match(r"^[a-z0-9+]+://[^\s/]+(:\d+)?/?$", args.scheduler):
            raise SweepError(f"--scheduler {args.scheduler!r} is not allowed; give an address "
                             "such as tcp://host:8786")
        trials = spec.trials()
        bad, first = check_trials(trials)
        if bad == len(trials):
            raise SweepError(f"no trial has a valid configuration: {first}")
        if not args.serial and not args.dry_run:
            import_dask()
    except SweepError as exc:
        print_error(str(exc))
        return EXIT_USAGE
    except ConfigError as exc:
        print_error(str(exc))
        return EXIT_USAGE
    sid = spec.sweep_id
    if bad:
        print(f"creditlab: warning: {bad} of {len(trials)} trials have an invalid configuration "
              f"and will be recorded as failed; first: {first}", file=sys.stderr)
    if args.dry_run:
        done = finished_trials(args.out, sid)
        # Every trial: a dry run is how a sweep is checked before it is paid for, and a list cut
        # short without a word hides the trials most likely to be wrong (the last search's).
        info = {"sweep_id": sid, "trials": len(trials),
                "done": sum(t.trial_id in done for t in trials), "varied": spec.varied,
                "list": [dict(trial_id=t.trial_id, search=t.search,
                              **{k: t.config[k] for k in spec.varied if k in t.config},
                              seed=t.config["seed"], done=t.trial_id in done) for t in trials]}
        if args.json:
            print(json.dumps(info, default=str))
        else:
            print(f"sweep {sid}: {info['trials']} trials ({info['done']} done), varying "
                  f"{', '.join(spec.varied) or 'nothing'}")
            for t in info["list"]:
                print("  " + " ".join(f"{k}={v}" for k, v in t.items() if k != "done")
                      + ("  (done)" if t["done"] else ""))
        return EXIT_OK
    print(f"sweep {sid}: {len(trials)} trials"
          + ("" if args.serial else (f" on {args.scheduler}" if args.scheduler else
                                     f" on {args.workers or default_workers()} local workers"))
          + f"; table: {sweep_dir(args.out, sid) / TRIALS_FILE}", file=sys.stderr)
    try:
        result = run_sweep(spec, args.out, workers=args.workers, scheduler=args.scheduler,
                           serial=args.serial, progress=not args.quiet,
                           pack=args.pack)
    except KeyboardInterrupt:
        print(f"creditlab: interrupted: finished trials are saved; run the same command again "
              f"to resume sweep {sid}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (SweepUnavailable, SweepBusy) as exc:
        print_error(str(exc))
        return EXIT_FAILURE
    except OSError as exc:
        print_error(f"cannot write the sweep under out={args.out!r}: {exc.strerror or one_line(exc)}")
        return EXIT_FAILURE
    best = result.best(spec.metric, spec.mode)
    if args.json:
        print(json.dumps({"sweep_id": sid, "path": str(result.path), "trials": result.total,
                          "skipped": result.skipped, "ran": result.ran, **result.counts,
                          "wall_seconds": result.wall_seconds,
                          "best": json.loads(best.to_json(orient="records"))}, default=str))


    else:
        c = result.counts
        print(f"sweep {sid}: {result.total} trials, {c['finished']} finished, {c['diverged']} "
              f"diverged, {c['failed']} failed ({result.skipped} were already done) in "
              f"{result.wall_seconds:.1f} s")
        print(f"best per rule by {spec.metric} ({spec.mode}, mean over seeds):")
        print(format_best(best, spec.metric))
        print(f"trials: {result.path / TRIALS_FILE}")
    return EXIT_OK
