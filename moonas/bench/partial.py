"""The finished runs of a benchmark job, kept on disk while it runs, so that an interrupted job
(Ctrl-C, a kill, a crash, a machine's time limit) loses none of them: the same command with
the same `--out` reuses every (strategy, seed) run already done and runs only the rest.

A run's records are a deterministic function of the job's settings and its (strategy, seed)
(`harness.strategy_rng`), so reusing them gives the files an uninterrupted job writes (the
wall times excepted: those of the reused runs are their own). The file holds one JSON line of
the settings, then one line per finished run, each flushed to disk when the run ends; a line
cut short by a kill is ignored. A file of other settings (another table, count or override)
is set aside with a warning, never mixed in.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["PARTIAL_NAME", "PartialRuns"]

log = logging.getLogger(__name__)

#: The file, inside the job's --out, removed once the job's own files are written.
PARTIAL_NAME = ".runs.partial.jsonl"


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as JSON's numbers and lists."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON data")


class PartialRuns:
    """The finished runs of the job whose identity is `settings`, in `out`/PARTIAL_NAME."""

    def __init__(self, out: str | Path, settings: dict[str, Any]) -> None:
        self.path = Path(out) / PARTIAL_NAME
        self.settings = json.loads(json.dumps(settings, default=_plain))  # as read back
        self._handle = None
        self.added = 0  # runs kept by this job so far

    def load(self) -> dict[tuple[str, int], list[dict[str, Any]]]:
        """The runs a former job with these settings finished, by (strategy, seed); empty when
        there is none (a file of other settings is discarded, with a warning)."""
        if not self.path.is_file():
            return {}
        lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        try:
            head = json.loads(lines[0]) if lines else None
        except json.JSONDecodeError:
            head = None
        if not isinstance(head, dict) or head.get("settings") != self.settings:
            log.warning("%s holds the runs of a job with other settings (or is damaged): "
                        "starting over", self.path)
            self.path.unlink()
            return {}
        done: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for line in lines[1:]:
            try:
                run = json.loads(line)
                done[(str(run["strategy"]), int(run["seed"]))] = list(run["records"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue  # the line a kill cut short
        return done

    def add(self, strategy: str, seed: int, records: list[dict[str, Any]]) -> None:
        """Keep one finished run; on disk (flushed and synced) when this returns."""
        if self._handle is None:
            fresh = not self.path.is_file()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            torn = not fresh and not self.path.read_bytes().endswith(b"\n")
            self._handle = self.path.open("a", encoding="utf-8")
            if fresh:
                self._write({"settings": self.settings})
            elif torn:  # the line a kill cut short stays apart from the next one
                self._handle.write("\n")
        self._write({"strategy": strategy, "seed": seed, "records": records})
        self.added += 1

    def _write(self, data: dict[str, Any]) -> None:
        self._handle.write(json.dumps(data, separators=(",", ":"), default=_plain) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def remove(self) -> None:
        """The job's files are written: the runs are no longer needed."""
        self.close()
        self.path.unlink(missing_ok=True)
