"""The finished runs of a benchmark job, kept on disk while it runs, so that an interrupted job
(Ctrl-C, a kill, a crash, a machine's time limit) loses none of them: the same command with
the same `--out` reuses every (strategy, seed) run already done and runs only the rest.

A run's records are a deterministic function of the job's settings and its (strategy, seed)
(`harness.strategy_rng`), so reusing them gives the files an uninterrupted job writes (the
wall times excepted: those of the reused runs are their own). The file holds one JSON line of
the settings, then one line per finished run, each flushed to disk when the run ends; a last
line cut short by a kill (no newline) is ignored, and dropped when the next run is kept, and
so (with one warning) is any other line that is not JSON or not a whole run of the job: those
runs are simply run again. A file of other settings (another table, count or
override) is set aside, renamed `.runs.partial.<UTC time>.jsonl` beside it, with a warning
naming it, never mixed in.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from moonas.errors import ConfigError

__all__ = ["PARTIAL_NAME", "PartialRuns", "RunShape"]

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


@dataclass(frozen=True)
class RunShape:
    """What a finished run of the job holds: one record per count of its strategy (`counts`,
    by strategy), per-budget lists of `n_budgets` values, table rows below `n_rows`."""

    counts: Mapping[str, tuple[int, ...]]
    n_budgets: int
    n_rows: int


#: Record keys every run has, with what each holds ("number", "rows", "budgets": a list of one
#: number per budget, "picks": one row or -1 per budget); optional ones are checked when there.
_NEEDED = {"strategy": "str", "seed": "int", "evals": "int", "reached": "int",
           "hv_ratio": "number", "wall_s": "number", "listed": "bool", "regret": "budgets",
           "signal_regret": "budgets", "returned": "rows", "picks": "picks"}
_OPTIONAL = {"found_regret": "budgets", "observed_regret": "budgets", "mode_regret": "budgets",
             "modes": "rows"}


def _number(value: Any) -> bool:
    """A JSON number (not a bool, which Python counts as an int)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _row(value: Any, shape: RunShape | None, low: int = 0) -> bool:
    """A table row index from `low` (-1: a budget's "nothing fits" pick) up."""
    return (isinstance(value, int) and not isinstance(value, bool) and value >= low
            and (shape is None or value < shape.n_rows))


def _holds(kind: str, value: Any, shape: RunShape | None) -> bool:
    """Whether a record's value is of `kind` (see `_NEEDED`)."""
    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "number":
        return _number(value)
    if not isinstance(value, list):
        return False
    if kind == "rows":
        return all(_row(v, shape) for v in value)
    if shape is not None and len(value) != shape.n_budgets:
        return False
    if kind == "picks":
        return all(_row(v, shape, low=-1) for v in value)
    return all(_number(v) for v in value)  # budgets


def _run_problem(run: Any, shape: RunShape | None) -> str | None:
    """Why a line's JSON is not a whole finished run of the job (None when it is one)."""
    if not isinstance(run, dict) or not isinstance(run.get("strategy"), str) or not (
            isinstance(run.get("seed"), int) and not isinstance(run.get("seed"), bool)):
        return "not a run (strategy, seed, records)"
    records = run.get("records")
    if not isinstance(records, list) or not records:
        return "no records"
    for record in records:
        if not isinstance(record, dict):
            return "a record that is not an object"
        for key, kind in (*_NEEDED.items(), *_OPTIONAL.items()):
            if key not in record:
                if key in _NEEDED:
                    return f"a record without {key!r}"
            elif not _holds(kind, record[key], shape):
                return f"a record whose {key!r} is not what this job writes"
        if record["strategy"] != run["strategy"] or record["seed"] != run["seed"]:
            return "a record of another strategy or seed than its line"
    counts = None if shape is None else shape.counts.get(run["strategy"])
    if counts is not None and sorted(r["evals"] for r in records) != sorted(counts):
        return f"records at other counts than this job's ({', '.join(map(str, counts))})"
    return None


def _aside(path: Path) -> Path:
    """A free name beside `path` for setting it aside: `.runs.partial.<UTC time>.jsonl`, with
    `-2`, `-3`, ... when that exists (a set-aside file is never overwritten)."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    stem = path.name.removesuffix(".jsonl")
    for n in range(1, 10_000):
        candidate = path.with_name(f"{stem}.{stamp}{'' if n == 1 else f'-{n}'}.jsonl")
        if not candidate.exists() and not candidate.is_symlink():
            return candidate
    raise ConfigError(f"{path.parent} holds 10,000 set-aside partial files of {stamp}: remove "
                      "them")


class PartialRuns:
    """The finished runs of the job whose identity is `settings`, in `out`/PARTIAL_NAME."""

    def __init__(self, out: str | Path, settings: dict[str, Any]) -> None:
        self.path = Path(out) / PARTIAL_NAME
        self.settings = json.loads(json.dumps(settings, default=_plain))  # as read back
        self._handle = None

    def load(self, shape: RunShape | None = None) -> dict[tuple[str, int], list[dict[str, Any]]]:
        """The runs a former job with these settings finished, by (strategy, seed); empty when
        there is none. A file of other settings is set aside (renamed, with a warning); a line
        that is not a whole run of the job's `shape` is left out, with one warning, so that
        run is simply run again."""
        if self.path.exists() and not self.path.is_file():
            raise ConfigError(f"{self.path} is not a file (a folder?): moonas bench keeps the "
                              "finished runs of an interrupted job there; move it away, or "
                              "choose another --out")
        if not self.path.is_file():
            return {}
        if not self.holds_this_job():
            aside = _aside(self.path)
            self.path.rename(aside)  # kept, as said: it may be another job's only copy
            log.warning("%s holds the runs of a job with other settings (or is damaged): set "
                        "aside as %s; starting over", self.path, aside)
            return {}
        text = self.path.read_text(encoding="utf-8", errors="replace")
        lines = text.splitlines()
        done: dict[tuple[str, int], list[dict[str, Any]]] = {}
        bad: list[tuple[int, str]] = []
        for number, line in enumerate(lines[1:], start=2):
            try:
                run = json.loads(line)
            except json.JSONDecodeError:
                if number == len(lines) and not text.endswith("\n"):
                    continue  # the last line, which a kill cut short (`add` drops it)
                bad.append((number, "not JSON"))
                continue
            problem = _run_problem(run, shape)
            if problem is not None:
                bad.append((number, problem))
                continue
            done[(run["strategy"], run["seed"])] = run["records"]
        if bad:
            number, problem = bad[0]
            log.warning("%s: %d line(s) are not whole runs of this job (line %d: %s): running "
                        "those again", self.path, len(bad), number, problem)
        return done

    def holds_this_job(self) -> bool:
        """Whether the file holds runs of these settings; reads only (nothing is set aside)."""
        try:
            with self.path.open(encoding="utf-8", errors="replace") as handle:
                head = json.loads(handle.readline())
        except (OSError, json.JSONDecodeError):  # none, a folder, or a damaged head: not one
            return False
        return isinstance(head, dict) and head.get("settings") == self.settings

    def add(self, strategy: str, seed: int, records: list[dict[str, Any]]) -> None:
        """Keep one finished run; on disk (flushed and synced) when this returns."""
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            data = self.path.read_bytes() if self.path.is_file() else b""
            whole = data.rfind(b"\n") + 1
            if whole < len(data):  # the last line a kill cut short goes: no run is in it
                with self.path.open("r+b") as handle:
                    handle.truncate(whole)
            self._handle = self.path.open("a", encoding="utf-8")
            if whole == 0:  # fresh (or a settings line cut short: `load` set that file aside)
                self._write({"settings": self.settings})
        self._write({"strategy": strategy, "seed": seed, "records": records})

    def _write(self, data: dict[str, Any]) -> None:
        self._handle.write(json.dumps(data, separators=(",", ":"), default=_plain) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def count(self) -> int:
        """How many whole runs the file holds now, read from disk (a count kept in memory would
        miss a run whose line reached the disk just before a Ctrl-C)."""
        if not self.holds_this_job():
            return 0
        runs = set()
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines()[1:]:
            try:
                run = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line a kill cut short
            if isinstance(run, dict) and "strategy" in run and "seed" in run:
                runs.add((run["strategy"], run["seed"]))
        return len(runs)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def remove(self) -> None:
        """The job's files are written: the runs are no longer needed."""
        self.close()
        self.path.unlink(missing_ok=True)
