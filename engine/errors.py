"""The exceptions every front end turns into their one-line messages (a leaf: imports nothing)."""


class ConfigError(ValueError):
    """Bad user input. The message is one line, names the bad value and what is allowed."""


class SaveError(OSError):
    """A run's file could not be written (disk full, read-only, gone); one line naming the file.
    What was written before stays: every file is replaced atomically, so the last good metrics,
    summary and checkpoint survive the failed write."""
