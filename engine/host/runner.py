"""One training run off the event loop: a Trainer in its own process, feeding a RecordBuffer.

The UI never waits on training. `RunHandle` methods only queue a command and return at once; the
run's process (engine/host/worker.py) builds the Trainer, steps it and sends its records back; a
small pump thread here moves them into a bounded `RecordBuffer` that the dashboard's periodic
callback pulls from. Nothing in the run touches a Panel, Bokeh or HoloViews object; its outcome
(a `Status`: finished, stopped, diverged, failed …) is plain state the UI reads.

Why a process and not a thread: a small network's step is mostly Python, and in a thread of the
server it would take turns on one GIL with the server's own Python work (serialising and sending
every update). Measured with scripts/measure/dashboard_overhead.py on 2 cores.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from typing import Any

from engine.config import LIVE_FIELDS, RunConfig
from engine.status import ACTIVE, FINAL, Status
from engine.stream import RecordBuffer

from engine.host import saving, worker
from engine.labels import run_label

_ids = itertools.count(1)

# Records kept per run. The buffer thins its older half once full, so a one-hour run keeps its
# whole history at decreasing resolution in bounded memory.
BUFFER_CAPACITY = 2000

# A run that has not ended this long after Stop (it is inside one long step, which Stop cannot
# interrupt) is ended: SIGTERM, then SIGKILL if it is still there after KILL_GRACE.
STOP_GRACE = 5.0
KILL_GRACE = 3.0

# Torch's intra-op threads for dashboard runs. The dashboard's networks are small (digits MLPs), and
# several sessions, the server and other processes share the cores: with OpenMP teams spin-waiting
# for a descheduled thread, 2 threads on a busy 2-core machine ran 3–500 steps/s against ~1,900
# with 1 thread (measured Nov 2026). None leaves torch's choice.
TORCH_THREADS: int | None = 1


class RunHandle:
    """A run owned by one browser session. Thread-safe; every method returns immediately."""

    def __init__(self, cfg: RunConfig, label: str | None = None, capacity: int = BUFFER_CAPACITY,
                 save_to: str | os.PathLike | None = None):
        """`save_to`: a runs folder the run's process saves it in, as a run folder of its own
        (None: not saved)."""
        # Absolute now: the run's process is forked from a forkserver with its own working folder.
        self.save_to = os.path.abspath(save_to) if save_to is not None else None
        self.run_dir: str | None = None       # its folder, once the run's process made it
        self.save_error: str | None = None    # why it is not (or no longer) being saved
        self.cfg = RunConfig.from_dict(cfg.to_dict()).validate()   # our own copy, checked
        self.id = next(_ids)
        self.label = label or run_label(self.cfg)
        self._auto_label = label is None      # then it follows the live values the run applies
        self.buffer = RecordBuffer(capacity)
        self.status = Status.READY
        self.error: str | None = None
        self.step_count = 0
        self.ready = False          # the run's process has built its trainer
        self.started_at: float | None = None
        self.first_members: list | None = None        # each member's matrices before the first step
        self.changes: list[dict[str, Any]] = []      # live changes asked for: step, name, old, new
        # ... and as the records show them applied: the first record that carries a new value
        # (at most one metric interval after the step it took effect at, never before it).
        self.applied: list[dict[str, Any]] = []
        self._live_seen = {name: getattr(self.cfg, name) for name in LIVE_FIELDS}   # as it starts
        self._lock = threading.Lock()
        self._paused = False
        self._step_target: int | None = None
        self._process = None
        self._commands = None
        self._pump: threading.Thread | None = None
        self._stop_requested = False
        self._ended_by_us = False
        self._lifeline = None     # the pipe end whose closing tells the run the server is gone

    # ------------------------------------------------------------------ control
    def start(self, paused: bool = False) -> "RunHandle":
        # Under the lock: a stop() that races with the start is either seen here (the run never
        # starts) or finds the command queue and reaches the process. It is never lost.
        with self._lock:
            if self._process is not None or self.status == Status.STOPPED:
                return self
            if self._stop_requested:
                self.status = Status.STOPPED
                return self
            ctx = worker.context()
            self._paused = paused
            self._commands, events = ctx.Queue(), ctx.Queue()
            link, self._lifeline = ctx.Pipe(duplex=False)
            self.status = Status.STARTING
            self.started_at = time.time()
            self._process = ctx.Process(
                target=worker.train, name=f"creditlab-run-{self.id}", daemon=True,
                args=(self.cfg.to_dict(), self._commands, events, paused, TORCH_THREADS, self.label,
                      link, self.save_to))
            self._process.start()
            link.close()
            self._pump = threading.Thread(target=self._receive, args=(events,),
                                          name=f"creditlab-run-{self.id}-pump", daemon=True)
            self._pump.start()
        return self

    def _send(self, kind: str, arg: Any = None) -> None:
        if self._commands is not None and self.status not in FINAL:
            self._commands.put((kind, arg))

    def pause(self) -> None:
        with self._lock:
            self._paused, self._step_target = True, None
        self._send("pause")

    def resume(self) -> None:
        with self._lock:
            self._paused, self._step_target = False, None
        self._send("resume")

    def step_interval(self, steps: int | None = None) -> None:
        """Pause, then advance one logging interval (the smallest advance the plots can show)."""
        n = steps or self.cfg.metric_interval
        with self._lock:
            base = max(self.step_count, self._step_target or 0) if self._paused else self.step_count
            self._paused, self._step_target = True, base + n
            target = self._step_target
        self._send("step", target)

    def stop(self) -> None:
        with self._lock:
            first = not self._stop_requested
            self._stop_requested = True
            started = self._process is not None
        self._send("stop")
        if first and started:
            threading.Thread(target=self._end_if_deaf, name=f"creditlab-run-{self.id}-stop",
                             daemon=True).start()

    def _end_if_deaf(self) -> None:
        """Stop is read between steps; a run inside one long step gets STOP_GRACE seconds, then
        its process is ended, so that a Stop (or a closed tab) always frees the core."""
        if self._pump is None:
            return
        self._pump.join(STOP_GRACE)
        if not self._pump.is_alive() or not self._process.is_alive():
            return
        self._ended_by_us = True
        self._process.terminate()
        self._process.join(KILL_GRACE)
        if self._process.is_alive():
            self._process.kill()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the run to end (tests and shutdown); True when it has."""
        if self._pump is None:
            return True
        self._pump.join(timeout)
        if not self._pump.is_alive():
            self._process.join(1)
        return not self._pump.is_alive()

    @property
    def alive(self) -> bool:
        return self._pump is not None and self._pump.is_alive()

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def set(self, **changes: Any) -> dict[str, Any]:
        """Change σ / lr / feedback_lr live. Validates first (ConfigError, nothing applied).
        `cfg` stays the set-up the run started with: the values a step used are in its record."""
        checked = {name: self.cfg.check_live_change(name, value) for name, value in changes.items()}
        with self._lock:
            for name, value in checked.items():
                old = next((c["new"] for c in reversed(self.changes) if c["name"] == name), getattr(self.cfg, name))
                if old != value:
                    self.changes.append({"step": self.step_count, "name": name, "old": old, "new": value})
        self._send("set", checked)
        return checked

    def show_member(self, member: int) -> None:
        """From the next record on, the run's matrices (the heatmaps) are member `member`'s."""
        if not 0 <= member < self.cfg.members():
            raise ValueError(f"member={member} is not allowed; this run has members 0 to {self.cfg.members() - 1}")
        self._send("member", int(member))

    # ------------------------------------------------------------------ events
    def _receive(self, events) -> None:
        """Move the run's events into plain state and the record buffer, until it ends."""
        while True:
            try:
                event = events.get(timeout=1.0)
            except Exception:                 # queue.Empty: is the process still there?
                if not self._process.is_alive():
                    if self._ended_by_us:
                        self.error = (f"{self.label}: stopped at step {self.step_count}; it did not "
                                      f"answer Stop within {STOP_GRACE:g} s (one step was still "
                                      "running), so its process was ended")
                        self.status = Status.STOPPED
                    elif self.status not in FINAL:
                        self.error = f"{self.label}: the run's process ended unexpectedly"
                        self.status = Status.INTERRUPTED
                    self._close_lifeline()
                    return
                continue
            kind = event[0]
            if kind == "record":
                self._note_applied(event[1])
                self.buffer.push(event[1])
                self.step_count = max(self.step_count, event[1]["step"])
            elif kind == "progress":
                self.step_count = event[1]
            elif kind == "ready":
                if event[1] is not None:
                    self.first_members = event[1]["members"]
                    self.buffer.set_first(event[1]["step"], event[1]["members"][0])
                self.ready = True
            elif kind == saving.SAVED:
                self.run_dir = event[1]
            elif kind == saving.NOT_SAVED:
                self.save_error = event[1]
            elif kind == "status":
                _, status, step, error = event
                self.step_count, self.error = step, error
                self.status = Status(status)
                if status in FINAL:
                    self._close_lifeline()
                    return

    def _close_lifeline(self) -> None:
        if self._lifeline is not None:
            self._lifeline.close()
            self._lifeline = None

    def _note_applied(self, record: dict) -> None:
        changed = False
        for name in LIVE_FIELDS:
            if name not in record:
                continue
            old = self._live_seen.get(name, record[name])
            if record[name] != old:
                changed = True
                with self._lock:
                    self.applied.append({"step": record["step"], "name": name, "old": old,
                                         "new": record[name]})
            self._live_seen[name] = record[name]
        if changed and self._auto_label:      # the label says the σ (lr, η_B) the run now uses
            self.label = run_label(RunConfig.from_dict({**self.cfg.to_dict(), **self._live_seen}))

    def __repr__(self) -> str:
        return f"RunHandle({self.id}, {self.label!r}, {self.status}, step {self.step_count})"


class SessionRuns:
    """All runs of one browser session: the comparison list, bounded, and stopped together."""

    def __init__(self, max_runs: int = 8):
        self.max_runs = max_runs
        self.runs: list[RunHandle] = []
        self._lock = threading.Lock()

    def launch(self, cfg: RunConfig, save_to: str | os.PathLike | None = None) -> tuple[RunHandle, list[RunHandle]]:
        """Stop the active run (it stays in the comparison) and start a new one, saved under the
        runs folder `save_to` unless it is None.

        Returns the new run and the runs dropped from the comparison to keep it bounded.
        """
        run = RunHandle(cfg, save_to=save_to)
        with self._lock:
            for other in self.runs:
                if other.active:
                    other.stop()
            self.runs.append(run)
            dropped = []
            while len(self.runs) > self.max_runs:
                dropped.append(self.runs.pop(0))
        for old in dropped:
            old.stop()
        run.start()
        return run, dropped

    def add(self, run: Any) -> list[Any]:
        """Add an already-finished run (e.g. loaded from disk); returns the dropped ones."""
        with self._lock:
            self.runs.append(run)
            dropped = []
            while len(self.runs) > self.max_runs:
                dropped.append(self.runs.pop(0))
        for old in dropped:
            if isinstance(old, RunHandle):
                old.stop()
        return dropped

    @property
    def current(self) -> RunHandle | None:
        with self._lock:
            for run in reversed(self.runs):
                if isinstance(run, RunHandle):
                    return run
        return None

    def stop_all(self) -> None:
        with self._lock:
            runs = list(self.runs)
        for run in runs:
            if isinstance(run, RunHandle):
                run.stop()

    def clear(self) -> list[Any]:
        self.stop_all()
        with self._lock:
            runs, self.runs = self.runs, []
        return runs
