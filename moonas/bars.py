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
    """A tqdm bar on stderr (None total: no ETA, a count only).

    `miniters=1` makes every update check the clock against `mininterval`, and only that
    decides a redraw. tqdm's default (`miniters` learnt from the rate) lets its monitor thread
    force a redraw whenever `maxinterval` (10 s) passes without one, which put lines 10-20 s
    apart in a log file instead of `LOG_INTERVAL`.
    """
    from tqdm import tqdm

    interval = TERMINAL_INTERVAL if sys.stderr.isatty() else LOG_INTERVAL
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True,
                mininterval=interval, miniters=1)


def advance(bar: Any, done: int) -> None:
    """Move the bar to `done`; it redraws only once its interval has passed (and on close)."""
    bar.update(done - bar.n)
