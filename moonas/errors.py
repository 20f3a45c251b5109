"""User-facing errors: one line naming the problem and the fix."""

from __future__ import annotations

__all__ = ["MoonasError", "ConfigError", "UsageError", "ArgumentError", "DataError",
           "CheckpointError", "Terminated"]


class MoonasError(Exception):
    """An error the CLI prints as one line (no traceback) and exits non-zero on.

    The message names what is wrong and how to fix it.
    """

    exit_code: int = 1


class ConfigError(MoonasError):
    """A config key, type or value that cannot be used."""


class UsageError(ConfigError):
    """Command-line flags that cannot be used as given (out of range, or two that contradict
    each other): exit code 2, as argparse's own usage errors, so scripts tell them apart from
    a run that failed."""

    exit_code: int = 2


class ArgumentError(ConfigError, TypeError):
    """A Python API argument of the wrong type (also a TypeError), naming the argument."""


class DataError(MoonasError):
    """A dataset that cannot be found or read."""


class CheckpointError(MoonasError):
    """A checkpoint or weights file that is missing, corrupt or from another run. `problem`:
    what is wrong, without the fix (for a caller that mends it itself)."""

    def __init__(self, message: str, problem: str | None = None) -> None:
        super().__init__(message)
        self.problem = problem or message


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's time limit, `kill`, `timeout`) raised as an interruption, so a
    run stops as on Ctrl-C: its folder tidied or its stop recorded with the resume command."""
