"""The exceptions every front end turns into their one-line messages, and the one-line form
itself (a leaf: imports nothing)."""


class ConfigError(ValueError):
    """Bad user input. The message is one line, names the bad value and what is allowed."""


class SaveError(OSError):
    """A run's file could not be written (disk full, read-only, gone); one line naming the file.
    What was written before stays: every file is replaced atomically, so the last good metrics,
    summary and checkpoint survive the failed write."""


def one_line(text: object) -> str:
    """`text` (a message, an exception) on one line; an exception without a message is named
    by its type."""
    line = " ".join(str(text).split())
    return line or (type(text).__name__ if isinstance(text, BaseException) else line)
