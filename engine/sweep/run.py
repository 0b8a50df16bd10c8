"""Running a sweep: skip the trials already done, run the rest serially or on Dask, keep the
table current, and hold the sweep's lock so the same sweep never runs twice at once."""

from __future__ import annotations

import errno
import os
import socket
import stat
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from engine.errors import one_line
from engine.runs.reader import try_read_json_object
from engine.runs.writer import atomic_write_parquet
from engine.status import Status
from engine.sweep.spec import DASK_MISSING, DONE, SWEEP_FILE, SweepError, SweepSpec, TRIALS_FILE, Trial, packs
from engine.sweep.trial import sweep_tag, make_row, run_trial
from engine.sweep.pack import run_pack
from engine.sweep.store import best_table, finished_trials, mark_stopped, sweep_dir, sweep_runs, trials_frame


@dataclass
class SweepResult:
    sweep_id: str
    path: Path
    table: Any                         # pandas DataFrame of every trial done (old and new)
    total: int
    skipped: int
    ran: int
    counts: dict[str, int]
    wall_seconds: float
    interrupted: bool = False

    def best(self, metric: str = "test_accuracy", mode: str = "max"):
        return best_table(self.table, metric, mode)


class _Progress:
    """done / failed / diverged / running, on a tqdm bar (stderr) or silently."""

    def __init__(self, total: int, desc: str, show: bool, on_update: Callable | None = None):
        self.counts = {Status.FINISHED: 0, Status.FAILED: 0, Status.DIVERGED: 0}
        self.running = 0
        self.on_update = on_update
        self.bar = None
        if show:
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=desc, unit="trial", file=sys.stderr,
                            dynamic_ncols=True, leave=True)
            self._postfix()

    def _postfix(self):
        if self.bar is not None:
            self.bar.set_postfix({"done": self.counts[Status.FINISHED], "failed": self.counts[Status.FAILED],
                                  "diverged": self.counts[Status.DIVERGED], "running": self.running},
                                 refresh=False)

    def set_running(self, n: int):
        if n != self.running:
            self.running = n
            self._postfix()
            if self.bar is not None:
                self.bar.refresh()

    def add(self, row: dict):
        status = row["status"] if row["status"] in self.counts else Status.FAILED
        self.counts[status] += 1
        self._postfix()
        if self.bar is not None:
            self.bar.update(1)
        if self.on_update is not None:
            self.on_update(dict(self.counts), self.running)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:                 # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def import_dask():
    """(Client, LocalCluster, as_completed) or SweepError(DASK_MISSING)."""
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise SweepError(DASK_MISSING) from None
    return Client, LocalCluster, as_completed


def run_sweep(spec: SweepSpec, runs_root: str | os.PathLike = "runs", *,
              workers: int | None = None, scheduler: str | None = None, serial: bool = False,
              progress: bool = True, stop: threading.Event | None = None,
              on_row: Callable[[dict], None] | None = None,
              on_update: Callable[[dict, int], None] | None = None,
              trials: list[Trial] | None = None, cluster_kwargs: dict | None = None,
              rerun: bool = False, pack: bool = True) -> SweepResult:
    """Run every trial of `spec` not already done (with `rerun`, every trial, into new run
    folders: the newest done folder of a trial is the one read); return the table of all its
    trials.

    `pack`: the trials to run that differ only in consecutive seeds train as one population
    (spec.packs, pack.py), one task instead of one per seed; each is saved and tabled as if it
    had run alone. Off, every trial is its own task.

    `stop` (a threading.Event) ends the sweep early: pending trials are cancelled, running ones
    are saved as "stopped" and run again on the next call. KeyboardInterrupt does the same and
    propagates. The cluster (if we made one) is always closed.
    """
    started = time.perf_counter()
    root = Path(runs_root).resolve()
    sid = spec.sweep_id
    trials = spec.trials() if trials is None else trials
    sdir = sweep_dir(root, sid)
    sdir.mkdir(parents=True, exist_ok=True)
    lock = _hold_sweep_lock(sdir)
    try:
        return _run_locked(spec, root, sid, sdir, trials, started, workers=workers,
                           scheduler=scheduler, serial=serial, progress=progress, stop=stop,
                           on_row=on_row, on_update=on_update, cluster_kwargs=cluster_kwargs,
                           rerun=rerun, pack=pack)
    finally:
        lock.close()


def _run_locked(spec, root, sid, sdir, trials, started, *, workers, scheduler, serial, progress,
                stop, on_row, on_update, cluster_kwargs, rerun=False, pack=True) -> SweepResult:
    from engine.runs.writer import atomic_write_json
    atomic_write_json(sdir / SWEEP_FILE, {**spec.to_json(), "n_trials": len(trials),
                                          "varied": spec.varied, "trials_file": TRIALS_FILE})
    done = {} if rerun else finished_trials(root, sid, trials)
    todo = [t for t in trials if t.trial_id not in done]
    # Only the trials to run are packed: a partly done configuration packs the seeds it lacks.
    tasks = packs(todo) if pack else [[t] for t in todo]
    rows: dict[str, dict] = dict(done)
    write_lock = threading.Lock()

    def save():
        with write_lock:
            atomic_write_parquet(trials_frame(rows.values()), sdir / TRIALS_FILE)

    save()
    bar = _Progress(len(todo), sid, progress and len(todo) > 0, on_update)
    pending = {t.trial_id for t in todo}
    interrupted = False

    def accept(row: dict):
        rows[row["trial_id"]] = row
        pending.discard(row["trial_id"])
        save()
        bar.add(row)
        if on_row is not None:
            on_row(row)

    try:
        if serial:
            import torch
            before = torch.get_num_threads()
            try:
                for task in tasks:
                    if stop is not None and stop.is_set():
                        interrupted = True
                        break
                    bar.running = len(task)
                    for row in run_pack([t.to_json() for t in task], str(root), sid, threads=1):
                        accept(row)
                bar.running = 0
            finally:
                torch.set_num_threads(before)
        elif todo:
            interrupted = _run_dask(tasks, root, sid, workers, scheduler, stop, bar, accept,
                                    cluster_kwargs or {})
    except BaseException:
        mark_stopped(root, sid, pending)
        raise
    finally:
        bar.close()
    if interrupted:
        mark_stopped(root, sid, pending)
    counts = {Status.FINISHED: 0, Status.DIVERGED: 0, Status.FAILED: 0}
    for r in rows.values():
        counts[r["status"] if r["status"] in counts else Status.FAILED] += 1
    return SweepResult(sid, sdir, trials_frame(rows.values()), len(trials), len(done),
                       len(rows) - len(done), counts, time.perf_counter() - started, interrupted)


def _run_dask(tasks, root, sid, workers, scheduler, stop, bar, accept, cluster_kwargs) -> bool:
    """Submit every task (a trial, or a pack of them), take results as they complete. Returns
    True if stopped early."""
    import contextlib
    import logging

    Client, LocalCluster, as_completed = import_dask()
    with contextlib.ExitStack() as stack:
        if scheduler:
            try:
                client = stack.enter_context(Client(scheduler, timeout="10s"))
            except (OSError, TimeoutError) as exc:
                raise SweepUnavailable(f"cannot reach the Dask scheduler {scheduler}: "
                                       f"{one_line(exc)}") from None
        else:
            # No dashboard; the scheduler's small HTTP server (health routes) on a free port of
            # 127.0.0.1, so a second sweep or another Dask user never collides on :8787.
            kw = dict(n_workers=workers or default_workers(), threads_per_worker=1,
                      processes=True, dashboard_address=None, host="127.0.0.1",
                      scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                      silence_logs=logging.ERROR)
            kw.update(cluster_kwargs)
            # Dask's statistical profiler samples every worker thread's stack every 10 ms: with
            # the GIL, that slowed our Python-heavy small-network trials 1.5-2x (Nov 2026).
            # The nanny hands this config to the worker processes it spawns.
            import dask
            with dask.config.set(WORKER_CONFIG):
                cluster = stack.enter_context(LocalCluster(**kw))
            client = stack.enter_context(Client(cluster))
        futures = {_submit(client, task, root, sid): task for task in tasks}


        stack.callback(lambda: client.cancel(list(futures)) if client.status == "running" else None)
        ac = as_completed(list(futures))
        last = 0.0
        while not ac.is_empty():
            if stop is not None and stop.is_set():
                return True
            if ac.has_ready():
                for fut in ac.next_batch(block=False):
                    task = futures[fut]
                    try:
                        result = fut.result()
                        rows = result if isinstance(result, list) else [result]
                    except Exception as exc:          # the worker died, or could not unpickle
                        rows = [_lost_row(t, root, sid, exc) for t in task]
                    for row in rows:
                        accept(row)
                    fut.release()
            else:
                now = time.monotonic()
                if now - last > 1.0:
                    last = now
                    try:
                        slots = sum(client.nthreads().values())
                    except Exception:
                        slots = 0
                    waiting = [len(task) for f, task in futures.items() if not f.done()]
                    bar.set_running(sum(waiting[:slots]))      # trials in the running tasks
                time.sleep(0.05)
        bar.set_running(0)
    return False


def _submit(client, task: list[Trial], root: Path, sid: str):
    """One Dask task: a trial alone (keyed by its id, as before packing), or a pack."""
    if len(task) == 1:
        return client.submit(run_trial, task[0].to_json(), str(root), sid, 1,
                             key=f"trial-{sid}-{task[0].trial_id}", pure=False)
    return client.submit(run_pack, [t.to_json() for t in task], str(root), sid, 1,
                         key=f"pack-{sid}-{task[0].trial_id}-{len(task)}", pure=False)


def _lost_row(t: Trial, root: Path, sid: str, exc: BaseException) -> dict:
    """A trial whose task itself failed (not the training: that run_trial records)."""
    tag = sweep_tag(t.to_json(), sid)
    runs = sweep_runs(root, sid).get(t.trial_id, [])
    path = runs[-1] if runs else None
    summary = {"status": Status.FAILED, "error": f"the trial's task failed: {one_line(exc)}"}
    if runs:
        from engine.runs.layout import SUMMARY_FILE
        from engine.runs.writer import atomic_write_json
        old = try_read_json_object(path / SUMMARY_FILE) or {}
        if old.get("status") not in DONE:
            atomic_write_json(path / SUMMARY_FILE, {**old, **summary})
    return make_row(t.config, tag, summary, path)


WORKER_CONFIG = {"distributed.worker.profile.enabled": False}


class SweepUnavailable(RuntimeError):
    """The scheduler cannot be reached (exit 1, not a usage error)."""


class SweepBusy(RuntimeError):
    """The same sweep is already running: a second copy would train every trial twice."""


LOCK_FILE = "running.lock"


def _hold_sweep_lock(sdir: Path):
    """An exclusive lock on the sweep's folder while it runs, or SweepBusy. The kernel drops it
    when its process ends however it ends, so a killed sweep never leaves a stale lock."""
    import fcntl

    # open(..., "a+") itself fails on a FIFO ("not seekable"): check what it is first. O_RDWR
    # does not wait for a writer.
    fd = os.open(sdir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0), 0o644)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, f"{sdir / LOCK_FILE} is not a regular file; remove it")
    f = open(fd, "a+", encoding="utf-8")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise SweepBusy(f"sweep {sdir.name} is already running ({holder}); wait for it to finish "
                        "or stop it, then run this again to pick up what it has not done") from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()} on {socket.gethostname()}")
    f.flush()
    return f
