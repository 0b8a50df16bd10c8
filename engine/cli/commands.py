"""The small commands: `creditlab runs`, `serve`, `bench` and `sweep` (whose work is in
engine/cli/sweep.py)."""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys

from engine.cli.common import EXIT_OK, UsageError, cell, dumps, fmt
from engine.config import DEVICES
from engine.errors import ConfigError

APP_EXTRA_MESSAGE = "the dashboard needs the app extra: pip install 'creditlab[app]'"


def cmd_runs(args: argparse.Namespace) -> int:
    from engine.runs.reader import list_runs

    df = list_runs(args.out)
    if args.json:
        print(dumps(df.to_dict(orient="records")))
        return EXIT_OK
    if df.empty:
        print(f"no runs in {args.out}")
        return EXIT_OK
    shown = df.drop(columns=["path", "test_accuracy_std"]).copy()
    # a population's accuracy is its members' mean ± their standard deviation
    shown["test_accuracy"] = [fmt(v, ".1f", 100.0) + ("" if _missing(sd) else f" ± {fmt(sd, '.1f', 100.0)}")
                              for v, sd in zip(df["test_accuracy"], df["test_accuracy_std"])]
    shown["test_loss"] = [fmt(v, ".4g") for v in shown["test_loss"]]
    shown["steps"] = ["-" if v is None or (isinstance(v, float) and math.isnan(v)) else str(int(v))
                      for v in shown["steps"]]
    for col in ("rule", "dataset", "depth", "width", "seed", "seeds"):     # blank in unreadable rows
        shown[col] = [cell(v) for v in shown[col]]
    for col in ("id", "rule", "dataset", "status"):      # folder names and files are anyone's
        shown[col] = [_printable(v) for v in shown[col]]
    shown = shown.rename(columns={"test_accuracy": "test_acc_%"})
    print(shown.to_string(index=False))
    print(f"{len(df)} run{'s' if len(df) != 1 else ''} in {args.out}")
    return EXIT_OK


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _printable(value) -> str:
    """`value` as text a terminal shows as it is: control characters (an escape sequence in a
    folder name could rewrite the screen) are written as their escapes."""
    text = str(value)
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


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
               # A closed tab's session (and so its runs) is cleaned up within seconds, but not
               # before a slow page has connected: a busy laptop can take over 3 s from the
               # page's HTTP answer to its websocket, and a session reaped in between is built
               # a second time when the page connects.
               "--check-unused-sessions", "1000", "--unused-session-lifetime", "10000"]
    for host in hosts:
        command += ["--allow-websocket-origin", f"{host}:{args.port}"]
    if args.show:
        command.append("--show")
    print(f"serving the dashboard at http://{args.address}:{args.port}/ (Ctrl-C stops it)",
          file=sys.stderr, flush=True)
    # The dashboard reads where to save its runs, and whether to, from its environment.
    env = dict(os.environ)
    if args.out is not None:
        env["CREDITLAB_RUNS"] = os.path.abspath(args.out)
    if args.no_save:
        env["CREDITLAB_SAVE_RUNS"] = "0"
    server = subprocess.Popen(command, preexec_fn=_die_with_parent, env=env)
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
    from engine.bench import populations, rules

    if args.device not in DEVICES:
        raise ConfigError(f"device={args.device!r} is not allowed; choose one of {', '.join(DEVICES)}")
    if args.rules is not None and args.population is None:
        raise UsageError("--rules is not allowed without --population (the rules bench times every rule)")
    progress = None if args.json else sys.stderr
    if args.population is not None:
        bench = populations
        report = bench.run_benchmark(populations=args.population, rules=args.rules or bench.RULES,
                                     device=args.device, threads=args.threads, rounds=args.rounds,
                                     steps=args.steps, quick=args.quick, progress=progress)
    else:
        bench = rules
        report = bench.run_benchmark(device=args.device, quick=args.quick, threads=args.threads,
                                     rounds=args.rounds, steps=args.steps, progress=progress)
    if args.json:
        print(dumps(report))
    else:
        print(bench.format_report(report))
    return EXIT_OK


def cmd_sweep(args: argparse.Namespace) -> int:
    from engine.cli.sweep import sweep_command
    return sweep_command(args)
