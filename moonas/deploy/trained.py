"""What `moonas train` leaves of a retraining in `RUN/trained/ID/`, read without torch: the
files' paths, its `metrics.json` record (damaged or another architecture's: None with one
warning per file) and the command that repeats or mends it; and which files of a run an
output (`export --out`, `plot --out`) must never overwrite (`run_file`)."""

from __future__ import annotations

import json
import logging
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal, Sequence

from moonas.errors import CheckpointError

__all__ = ["TRAINED_FORMAT", "TrainedFiles", "DamagedMetrics", "read_trained_metrics",
           "train_command", "run_file"]

log = logging.getLogger(__name__)

#: `format` of `trained/ID/weights.pt`.
TRAINED_FORMAT = "moonas-trained/1"


@dataclass(frozen=True)
class TrainedFiles:
    """What `moonas train RUN --id ID` keeps in `RUN/trained/ID/`: `weights.pt` (the final state
    dict), `metrics.json` (accuracies, recipe; written last: it marks the training complete),
    `checkpoint.pt` (per-epoch state for resuming) and `job.json` (the settings being run, and
    the sessions that ran them: see `moonas.deploy.train`)."""

    root: Path

    @classmethod
    def of(cls, run_dir: str | Path, cid: int) -> "TrainedFiles":
        return cls(Path(run_dir) / "trained" / str(int(cid)))

    @property
    def weights(self) -> Path:
        return self.root / "weights.pt"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoint.pt"

    @property
    def job(self) -> Path:
        return self.root / "job.json"

    @property
    def complete(self) -> bool:
        return self.weights.is_file() and self.metrics.is_file()


class DamagedMetrics(CheckpointError):
    """A retraining's `metrics.json` that is there but holds no record (not JSON, not a JSON
    object, unreadable): a disk fault or a torn copy, as `moonas train` replaces it whole.
    `why` says what is wrong with it; the message names the command that writes it again."""

    def __init__(self, path: Path, why: str, fix: str) -> None:
        super().__init__(f"{path} is damaged ({why}): {fix}")
        self.path, self.why, self.fix = path, why, fix


def _read_record(files: TrainedFiles) -> dict | None:
    """The one reader of `trained/ID/metrics.json`: its record, None when there is none, or
    `DamagedMetrics` when it is there but unreadable."""
    try:
        text = files.metrics.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        why = err.strerror or str(err)
    else:
        try:
            data = json.loads(text)
        except ValueError as err:  # JSONDecodeError and UnicodeDecodeError: torn or garbled
            why = f"not JSON: {str(err).splitlines()[0][:80]}"
        else:
            if isinstance(data, dict):
                return data
            why = f"a JSON {type(data).__name__}, not the record of a training"
    run_dir, cid = files.root.parent.parent, int(files.root.name)
    command = train_command(run_dir, cid, files.job)
    fix = (f"run '{command}' to write it again from the training's last checkpoint (no epoch "
           "is trained again)" if files.checkpoint.is_file() else
           f"run '{command}' to train id {cid} again")
    raise DamagedMetrics(files.metrics, why, fix)


#: The files `_warn_once` has warned about, as (path, mtime, size): one warning per damaged
#: file and process, not one per pick of `pick --budgets-file` or per plotted run.
_WARNED: set[tuple[str, int, int]] = set()


def _warn_once(path: Path, message: str, *args) -> None:
    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    except OSError:
        key = (str(path), 0, -1)
    if key not in _WARNED:
        _WARNED.add(key)
        log.warning(message, *args)


def read_trained_metrics(run_dir: str | Path, cid: int, arch: Sequence[int] | None = None, *,
                         damaged: Literal["warn", "raise"] = "warn") -> dict | None:
    """`trained/ID/metrics.json` of a completed `moonas train`, or None; with `arch` (the
    candidate's), also None, with a warning, when it is another architecture's (a training
    left from before the run was searched again). A damaged file (see `DamagedMetrics`) is
    None with a warning naming the command that mends it (once per file), or, with
    `damaged="raise"`, raises `DamagedMetrics`."""
    files = TrainedFiles.of(run_dir, cid)
    if not files.complete:
        return None
    try:
        data = _read_record(files)
    except DamagedMetrics as err:
        if damaged == "raise":
            raise
        # Only this retraining's numbers are lost: the rest of a pick or plot still stands.
        _warn_once(files.metrics, "%s is damaged (%s): id %d counts as not retrained; %s",
                   err.path, err.why, cid, err.fix)
        return None
    if data is None:  # removed since `complete` looked
        return None
    if arch is not None and _other_arch(data, arch):
        _warn_once(files.metrics, "%s is the retraining of architecture %s, not id %d's %s (the "
                   "run was searched again since): ignored; retrain it with 'moonas train %s "
                   "--id %d --restart'", files.metrics, data.get("arch"), cid, list(arch),
                   shlex.quote(str(run_dir)), cid)
        return None
    return data


def _other_arch(metrics: dict, arch: Sequence[int]) -> bool:
    """Whether `metrics` (of `metrics.json`) name an architecture other than `arch` (one
    that names none cannot tell: its weights' own record is checked when they load)."""
    recorded = metrics.get("arch")
    if not isinstance(recorded, list):
        return False
    return recorded != [int(v) for v in arch]


def train_command(run_dir: str | Path, cid: int, job: Path | None = None) -> str:
    """`moonas train RUN --id ID` with the settings of `job` (a `job.json`) that differ from
    the defaults, so that it repeats that training exactly when run as written."""
    from moonas.retrain import TrainRecipe

    words = ["moonas", "train", str(run_dir), "--id", str(int(cid))]
    try:
        recorded = json.loads(job.read_text()) if job is not None else {}
    except (OSError, ValueError):
        recorded = {}
    recorded = recorded if isinstance(recorded, dict) else {}
    recipe = recorded.get("recipe") if isinstance(recorded.get("recipe"), dict) else {}
    default = TrainRecipe()
    if recipe.get("epochs") not in (None, default.epochs):
        words += ["--epochs", str(recipe["epochs"])]
    if recipe.get("lr") not in (None, default.lr):
        words += ["--lr", str(recipe["lr"])]
    if recorded.get("init") not in (None, "scratch"):
        words += ["--init", str(recorded["init"])]
    return " ".join(shlex.quote(w) for w in words)


def run_file(run_dir: str | Path, path: str | Path, extra: Iterable[str | Path] = ()
             ) -> Path | None:
    """`path` resolved when it is one of the files run `run_dir` needs (config.yaml,
    manifest.json, log.jsonl, checkpoint.pt, candidates.csv, pareto.json/.csv/.png, its lock,
    the `extra` files such as its latency table, or anything below trained/ and separate/),
    else None: an output written there would destroy the run's own record."""
    from moonas.lock import LOCK
    from moonas.run import RunFiles

    files = RunFiles(Path(run_dir))
    kept = {p.resolve() for p in (files.config, files.manifest, files.log, files.checkpoint,
                                  files.candidates, files.pareto_json, files.pareto_csv,
                                  files.pareto_png, files.root / LOCK, *map(Path, extra))}
    # Retrained networks, and asng-separate's sub-runs: every file below them.
    folders = [(files.root / name).resolve() for name in ("trained", "separate")]
    target = Path(path).resolve()
    if target in kept or any(target.is_relative_to(folder) for folder in folders):
        return target
    return None
