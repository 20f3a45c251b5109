"""moonas.bars: progress bars that do not flood a log file."""

from __future__ import annotations

import io
import sys

from moonas import bars


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def _draws(monkeypatch, tty: bool, interval: float) -> tuple[int, str]:
    stream = _Stream(tty)
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setattr(bars, "TERMINAL_INTERVAL", interval)
    bar = bars.progress_bar(500, "search train", "step")
    for done in range(1, 501):
        bars.advance(bar, done)
    bar.close()
    text = stream.getvalue()
    return text.count("\r") + text.count("\n"), text


def test_a_log_file_gets_the_first_and_last_state_not_a_line_per_step(monkeypatch):
    draws, text = _draws(monkeypatch, tty=False, interval=0.0)
    assert draws <= 3
    assert "500/500" in text


def test_a_terminal_redraws_as_often_as_its_interval_allows(monkeypatch):
    draws, text = _draws(monkeypatch, tty=True, interval=0.0)
    assert draws > 100  # no throttling left: a redraw per step
    assert "500/500" in text


def test_a_log_file_is_redrawn_at_most_every_log_interval(monkeypatch):
    # tqdm's learnt `miniters` lets its monitor thread redraw whenever `maxinterval` (10 s)
    # passes without a redraw: lines came 10-20 s apart. With miniters=1 it never fires.
    stream = _Stream(tty=False)
    monkeypatch.setattr(sys, "stderr", stream)
    bar = bars.progress_bar(400, "search train", "step")
    assert bar.mininterval == bars.LOG_INTERVAL == 30.0
    assert bar.miniters == 1 and not bar.dynamic_miniters
    clock = [bar.start_t]
    bar._time = lambda: clock[0]
    drawn = [0.0]  # tqdm draws the empty bar when it is made
    display = bar.display
    bar.display = lambda *a, **k: drawn.append(clock[0] - bar.start_t) or display(*a, **k)
    for done in range(1, 401):  # a step every 0.7 s
        clock[0] += 0.7
        bars.advance(bar, done)
        # The monitor thread's condition for a forced redraw (tqdm._monitor.TMonitor.run).
        assert not (bar.miniters > 1 and clock[0] - bar.last_print_t >= bar.maxinterval)
    bar.close()
    steps = drawn[:-1]  # the last draw is close()'s
    gaps = [b - a for a, b in zip(steps, steps[1:])]
    assert len(steps) == 1 + 9 and all(30 <= gap < 31 for gap in gaps)
    assert "400/400" in stream.getvalue()


def test_a_terminal_bar_checks_the_clock_at_every_step_too(monkeypatch):
    monkeypatch.setattr(sys, "stderr", _Stream(tty=True))
    bar = bars.progress_bar(10, "x", "step")
    try:
        assert bar.mininterval == bars.TERMINAL_INTERVAL and bar.miniters == 1
    finally:
        bar.close()
