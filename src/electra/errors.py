"""User-facing errors: the CLI prints their message as one line and exits non-zero, with no traceback."""


class ElectraError(Exception):
    """A problem with the user's input (file, config, checkpoint); the message says what and where."""


class ConfigError(ElectraError, ValueError):
    """An unknown or invalid configuration key or value."""
