"""User-facing errors: one line naming the problem and the fix."""

from __future__ import annotations

__all__ = ["MoonasError", "ConfigError", "DataError", "CheckpointError"]


class MoonasError(Exception):
    """An error the CLI prints as one line (no traceback) and exits non-zero on.

    The message names what is wrong and how to fix it.
    """

    exit_code: int = 1


class ConfigError(MoonasError):
    """A config key, type or value that cannot be used."""


class DataError(MoonasError):
    """A dataset that cannot be found or read."""


class CheckpointError(MoonasError):
    """A checkpoint or weights file that is missing, corrupt or from another run."""
