"""User-facing errors: the CLI prints their message as one line and exits non-zero, with no traceback."""


class ElectraError(Exception):
    """A problem with the user's input (file, config, checkpoint); the message says what and where."""


class ConfigError(ElectraError, ValueError):
    """An unknown or invalid configuration key or value."""


class Stopped(BaseException):  # noqa: N818  (like KeyboardInterrupt: not caught by `except Exception`)
    """A command stopped by a signal; the CLI prints the message as one line and exits with `status`."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum

    @property
    def status(self) -> int:
        return 128 + self.signum
