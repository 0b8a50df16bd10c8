"""One training run off the event loop: a Trainer in a daemon thread, feeding a RecordBuffer.

The UI never waits on training. `RunHandle` methods only set flags and return at once; the worker
thread builds the Trainer itself (the first torch optimiser in a process costs seconds, which must
not happen in a click handler), steps it, and pushes records into a bounded `RecordBuffer` that the
dashboard's periodic callback pulls from. The worker never touches a Panel, Bokeh or HoloViews
object; its outcome (finished, stopped, diverged, error) is plain state the UI reads.

Why our own loop instead of `Trainer.run()`: single-stepping a paused run and building the trainer
in the worker need control between steps, and the loop is a dozen lines over `Trainer.step()`.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

from engine.config import ConfigError, RunConfig
from engine.stream import RecordBuffer
from engine.trainer import DivergedError, Trainer

from app.state import run_label

_ids = itertools.count(1)

# Records kept per run. The buffer thins its older half once full, so a one-hour run keeps its
# whole history at decreasing resolution in bounded memory.
BUFFER_CAPACITY = 2000

ACTIVE = ("starting", "running", "paused")

# Torch's intra-op threads for dashboard runs. The dashboard's networks are small (digits MLPs), and
# several sessions, the server and other processes share the cores: with OpenMP teams spin-waiting
# for a descheduled thread, 2 threads on a busy 2-core machine ran 3–500 steps/s against ~1,900
# with 1 thread (measured Nov 2026). Set before each worker's first step; None leaves torch's choice.
TORCH_THREADS: int | None = 1


class RunHandle:
    """A run owned by one browser session. Thread-safe; every method returns immediately."""

    def __init__(self, cfg: RunConfig, label: str | None = None, capacity: int = BUFFER_CAPACITY):
        self.cfg = RunConfig.from_dict(cfg.to_dict()).validate()   # our own copy, checked
        self.id = next(_ids)
        self.label = label or run_label(self.cfg)
        self.buffer = RecordBuffer(capacity)
        self.status = "ready"       # ready, starting, running, paused, finished, stopped, diverged, error
        self.error: str | None = None
        self.step_count = 0
        self.trainer: Trainer | None = None
        self.started_at: float | None = None
        self.changes: list[dict[str, Any]] = []      # live setting changes: step, name, old, new
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._paused = False
        self._stop = False
        self._step_target: int | None = None     # a paused run advances to this step, then waits
        self._pending: dict[str, Any] = {}       # live changes made before the trainer exists
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ control
    def start(self, paused: bool = False) -> "RunHandle":
        if self._thread is not None:
            return self
        self._paused = paused
        self.status = "starting"
        self.started_at = time.time()
        self._thread = threading.Thread(target=self._work, name=f"creditlab-run-{self.id}",
                                        daemon=True)
        self._thread.start()
        return self

    def pause(self) -> None:
        with self._wake:
            self._paused = True
            self._step_target = None

    def resume(self) -> None:
        with self._wake:
            self._paused = False
            self._step_target = None
            self._wake.notify_all()

    def step_once(self, steps: int | None = None) -> None:
        """Pause, then advance one logging interval (the smallest advance the plots can show)."""
        n = steps or self.cfg.metric_interval
        with self._wake:
            base = max(self.step_count, self._step_target or 0) if self._paused else self.step_count
            self._paused = True
            self._step_target = base + n
            self._wake.notify_all()

    def stop(self) -> None:
        with self._wake:
            self._stop = True
            self._wake.notify_all()
        trainer = self.trainer
        if trainer is not None:
            trainer.stop()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker to end (tests and shutdown); True when it has."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def set(self, **changes: Any) -> dict[str, Any]:
        """Change σ / lr / feedback_lr live. Validates first (ConfigError, nothing applied)."""
        checked = {name: self.cfg.check_live_change(name, value) for name, value in changes.items()}
        with self._wake:
            for name, value in checked.items():
                old = getattr(self.cfg, name)
                if old != value:
                    self.changes.append({"step": self.step_count, "name": name, "old": old, "new": value})
                setattr(self.cfg, name, value)
            trainer = self.trainer
            if trainer is None:
                self._pending.update(checked)
        if trainer is not None:
            trainer.set(**checked)
        return checked

    # ------------------------------------------------------------------ worker
    def _work(self) -> None:
        try:
            if TORCH_THREADS is not None:
                import torch
                if torch.get_num_threads() != TORCH_THREADS:
                    torch.set_num_threads(TORCH_THREADS)
            trainer = Trainer(self.cfg)
            trainer.subscribe(self.buffer.push, matrices=True)
            with self._wake:
                if self._pending:
                    trainer.set(**self._pending)
                    self._pending = {}
                self.trainer = trainer
            steps = self.cfg.steps
            while True:
                with self._wake:
                    while (not self._stop and self._paused
                           and (self._step_target is None or self.step_count >= self._step_target)):
                        self.status = "paused"
                        self._wake.wait()
                    if self._stop:
                        self.status = "stopped"
                        return
                    if self.step_count >= steps:
                        self.status = "finished"
                        return
                    if not self._paused:
                        self.status = "running"
                trainer.step()
                self.step_count = trainer.step_count
        except DivergedError as exc:
            self.error = f"{self.label}: {exc}"
            self.status = "diverged"
        except ConfigError as exc:
            self.error = str(exc)
            self.status = "error"
        except Exception as exc:          # the server keeps serving; the page says what happened
            self.error = f"{self.label}: {type(exc).__name__}: {exc}"
            self.status = "error"

    def __repr__(self) -> str:
        return f"RunHandle({self.id}, {self.label!r}, {self.status}, step {self.step_count})"


class SessionRuns:
    """All runs of one browser session: the comparison list, bounded, and stopped together."""

    def __init__(self, max_runs: int = 8):
        self.max_runs = max_runs
        self.runs: list[RunHandle] = []
        self._lock = threading.Lock()

    def launch(self, cfg: RunConfig) -> tuple[RunHandle, list[RunHandle]]:
        """Stop the active run (it stays in the comparison) and start a new one.

        Returns the new run and the runs dropped from the comparison to keep it bounded.
        """
        run = RunHandle(cfg)
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
