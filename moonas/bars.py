"""Progress bars on stderr (tqdm's home): a bar with its ETA that redraws at most every
`TERMINAL_INTERVAL` seconds on a terminal and every `LOG_INTERVAL` seconds otherwise, so a
run whose stderr goes to a log file writes a line per interval, not one per step."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["progress_bar", "advance", "TERMINAL_INTERVAL", "LOG_INTERVAL"]

TERMINAL_INTERVAL = 0.1
LOG_INTERVAL = 30.0


def progress_bar(total: int | None, desc: str, unit: str) -> Any:
    """A tqdm bar on stderr (None total: no ETA, a count only)."""
    from tqdm import tqdm

    interval = TERMINAL_INTERVAL if sys.stderr.isatty() else LOG_INTERVAL
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True,
                mininterval=interval)


def advance(bar: Any, done: int) -> None:
    """Move the bar to `done`; it redraws only once its interval has passed (and on close)."""
    bar.update(done - bar.n)
