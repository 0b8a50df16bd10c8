"""A dashboard run's folder, written by the run's own process as `creditlab train` writes its own.

The server's threads never touch the disk for it: the run's process writes config.json at once,
metrics.parquet and summary.json every FLUSH_SECONDS (longer once a long run's rewrite takes
longer) and when it pauses, checkpoint.pt every minute and at the end (engine/runs/writer.py).
So the folder is an ordinary run folder: listed by `creditlab runs`, loaded in the dashboard's
saved runs, continued by `creditlab train --resume`.
Live changes of σ and the learning rates are in it as the CLI's are: every row carries the
values its step used, and the checkpoint the values in force.

A write that fails (a full disk, a read-only folder) does not stop the run, unlike the CLI's:
the page already shows every record, so the run trains on unsaved and the page is told once why.
"""

from __future__ import annotations

from typing import Callable

from engine.errors import SaveError, one_line
from engine.status import Status

FLUSH_SECONDS = 2.0        # as the CLI's: a crash loses at most this much of the curves ...
FLUSH_SHARE = 0.05         # ... until rewriting the metrics would take more than this share of the run

# What the saver tells the run's handle (engine/host/runner.py), as ("saved", folder) once the
# folder exists, or ("not_saved", why) once, at the first write that fails.
SAVED, NOT_SAVED = "saved", "not_saved"


class RunSaver:
    """Writes one trainer's run under `root`; `tell(kind, text)` hears where, or why not."""

    def __init__(self, root: str, trainer, tell: Callable[[str, str], None]):
        from engine.runs.writer import RunWriter

        self.tell = tell
        self.writer = None
        self._said = False
        try:
            self.writer = RunWriter(root, trainer, flush_interval=FLUSH_SECONDS, flush_share=FLUSH_SHARE,
                                    on_error=self._failed)
        except Exception as exc:            # noqa: BLE001  no folder (root read-only, full, a file): train on
            self._failed(exc)
            return
        tell(SAVED, str(self.writer.path))

    def _failed(self, exc: BaseException) -> None:
        if self._said:
            return
        self._said = True
        if isinstance(exc, SaveError) or not isinstance(exc, OSError):
            why = one_line(exc)
        else:
            why = f"cannot write {exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else one_line(exc)
        self.tell(NOT_SAVED, why)

    def flush(self) -> None:
        """Write what is not yet written (a paused run's folder then holds every record drawn)."""
        if self.writer is not None and self.writer.broken is None:
            self.writer.flush()

    def close(self, status: Status, error: BaseException | str | None = None) -> None:
        """The final metrics, summary (with `status` and `error`) and checkpoint. Never raises:
        the run has ended either way, and its final status must still reach the page."""
        if self.writer is None:
            return
        try:
            self.writer.close(status, error)
        except Exception as exc:            # noqa: BLE001  e.g. a failed run's final evaluation
            self._failed(exc)
            return
        if self.writer.broken is not None:
            self._failed(self.writer.broken)
