"""`Status`: the one vocabulary of run states, for runs, sweeps, run folders and the UI."""

from __future__ import annotations

import enum


class Status(enum.StrEnum):
    """What a run (or a batch of runs) is doing. A str: it compares equal to its value, and
    JSON, Parquet and the UI see the plain word."""
    READY = "ready"                 # built, not started
    STARTING = "starting"           # its process or trainer is being made
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"           # asked to stop; finishing the current step (or trial)
    FINISHED = "finished"           # reached its step budget
    STOPPED = "stopped"             # stopped by the user before its budget
    DIVERGED = "diverged"           # the loss became NaN or infinite
    FAILED = "failed"               # an error ended it (the message says which)
    INTERRUPTED = "interrupted"     # its process died without saying how it ended (a kill)


ACTIVE = frozenset({Status.STARTING, Status.RUNNING, Status.PAUSED, Status.STOPPING})
FINAL = frozenset({Status.FINISHED, Status.STOPPED, Status.DIVERGED, Status.FAILED,
                   Status.INTERRUPTED})
