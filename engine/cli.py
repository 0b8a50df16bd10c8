"""The `creditlab` command line: train, runs, sweep, serve, bench.

Every bad input ends the same way: one line on stderr, `creditlab: error: <message>`, naming
the bad value and what is allowed, and exit status 2. Settings are checked by
`RunConfig.validate()` (not by argparse), so the CLI, the dashboard and the API report the
same message; argparse's own complaints (unknown flag, missing value) are folded into one line
too. A run that diverges exits 3 with the step it diverged at; Ctrl-C stops a run gracefully,
saves it as "stopped" and exits 130.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from engine.config import (DEVICES, NUMBER, ConfigError, RunConfig, choices_of, parse_float,
                           parse_int, settings)
from engine.control import Control, Status, drive
from engine.argtypes import int_at_least
from engine.download import DataError, one_line

PROG = "creditlab"
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_DIVERGED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
APP_EXTRA_MESSAGE = "the dashboard needs the app extra: pip install 'creditlab[app]'"


class UsageError(Exception):
    """Bad command-line input; the message is one line."""


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


def _parse_width(text: str) -> int | list[int]:
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ConfigError(f"width={text!r} is not allowed; give one integer or comma-separated "
                          "integers, one per hidden layer (e.g. 50 or 50,20)") from None
    return values[0] if len(values) == 1 else values


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """A validated RunConfig: RunConfig's defaults, overridden by the flags that were given."""
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(RunConfig):
        text = getattr(args, f.name, None)
        if text is None:
            continue
        default = getattr(_DEFAULTS, f.name)
        if f.name == "width":
            changes["width"] = _parse_width(text)
        elif isinstance(default, bool):
            changes[f.name] = text
        elif isinstance(default, int):
            changes[f.name] = parse_int(f.name, text)
        elif isinstance(default, float):
            changes[f.name] = parse_float(f.name, text)
        else:
            changes[f.name] = text
    if isinstance(changes.get("width"), list) and "depth" not in changes:
        changes["depth"] = len(changes["width"])
    return dataclasses.replace(_DEFAULTS, **changes).validate()


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

    from engine.sweep import add_sweep_arguments
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


# ----------------------------------------------------------------- output
def _err(message: str) -> None:
    print(f"{PROG}: error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)


def _dumps(data: Any) -> str:
    from engine.runs import json_safe
    return json.dumps(json_safe(data), allow_nan=False)


def _fmt(value: Any, spec: str = ".3g", scale: float = 1.0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value * scale, spec)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _print_summary(result: dict, seconds: float) -> None:
    acc = result.get("test_accuracy")
    print(f"{result['rule']} on {result['dataset']}: {result['status']} after {result['steps']} steps "
          f"in {seconds:.1f} s")
    print(f"test accuracy {_fmt(acc, '.1f', 100.0)} %, test loss {_fmt(result.get('test_loss'), '.4g')}, "
          f"train loss {_fmt(result.get('train_loss'), '.4g')}")
    layers = result.get("layers") or []
    if layers:
        print("layer  weight°  signal°  update°  sign agree  rel. error")
        for layer in layers:
            print(f"{layer['layer']:>5}  {_fmt(layer['weight_angle_deg'], '7.1f'):>7}  "
                  f"{_fmt(layer['signal_angle_deg'], '7.1f'):>7}  "
                  f"{_fmt(layer['update_angle_deg'], '7.1f'):>7}  "
                  f"{_fmt(layer['sign_congruence'], '9.1f', 100.0):>9} %  "
                  f"{_fmt(layer['relative_error'], '10.3f'):>10}")
    if result.get("run_dir"):
        print(f"saved to {result['run_dir']}")


# ----------------------------------------------------------------- commands
def _resumed(args: argparse.Namespace):
    """(config, checkpoint) of the run folder --resume names; UsageError, one line, if unusable."""
    import torch

    given = [f.name for f in dataclasses.fields(RunConfig)
             if getattr(args, f.name, None) is not None and f.name != "steps"]
    if given:
        raise UsageError(f"--resume continues a run with its own settings; drop "
                         f"{', '.join('--' + n.replace('_', '-') for n in given)} (only --steps may be given)")
    if args.no_save:
        raise UsageError("--resume writes into the run's folder; drop --no-save")
    from engine.runs import CHECKPOINT_FILE, load_summary
    path = Path(args.resume) / CHECKPOINT_FILE
    if (load_summary(args.resume) or {}).get("status") == Status.RUNNING:
        raise UsageError(f"resume={args.resume!r} is not allowed: that run is still running; "
                         "stop it first (or wait for it to end)")
    if not path.is_file():
        raise UsageError(f"resume={args.resume!r} is not allowed: {path} does not exist "
                         "(give a run folder written by creditlab train)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        cfg = RunConfig.from_dict(state["config"])
    except (OSError, RuntimeError, KeyError, TypeError, ValueError, EOFError) as exc:
        raise UsageError(f"resume={args.resume!r} is not allowed: {path} cannot be read "
                         f"({type(exc).__name__})") from None
    done = int(state.get("step", 0))
    if args.steps is not None:
        cfg.steps = parse_int("steps", args.steps)
    if cfg.steps <= done:
        raise UsageError(f"steps={cfg.steps} is not allowed with --resume: the run has done "
                         f"{done} steps already; give --steps larger than {done}")
    return cfg.validate(), state


def cmd_train(args: argparse.Namespace) -> int:
    state = None
    if args.resume is not None:
        cfg, state = _resumed(args)
    else:
        cfg = config_from_args(args)               # ConfigError → exit 2 in main()
    from engine.trainer import DivergedError, Trainer

    if args.data_dir is not None:
        from engine.download import set_data_dir
        set_data_dir(args.data_dir)
    if args.quiet:
        from engine.data import DOWNLOAD_OPTIONS
        DOWNLOAD_OPTIONS["progress"] = False

    trainer = Trainer(cfg)                         # may raise ConfigError (e.g. no CUDA)
    if state is not None:
        trainer.restore(state)
    writer = None
    if not args.no_save:
        from engine.runs import RunWriter
        try:
            writer = RunWriter(args.out, trainer, resume=args.resume)
        except OSError as exc:
            raise UsageError(f"cannot save the run under out={args.out!r}: "
                             f"{exc.strerror or exc}; choose another --out or pass --no-save") from None

    bar = None
    if not args.quiet:
        from tqdm import tqdm
        bar = tqdm(total=cfg.steps, initial=trainer.step_count, file=sys.stderr, unit="step",
                   dynamic_ncols=True, desc=cfg.rule, leave=True)

    def on_record(record: dict) -> None:
        if bar is None:
            return
        from engine.stream import flatten_record
        row = flatten_record(record)
        postfix = {"loss": _fmt(row["train_loss"], ".4f"),
                   "acc": _fmt(row["train_accuracy"], ".3f"),
                   "signal°": _fmt(row.get("signal_angle_deg_mean"), ".1f")}
        bar.set_postfix(postfix, refresh=False)
        bar.update(record["step"] - bar.n)

    # Ctrl-C, SIGTERM or SIGHUP: the first asks the run loop to stop after the current step
    # (the run is saved as "stopped", with its checkpoint); a second interrupts at once (still
    # saved). The exit status is 128 + the signal's number (130 for Ctrl-C).
    previous: dict = {}
    received: list[int] = []
    control = Control()
    if threading.current_thread() is threading.main_thread():
        def on_signal(signum, frame):
            received.append(signum)
            if control.stop_asked:
                raise KeyboardInterrupt
            control.stop()
        for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if sig is not None:
                previous[sig] = signal.signal(sig, on_signal)

    from engine.errors import SaveError

    started = time.perf_counter()
    error: BaseException | None = None
    status = Status.FINISHED
    try:
        status = drive(trainer, control, on_record=on_record)
    except DivergedError as exc:
        status, error = Status.DIVERGED, exc
    except KeyboardInterrupt:
        status = Status.STOPPED
    except SaveError as exc:                       # writer.broken says it below
        status, error = Status.FAILED, exc
    except Exception as exc:                       # noqa: BLE001  whatever it is, the run is saved
        status, error = Status.FAILED, RuntimeError(f"the run failed at step {trainer.step_count}: "
                                               f"{type(exc).__name__}: {one_line(exc)}")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - started

    if writer is not None:
        result = writer.close(status, error)
    else:
        result = {**trainer.summary(), "status": status, "run_id": None, "run_dir": None}
        if error is not None:
            result["diverged_step"] = error.step
    result["seconds"] = seconds
    result["config"] = cfg.to_dict()

    if args.json:
        print(_dumps(result), flush=True)
    elif status in (Status.DIVERGED, Status.FAILED):
        if result.get("run_dir") and not result.get("save_error"):
            print(f"saved to {result['run_dir']}")
    else:
        _print_summary(result, seconds)
    if result.get("save_error"):                   # the outcome below keeps its own exit status
        _err(result["save_error"])
    if status == Status.FAILED:
        if not isinstance(error, SaveError):
            _err(str(error))
        return EXIT_FAILURE
    if status == Status.DIVERGED:
        _err(str(error))
        return EXIT_DIVERGED
    if status == Status.STOPPED:
        print(f"{PROG}: interrupted: the run was stopped at step {result['steps']}"
              + (f" and saved to {result['run_dir']} (continue it with --resume)"
                 if result.get("run_dir") and not result.get("save_error") else ""),
              file=sys.stderr)
        return 128 + received[0] if received else EXIT_INTERRUPTED
    return EXIT_FAILURE if result.get("save_error") else EXIT_OK


def cmd_runs(args: argparse.Namespace) -> int:
    from engine.runs import list_runs

    df = list_runs(args.out)
    if args.json:
        print(_dumps(df.to_dict(orient="records")))
        return EXIT_OK
    if df.empty:
        print(f"no runs in {args.out}")
        return EXIT_OK
    shown = df.drop(columns=["path"]).copy()
    shown["test_accuracy"] = [_fmt(v, ".1f", 100.0) for v in shown["test_accuracy"]]
    shown["test_loss"] = [_fmt(v, ".4g") for v in shown["test_loss"]]
    shown["steps"] = ["-" if v is None or (isinstance(v, float) and math.isnan(v)) else str(int(v))
                      for v in shown["steps"]]
    for col in ("rule", "dataset", "depth", "width", "seed"):     # blank in unreadable rows
        shown[col] = [_cell(v) for v in shown[col]]
    shown = shown.rename(columns={"test_accuracy": "test_acc_%"})
    print(shown.to_string(index=False))
    print(f"{len(df)} run{'s' if len(df) != 1 else ''} in {args.out}")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    import importlib.util
    import subprocess

    if importlib.util.find_spec("panel") is None:
        raise UsageError(APP_EXTRA_MESSAGE)
    spec = importlib.util.find_spec("app")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError("the dashboard package 'app' is not installed; reinstall creditlab "
                         "with pip install 'creditlab[app]'")
    app_dir = os.path.abspath(list(spec.submodule_search_locations)[0])
    # localhost and 127.0.0.1 are the same server: accept the page from either spelling.
    loopback = {"localhost", "127.0.0.1"}
    hosts = sorted(loopback) if args.address in loopback else [args.address]
    command = [sys.executable, "-m", "panel", "serve", app_dir, "--address", args.address,
               "--port", str(args.port),
               # a closed tab's session (and so its runs) is cleaned up within seconds
               "--check-unused-sessions", "1000", "--unused-session-lifetime", "3000"]
    for host in hosts:
        command += ["--allow-websocket-origin", f"{host}:{args.port}"]
    if args.show:
        command.append("--show")
    print(f"serving the dashboard at http://{args.address}:{args.port}/ (Ctrl-C stops it)",
          file=sys.stderr, flush=True)
    server = subprocess.Popen(command, preexec_fn=_die_with_parent)
    # SIGTERM or SIGHUP to us ends the server too (its run processes end with it); Ctrl-C reaches
    # both already, as one process group.
    received: list[int] = []

    def forward(signum, frame):
        received.append(signum)
        server.send_signal(signum)

    before = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        while True:
            try:
                code = server.wait()
                break
            except KeyboardInterrupt:       # the server got it too: wait for it to end
                received.append(signal.SIGINT)
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
    if received:                            # ended by signal N: exit 128 + N, as a shell reports it
        return 128 + received[0]
    return 128 - code if code < 0 else code


def _die_with_parent() -> None:
    """In a child before exec: Linux sends it SIGTERM if we are killed (even by SIGKILL), so a
    server is never left listening without the command that started it."""
    if sys.platform.startswith("linux"):
        import ctypes
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def cmd_bench(args: argparse.Namespace) -> int:
    from engine import bench

    if args.device not in DEVICES:
        raise ConfigError(f"device={args.device!r} is not allowed; choose one of {', '.join(DEVICES)}")
    report = bench.run_benchmark(device=args.device, quick=args.quick, threads=args.threads,
                                 rounds=args.rounds, steps=args.steps,
                                 progress=None if args.json else sys.stderr)
    if args.json:
        print(_dumps(report))
    else:
        print(bench.format_report(report))
    return EXIT_OK


def cmd_sweep(args: argparse.Namespace) -> int:
    from engine.sweep import sweep_command
    return sweep_command(args)


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
        _err(str(exc))
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
