"""The process a dashboard run trains in.

A run trains in its own process, not a thread of the server: the training loop's Python glue and
the server's (Bokeh serialisation, websocket writes) would otherwise take turns on one GIL, and a
small network's step is mostly Python glue. The process talks to its `RunHandle` through two
queues: commands in (pause, resume, step, stop, set), events out (ready, record, progress,
status, saved), and holds the read end of a pipe that only the server writes to: when the server
ends, however it ends, the pipe closes and the run ends with it. Given a runs folder, the process
also saves the run there (engine/host/saving.py), so the server's threads never wait on a disk.

Processes come from a forkserver that imported torch and the engine once, so a Start is
answered in milliseconds.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from typing import Any

from engine.errors import ConfigError
from engine.config import RunConfig

COMMAND_POLL_STEPS = 8        # check for commands every few steps: cheap, and still immediate
PROGRESS_SECONDS = 0.1        # how often the step count is reported between records

_context = None


def context():
    """The multiprocessing context runs are started from (a warm forkserver where there is one)."""
    global _context
    if _context is None:
        if "forkserver" in mp.get_all_start_methods():
            _context = mp.get_context("forkserver")
            _context.set_forkserver_preload(["engine.host.preload"])
        else:
            _context = mp.get_context("spawn")
    return _context


def warm_up() -> None:
    """Start the forkserver now (at server start), so the first Start does not pay for it."""
    proc = context().Process(target=_noop, daemon=True)
    proc.start()
    proc.join()


def _noop() -> None:
    pass


# Exit status of a run whose server went away (128 + SIGTERM, as if it had been terminated).
EXIT_SERVER_GONE = 143


def _end_with_server(lifeline) -> None:
    """Block until the server's end of the pipe closes (the server exited, crashed or was killed:
    nobody can see or stop this run any more), then end the process at once, even mid-step.
    A saved run's folder then says "running" with this process gone: its listing says
    "interrupted", and --resume continues it from its last checkpoint."""
    try:
        lifeline.recv()
    except (EOFError, OSError):
        pass
    os._exit(EXIT_SERVER_GONE)


def train(cfg_dict: dict[str, Any], commands, events, paused: bool, threads: int | None,
          label: str, lifeline=None, save_to: str | None = None) -> None:
    """The child's main: build the trainer, then run engine/control.py's loop on the commands.
    `save_to`: the runs folder to save the run in (None: not saved)."""
    if lifeline is not None:
        threading.Thread(target=_end_with_server, args=(lifeline,), name="server-watch",
                         daemon=True).start()
    import torch

    from engine.status import FINAL, Status
    from engine.control import drive
    from engine.host.saving import RunSaver
    from engine.divergence import DivergedError
    from engine.trainer import Trainer

    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    trainer = saver = None
    last_progress = 0.0

    def report(status: Status, step: int, error: str | None = None, cause: BaseException | None = None) -> None:
        if saver is not None and status in FINAL:
            # Saved before the page hears the end: on it the server closes the lifeline, which
            # ends this process at once.
            saver.close(status, cause or error)
        events.put(("status", str(status), step, error))
        if saver is not None and status == Status.PAUSED:
            saver.flush()           # after the answer: Pause shows at once, the folder follows

    def progress() -> None:
        nonlocal last_progress
        now = time.monotonic()
        if now - last_progress >= PROGRESS_SECONDS:
            last_progress = now
            events.put(("progress", trainer.step_count))

    def step_now() -> int:
        return trainer.step_count if trainer is not None else 0

    try:
        trainer = Trainer(RunConfig.from_dict(cfg_dict))
        trainer.subscribe(lambda record: events.put(("record", record)), matrices=True)
        # B at step 0, of every member of a population (the page may show any of them)
        events.put(("ready", {"step": trainer.step_count,
                              "members": [trainer.matrices(k) for k in range(trainer.members)]}))
        if save_to is not None:     # subscribed after the page's feed: a record reaches it first
            saver = RunSaver(save_to, trainer, lambda kind, text: events.put((kind, text)))
        drive(trainer, commands, paused=paused, poll_every=COMMAND_POLL_STEPS, report=report,
              on_step=progress)
    except DivergedError as exc:
        # The step it went bad at, which the message names too (the run noticed it at its next
        # logged step, up to metric_interval later): the status line says one step, not two.
        report(Status.DIVERGED, exc.step, f"{label}: {exc}", exc)
    except ConfigError as exc:
        report(Status.FAILED, step_now(), str(exc))
    except Exception as exc:                  # the server keeps serving; the page says what happened
        report(Status.FAILED, step_now(), f"{label}: {type(exc).__name__}: {' '.join(str(exc).split())}")
