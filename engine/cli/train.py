"""`creditlab train`: one run, with its progress bar, resume, signals and exit statuses."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

from engine.cli.common import (EXIT_DIVERGED, EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, PROG, UsageError, dumps,
                               print_error, fmt)
from engine.cli.parser import config_from_args
from engine.errors import ConfigError
from engine.config import MEMBER_SETTINGS, RunConfig, settings
from engine.members import SYMBOLS, group_name, mean, member_name, std
from engine.metric_names import METRICS
from engine.control import Control, drive
from engine.status import Status
from engine.threads import threads_for
from engine.errors import one_line


def _print_summary(result: dict, seconds: float) -> None:
    acc = result.get("test_accuracy")
    print(f"{result['rule']} on {result['dataset']}: {result['status']} after {result['steps']} steps "
          f"in {seconds:.1f} s")
    members = result.get("members")
    compared = [k for k in MEMBER_SETTINGS if members and k in members[0]]
    gone = [m for m in members or [] if m.get("diverged_step") is not None]
    if gone:                # left behind by the population (engine/divergence.py), named here
        named = "; ".join(f"member {m['member']} ({member_name({k: m[k] for k in ('seed', *compared)})}) at step "
                          f"{m['diverged_step']}" for m in gone)
        print(f"{len(gone)} of {len(members)} members diverged ({named}): the means and spreads below are "
              f"over the {len(members) - len(gone)} left")
    groups = list(dict.fromkeys(tuple(m[k] for k in compared) for m in members or [])) if compared else []
    if groups:              # a population comparing settings: each group's members, then each member
        print(f"{len(members)} members, {len(members) // len(groups)} seed(s) for each setting: each one's "
              "mean ± standard deviation (each member below)")
        for values in groups:
            group = [m for m in members if tuple(m[k] for k in compared) == values]
            accs, losses = [m["test_accuracy"] for m in group], [m["test_loss"] for m in group]
            if all(m.get("diverged_step") is not None for m in group):
                print(f"{group_name(dict(zip(compared, values))):<12} diverged (every member)")
                continue
            print(f"{group_name(dict(zip(compared, values))):<12} test accuracy {fmt(mean(accs), '.1f', 100.0)} ± "
                  f"{fmt(std(accs), '.1f', 100.0)} %, test loss {fmt(mean(losses), '.4g')} ± {fmt(std(losses), '.2g')}")
    elif members:           # a population: each member, then their mean ± standard deviation
        print(f"{len(members)} seeds, the members' mean ± standard deviation (each member below)")
        print(f"test accuracy {fmt(acc, '.1f', 100.0)} ± {fmt(result.get('test_accuracy_std'), '.1f', 100.0)} %, "
              f"test loss {fmt(result.get('test_loss'), '.4g')} ± {fmt(result.get('test_loss_std'), '.2g')}, "
              f"train loss {fmt(result.get('train_loss'), '.4g')}")
    else:
        print(f"test accuracy {fmt(acc, '.1f', 100.0)} %, test loss {fmt(result.get('test_loss'), '.4g')}, "
              f"train loss {fmt(result.get('train_loss'), '.4g')}")
    layers = result.get("layers") or []
    if layers:
        heads = [METRICS[m].short for m in ("weight_angle_deg", "signal_angle_deg", "update_angle_deg",
                                           "sign_congruence", "relative_error")]
        print("layer  {:>7}  {:>7}  {:>7}  {:>10}  {:>10}".format(*heads))
        for layer in layers:
            print(f"{layer['layer']:>5}  {fmt(layer['weight_angle_deg'], '7.1f'):>7}  "
                  f"{fmt(layer['signal_angle_deg'], '7.1f'):>7}  "
                  f"{fmt(layer['update_angle_deg'], '7.1f'):>7}  "
                  f"{fmt(layer['sign_congruence'], '9.1f', 100.0):>9} %  "
                  f"{fmt(layer['relative_error'], '10.3f'):>10}")
    if members:
        print("member   seed" + "".join(f"  {SYMBOLS[k]:>8}" for k in compared) + "  test acc %  test loss  train loss")
        for m in members:
            values = "".join(f"  {m[k]:>8g}" for k in compared)
            numbers = (f"diverged at step {m['diverged_step']}" if m.get("diverged_step") is not None else
                       f"{fmt(m['test_accuracy'], '9.1f', 100.0):>9}  {fmt(m['test_loss'], '9.4g'):>9}  "
                       f"{fmt(m['train_loss'], '10.4g'):>10}")
            print(f"{m['member']:>6}  {m['seed']:>5}{values}  {numbers}")
    if result.get("run_dir"):
        print(f"saved to {result['run_dir']}")


def _report(result: dict, status: str, seconds: float, as_json: bool) -> None:
    """The run's outcome on stdout; OSError when stdout cannot take it (closed: no stdout at all)."""
    if sys.stdout is None:
        raise OSError("it is closed")
    if as_json:
        print(dumps(result))
    elif status in (Status.DIVERGED, Status.FAILED):
        if result.get("run_dir") and not result.get("save_error"):
            print(f"saved to {result['run_dir']}")
    else:
        _print_summary(result, seconds)
    sys.stdout.flush()                             # a full device says so here, not at exit


# ----------------------------------------------------------------- commands
def _resumed(args: argparse.Namespace):
    """(config, checkpoint) of the run folder --resume names; UsageError, one line, if unusable."""
    given = [name for name in settings() if getattr(args, name, None) is not None and name != "steps"]
    if given:
        raise UsageError(f"--resume continues a run with its own settings; drop "
                         f"{', '.join('--' + n.replace('_', '-') for n in given)} (only --steps may be given)")
    if args.no_save:
        raise UsageError("--resume writes into the run's folder; drop --no-save")
    from engine.runs.reader import UnreadableRun, load_summary, read_checkpoint
    try:
        if (load_summary(args.resume, strict=True) or {}).get("status") == Status.RUNNING:
            raise UsageError(f"resume={args.resume!r} is not allowed: that run is still running; "
                             "stop it first (or wait for it to end)")
        state = read_checkpoint(args.resume)
    except UnreadableRun as exc:
        hint = " (give a run folder written by creditlab train)" if "does not exist" in str(exc) else ""
        raise UsageError(f"resume={args.resume!r} is not allowed: {exc}{hint}") from None
    cfg = RunConfig.from_dict(state["config"])
    done = state["step"]
    if args.steps is not None:
        cfg.steps = settings()["steps"].read_int("steps", args.steps)
    if cfg.steps <= done:
        raise UsageError(f"steps={cfg.steps} is not allowed with --resume: the run has done "
                         f"{done} steps already; give --steps larger than {done}")
    try:
        return cfg.validate(), state
    except ConfigError as exc:              # e.g. a rule that is not installed here
        raise UsageError(f"resume={args.resume!r} is not allowed: checkpoint.pt's config: {exc}") from None


def _restored(trainer, state: dict, folder: str) -> None:
    """Restore a checkpoint that read_checkpoint accepted: its tensors must also fit the
    network its config builds (one edited by hand, or from another version, may not)."""
    try:
        trainer.restore(state)
    except Exception as exc:                # noqa: BLE001  torch says it in many types
        raise UsageError(f"resume={folder!r} is not allowed: checkpoint.pt does not fit the run its "
                         f"config describes ({type(exc).__name__}: {one_line(exc)[:300]})") from None


def cmd_train(args: argparse.Namespace) -> int:
    state = None
    if args.resume is not None:
        cfg, state = _resumed(args)
    else:
        cfg = config_from_args(args)               # ConfigError → exit 2 in main()
    from engine.divergence import DivergedError
    from engine.trainer import Trainer

    if args.data_dir is not None:
        from engine.data.download import set_data_dir
        set_data_dir(args.data_dir)
    if args.quiet:
        from engine.data.files import DOWNLOAD_OPTIONS
        DOWNLOAD_OPTIONS["progress"] = False

    trainer = Trainer(cfg)                         # may raise ConfigError (e.g. no CUDA)
    threads = threads_for(cfg, sum(p.numel() for p in trainer.model.parameters()) // cfg.members())
    if threads is not None:                       # a small step: one thread (engine/threads.py)
        import torch
        torch.set_num_threads(threads)
    if state is not None:
        _restored(trainer, state, args.resume)
    writer = None
    if not args.no_save:
        from engine.runs.writer import RunWriter
        from engine.runs.reader import UnreadableRun
        try:
            writer = RunWriter(args.out, trainer, resume=args.resume)
        except OSError as exc:
            raise UsageError(f"cannot save the run under out={args.out!r}: "
                             f"{exc.strerror or exc}; choose another --out or pass --no-save") from None
        except UnreadableRun as exc:       # the resumed run's metrics: kept, not overwritten
            raise UsageError(f"resume={args.resume!r} is not allowed: {exc}") from None

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
        postfix = {"loss": fmt(row["train_loss"], ".4f"),
                   "acc": fmt(row["train_accuracy"], ".3f"),
                   "signal°": fmt(row.get("signal_angle_deg_mean"), ".1f")}
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
        if isinstance(error, DivergedError):
            result["diverged_step"] = error.step
    result["seconds"] = seconds
    result["config"] = cfg.to_dict()

    reported = True
    try:
        _report(result, status, seconds, args.json)
    except OSError as exc:                         # stdout closed, full, or a broken pipe
        reported = False
        saved = f" (the run is saved in {result['run_dir']})" if result.get("run_dir") else ""
        print_error(f"cannot write the result to stdout: {exc.strerror or exc}{saved}")
    if result.get("save_error"):                   # the outcome below keeps its own exit status
        print_error(result["save_error"])
    if status == Status.FAILED:
        if not isinstance(error, SaveError):
            print_error(str(error))
        return EXIT_FAILURE
    if status == Status.DIVERGED:
        print_error(str(error))
        return EXIT_DIVERGED
    if status == Status.STOPPED:
        print(f"{PROG}: interrupted: the run was stopped at step {result['steps']}"
              + (f" and saved to {result['run_dir']} (continue it with --resume)"
                 if result.get("run_dir") and not result.get("save_error") else ""),
              file=sys.stderr)
        return 128 + received[0] if received else EXIT_INTERRUPTED
    return EXIT_FAILURE if result.get("save_error") or not reported else EXIT_OK
