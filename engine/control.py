"""The one run loop: train a Trainer, obeying pause, resume, step-to, stop and set between steps.

Every host runs this loop. The CLI, notebooks, sweeps and experiments call `drive` in their own
thread, with a `Control` to send it commands from another thread (or none at all); the
dashboard's run process calls it with commands from a multiprocessing queue (engine/host/worker.py).
Commands are plain tuples, so either kind of queue carries them:

    ("pause", None)   ("resume", None)   ("step", target)   ("stop", None)   ("set", {name: value})
    ("member", k): the records' matrices are member k's of a population, from the next record on

"step" pauses at step `target` (the dashboard's Step button). "set" changes live settings
(σ, lr, feedback_lr) through `Trainer.set`; every record carries the values its step used.
"""

from __future__ import annotations

import queue
from typing import Any, Callable

from engine.status import Status


class Control:
    """Commands for a `drive` loop in another thread. Every method returns at once; the loop
    reads them between steps."""

    def __init__(self) -> None:
        self.commands: queue.SimpleQueue = queue.SimpleQueue()
        self.stop_asked = False

    def pause(self) -> None:
        self.commands.put(("pause", None))

    def resume(self) -> None:
        self.commands.put(("resume", None))

    def step_to(self, target: int) -> None:
        """Run to step `target`, then pause there."""
        self.commands.put(("step", int(target)))

    def stop(self) -> None:
        self.stop_asked = True
        self.commands.put(("stop", None))

    def set(self, **changes: Any) -> None:
        self.commands.put(("set", changes))


class _Orders:
    """The loop's reading of its commands: paused or not, a step target, stop."""

    def __init__(self, trainer, paused: bool):
        self.trainer, self.paused, self.target, self.stop = trainer, paused, None, False

    def obey(self, commands, block: bool) -> None:
        """Apply every queued command; with `block`, wait for at least one."""
        while True:
            try:
                kind, arg = commands.get() if block else commands.get_nowait()
            except queue.Empty:
                return
            if kind == "pause":
                self.paused, self.target = True, None
            elif kind == "resume":
                self.paused, self.target = False, None
            elif kind == "step":
                self.paused, self.target = True, arg
            elif kind == "stop":
                self.stop = True
            elif kind == "set":
                self.trainer.set(**arg)
            elif kind == "member":          # whose matrices the next records carry
                self.trainer.shown_member = arg
            else:
                raise ValueError(f"unknown run command {kind!r}")
            block = False

    def waiting(self, step: int) -> bool:
        return not self.stop and self.paused and (self.target is None or step >= self.target)


def drive(trainer, commands=None, *, steps: int | None = None, paused: bool = False,
          poll_every: int = 1, report: Callable[[Status, int], None] | None = None,
          on_record: Callable[[dict], None] | None = None,
          on_step: Callable[[], None] | None = None) -> Status:
    """Train until the budget (cfg.steps, or `steps` more) is done or a stop command arrives.

    `commands`: a queue of command tuples (a `Control`'s, or a multiprocessing queue), read
    every `poll_every` steps, and at every step while paused. `report(status, step)` hears
    each change of state (and each step a paused run comes to rest at); `on_record` gets each
    logged record, `on_step` is called after every step. Returns FINISHED, STOPPED or (when
    `steps` ended before the budget) PAUSED; a diverging run raises DivergedError with the
    trainer's status DIVERGED. Exceptions from the step reach the caller.
    """
    if isinstance(commands, Control):
        commands = commands.commands
    budget = trainer.cfg.steps
    target = budget if steps is None else min(budget, trainer.step_count + steps)
    orders = _Orders(trainer, paused)
    last: tuple[Status, int] | None = None

    def tell(status: Status) -> None:
        nonlocal last
        trainer.status = status
        if report is not None and last != (status, trainer.step_count):
            report(status, trainer.step_count)
        last = (status, trainer.step_count)

    try:
        while True:
            if commands is not None and (orders.paused or trainer.step_count % poll_every == 0):
                orders.obey(commands, block=False)
                while orders.waiting(trainer.step_count):
                    tell(Status.PAUSED)
                    orders.obey(commands, block=True)
            if orders.stop:
                tell(Status.STOPPED)
                return Status.STOPPED
            if trainer.step_count >= target:
                done = Status.FINISHED if trainer.step_count >= budget else Status.PAUSED
                tell(done)
                return done
            if last is None or last[0] != Status.RUNNING:
                tell(Status.RUNNING)
            record = trainer.step()
            if on_step is not None:
                on_step()
            if record is not None and on_record is not None:
                on_record(record)
    except KeyboardInterrupt:
        trainer.status = Status.STOPPED
        raise
    except BaseException:
        if trainer.status != Status.DIVERGED:
            trainer.status = Status.FAILED
        raise
