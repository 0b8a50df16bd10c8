"""The one exception every front end turns into its one-line message (a leaf: imports nothing)."""


class ConfigError(ValueError):
    """Bad user input. The message is one line, names the bad value and what is allowed."""
