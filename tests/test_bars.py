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
