"""Run directories: the records a search writes (front, candidates) and reading them back."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from moonas.atomic import write_json, write_text
from moonas.config import RunConfig, load_config
from moonas.errors import MoonasError
from moonas.pareto import non_dominated
from moonas.yamlio import read_yaml

__all__ = ["Candidate", "ParetoFront", "Run", "RunFiles", "load_run", "front_mask",
           "write_candidates", "candidates_text", "write_front", "is_run_dir", "CorruptFront",
           "choice_space"]

log = logging.getLogger(__name__)


class CorruptFront(MoonasError):
    """A run's front files (pareto.json, candidates.csv) cannot be read; its checkpoint, when
    there is one, can rebuild them (`moonas search --resume`)."""

_CSV_FIELDS = ("id", "arch", "arch_str", "accuracy", "loss", "params", "macs", "latency_ms",
               "mode_of", "modes", "on_front")


@dataclass(frozen=True)
class RunFiles:
    """Paths of everything a run directory holds."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def log(self) -> Path:
        return self.root / "log.jsonl"

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoint.pt"

    @property
    def rebuildable(self) -> bool:
        """Whether the front can be rebuilt from what training left (a checkpoint, or the
        sub-runs of asng-separate)."""
        return self.checkpoint.is_file() or (self.root / "separate").is_dir()

    @property
    def candidates(self) -> Path:
        return self.root / "candidates.csv"

    @property
    def pareto_json(self) -> Path:
        return self.root / "pareto.json"

    @property
    def pareto_csv(self) -> Path:
        return self.root / "pareto.csv"

    @property
    def pareto_png(self) -> Path:
        return self.root / "pareto.png"


@dataclass(frozen=True)
class Candidate:
    """One architecture evaluated for the front (accuracy on the validation split, shared
    weights). `modes`: the indices of the distributions whose mode it is (several when their
    modes coincide, or prune to one cell), empty for none; `mode_of` is the first, else None."""

    id: int
    arch: tuple[int, ...]
    arch_str: str
    accuracy: float
    loss: float
    params: int
    macs: int
    mode_of: int | None
    on_front: bool
    latency_ms: float | None = None
    modes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        # Records written before `modes` existed name one distribution in `mode_of`.
        if not self.modes and self.mode_of is not None:
            object.__setattr__(self, "modes", (int(self.mode_of),))
        if (self.modes[0] if self.modes else None) != self.mode_of:
            raise ValueError(f"candidate {self.id}: mode_of={self.mode_of} is not the first of "
                             f"modes={list(self.modes)}")

    def cost(self, name: str) -> float:
        """The cost called `name`: `params`, `macs`, or `latency:DEVICE`, the latency recorded
        for the device the run searched with (a candidate holds one; DEVICE is not checked
        here: `Run.pick` with `device=` prices another device)."""
        if name.startswith("latency:"):
            if self.latency_ms is None:
                raise MoonasError(f"candidate {self.id} has no latency: the run searched without "
                                  "a latency table")
            return self.latency_ms
        if name not in ("params", "macs"):
            from moonas.costs.table import flops_hint

            raise MoonasError(f"unknown cost {name!r}{flops_hint(name)}: use params, macs or "
                              "latency:DEVICE")
        return float(getattr(self, name))

    def to_json(self) -> dict[str, Any]:
        out = {"id": self.id, "arch": list(self.arch), "arch_str": self.arch_str,
               "accuracy": self.accuracy, "loss": self.loss, "params": self.params,
               "macs": self.macs, "mode_of": self.mode_of, "modes": list(self.modes)}
        if self.latency_ms is not None:
            out["latency_ms"] = self.latency_ms
        return out


@dataclass(frozen=True)
class ParetoFront:
    """The non-dominated candidates of a run under (accuracy, `cost`), cheapest first, and per
    budget the id of the most accurate member within it (`picks`, None if none fits)."""

    space: str
    dataset: str
    objectives: tuple[str, ...]
    cost: str
    budgets: tuple[float, ...] | None
    coefficients: tuple[float, ...] | None
    architectures: tuple[Candidate, ...]
    picks: tuple[int | None, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "space": self.space,
            "dataset": self.dataset,
            "objectives": list(self.objectives),
            "cost": self.cost,
            "budgets": None if self.budgets is None else list(self.budgets),
            "coefficients": None if self.coefficients is None else list(self.coefficients),
            "architectures": [c.to_json() for c in self.architectures],
            "picks": list(self.picks),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ParetoFront":
        """The front pareto.json records; a record of the wrong shape (a string for a list, a
        pick per budget missing) is a ValueError saying which key and what is wrong."""
        if not isinstance(data, dict):
            raise ValueError(f"the top level must be a mapping, got {_short(data)}")
        if not isinstance(data.get("architectures"), list):
            raise ValueError(f"architectures must be a list, got "
                             f"{_short(data.get('architectures'))}")
        budgets = _numbers(data, "budgets")
        coefficients = _numbers(data, "coefficients")
        archs = tuple(
            Candidate(id=int(a["id"]), arch=tuple(int(v) for v in a["arch"]),
                      arch_str=str(a["arch_str"]), accuracy=float(a["accuracy"]),
                      loss=float(a.get("loss", "nan")),
                      params=int(a["params"]), macs=int(a["macs"]),
                      mode_of=None if a["mode_of"] is None else int(a["mode_of"]), on_front=True,
                      modes=tuple(int(k) for k in a.get("modes") or ()),
                      latency_ms=None if a.get("latency_ms") is None else float(a["latency_ms"]))
            for a in data["architectures"]
        )
        picks = tuple(data.get("picks", ()))  # records before picks existed have none
        if "picks" in data:
            _check_picks(data["picks"], budgets, coefficients, {a.id for a in archs})
        return cls(space=data["space"], dataset=data["dataset"],
                   objectives=tuple(data["objectives"]), cost=data["cost"],
                   budgets=budgets, coefficients=coefficients, architectures=archs, picks=picks)


def _short(value: Any) -> str:
    """`repr(value)`, cut to fit in a one-line message."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _numbers(data: dict[str, Any], key: str) -> tuple[float, ...] | None:
    """pareto.json's `key` (budgets, coefficients): null or a list of finite numbers."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in value):
        raise ValueError(f"{key} must be a list of numbers or null, got {_short(value)}")
    return tuple(float(v) for v in value)


def _check_picks(picks: Any, budgets: tuple[float, ...] | None,
                 coefficients: tuple[float, ...] | None, ids: set[int]) -> None:
    """pareto.json's picks: a list of front members' ids (or null: none fits), one per budget
    or coefficient."""
    if not isinstance(picks, list):
        raise ValueError(f"picks must be a list (an id or null per budget), got {_short(picks)}")
    per, name = ((budgets, "budgets") if budgets is not None else
                 (coefficients, "coefficients") if coefficients is not None else ((), "budgets"))
    if len(picks) != len(per):
        raise ValueError(f"picks has {len(picks)} entries for {len(per)} {name}")
    for k, pick in enumerate(picks):
        if pick is not None and (not isinstance(pick, int) or isinstance(pick, bool)):
            raise ValueError(f"picks[{k}]={_short(pick)} is not an id or null")
        if pick is not None and pick not in ids:
            raise ValueError(f"picks[{k}]={pick} is not the id of a front member")


@dataclass(frozen=True, repr=False)
class Run:
    """A finished run as read from its directory (`dir`: absolute, as `load_run` was given it,
    symlinks kept)."""

    dir: Path
    config: RunConfig
    front: ParetoFront
    candidates: tuple[Candidate, ...]

    def __repr__(self) -> str:
        # The config and every candidate would run to thousands of characters: a summary.
        front = self.front
        per = (f"budgets=[{', '.join(f'{b:g}' for b in front.budgets)}]"
               if front.budgets is not None else
               f"coefficients=[{', '.join(f'{c:g}' for c in front.coefficients)}]"
               if front.coefficients is not None else "budgets=None")
        return (f"Run(dir={str(self.dir)!r}, strategy={self.config.search.strategy!r}, "
                f"cost={front.cost!r}, {per}, candidates={len(self.candidates)}, "
                f"front={len(front.architectures)})")

    def pick(self, max_params: float | None = None, max_macs: float | None = None,
             max_latency_ms: float | None = None, device: str | None = None,
             min_accuracy: float | None = None, prefer: str = "accuracy", *,
             latency_table: str | Path | None = None):
        """A `Pick`: the most accurate candidate meeting every limit, or with
        `prefer="knee"` the knee of the feasible front (see `moonas.deploy.pick.pick`)."""
        from moonas.deploy.pick import pick

        return pick(self, max_params=max_params, max_macs=max_macs,
                    max_latency_ms=max_latency_ms, device=device, min_accuracy=min_accuracy,
                    prefer=prefer, latency_table=latency_table)


def front_mask(candidates: Sequence[Candidate], cost: np.ndarray) -> np.ndarray:
    """Boolean mask `(n,)` of the front of `candidates` under accuracy and `cost` `(n,)`: the
    non-dominated ones, one per tie in both, kept as the search's own front keeps it
    (`moonas.search.front`): a mode first, then the fewest MACs, then params, then the lowest id
    (cells with identical objectives, often one function, would crowd the front).
    """
    accuracy = np.array([c.accuracy for c in candidates], dtype=np.float64)
    cost = np.asarray(cost, dtype=np.float64).reshape(len(candidates))
    kept: dict[tuple[float, float], int] = {}
    for i in np.flatnonzero(non_dominated(np.column_stack([-accuracy, cost]))):
        key = (float(accuracy[i]), float(cost[i]))
        j = kept.get(key)
        if j is None or _front_preference(candidates[i]) < _front_preference(candidates[j]):
            kept[key] = int(i)
    mask = np.zeros(len(candidates), dtype=bool)
    mask[list(kept.values())] = True
    return mask


def _front_preference(c: Candidate) -> tuple:
    return (c.mode_of is None, c.macs, c.params, c.id)


def is_run_dir(path: Path) -> bool:
    files = RunFiles(path)
    return files.config.is_file() or files.checkpoint.is_file()


def write_candidates(path: Path, candidates: Sequence[Candidate]) -> str:
    """Write `candidates` as CSV; returns the sha256 of the bytes written."""
    text = candidates_text(candidates)
    write_text(path, text)
    return hashlib.sha256(text.encode()).hexdigest()


def candidates_text(candidates: Sequence[Candidate]) -> str:
    """The CSV text `write_candidates` writes."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for c in candidates:
        row = asdict(c)
        row["arch"] = json.dumps(list(c.arch))
        row["accuracy"] = f"{c.accuracy:.6f}"
        row["loss"] = f"{c.loss:.6f}"
        row["mode_of"] = "" if c.mode_of is None else c.mode_of
        row["modes"] = " ".join(map(str, c.modes))
        row["latency_ms"] = "" if c.latency_ms is None else f"{c.latency_ms:.6g}"
        row["on_front"] = int(c.on_front)
        writer.writerow(row)
    return buffer.getvalue()


#: Fields of candidates.csv that records written before them lack.
_CSV_OPTIONAL = ("latency_ms", "modes")


def read_candidates(path: Path) -> tuple[Candidate, ...]:
    """The candidates of a candidates.csv; a damaged file (cut short, a field that does not
    parse) is a ValueError naming the file, the line and what is wrong with it."""
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        try:
            if reader.fieldnames is None:  # empty: pareto.json's record of it tells
                return ()
            missing = [f for f in _CSV_FIELDS
                       if f not in reader.fieldnames and f not in _CSV_OPTIONAL]
            if missing:
                raise ValueError(f"{path} line 1 (the header) lacks the column"
                                 f"{'s' * (len(missing) > 1)} {', '.join(missing)}")
            out = []
            for row in reader:
                try:
                    out.append(_candidate_row(row, len(reader.fieldnames)))
                except ValueError as err:
                    raise ValueError(f"{path} line {reader.line_num} {err}") from None
        except csv.Error as err:
            raise ValueError(f"{path} line {reader.line_num} is not CSV ({err})") from None
    return tuple(out)


def _candidate_row(r: dict[str | None, Any], n_fields: int) -> Candidate:
    """One row of candidates.csv (a DictReader's), or a ValueError saying what is wrong."""
    if None in r:
        raise ValueError(f"has {n_fields + len(r[None])} fields, the header names {n_fields}")
    given = [v for v in r.values() if v is not None]
    if len(given) < n_fields:
        raise ValueError(f"is cut short ({len(given)} of {n_fields} fields)")

    def number(key: str, kind: type = float) -> Any:
        try:
            return kind(r[key])
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise ValueError(f"{key} {r[key]!r} is not {what}") from None

    try:
        arch = json.loads(r["arch"])
    except ValueError:
        arch = None
    if not isinstance(arch, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in arch):
        raise ValueError(f"arch {r['arch']!r} is not a list of integers")
    modes = (r.get("modes") or "").split()
    if not all(k.isdigit() for k in modes):
        raise ValueError(f"modes {r['modes']!r} is not distribution indices")
    try:
        return Candidate(id=number("id", int), arch=tuple(arch), arch_str=r["arch_str"],
                         accuracy=number("accuracy"), loss=number("loss"),
                         params=number("params", int), macs=number("macs", int),
                         mode_of=number("mode_of", int) if r["mode_of"] else None,
                         modes=tuple(int(k) for k in modes), on_front=r["on_front"] == "1",
                         latency_ms=number("latency_ms") if r.get("latency_ms") else None)
    except ValueError as err:
        if str(err).startswith("candidate "):  # Candidate's own check: mode_of vs modes
            raise ValueError(f"has {str(err).split(': ', 1)[1]}") from None
        raise


def write_front(files: RunFiles, front: ParetoFront, candidates_sha256: str | None = None,
                n_candidates: int | None = None) -> None:
    """pareto.csv, then pareto.json (last: it marks the run complete), which records the
    count and sha256 of candidates.csv when given, so a damaged or cut one is noticed."""
    write_candidates(files.pareto_csv, front.architectures)
    data = front.to_json()
    if candidates_sha256 is not None:
        data["candidates_csv"] = {"count": n_candidates, "sha256": candidates_sha256}
    write_json(files.pareto_json, data)


def load_run(path: str | Path) -> Run:
    """Read a finished run: its resolved config, front and candidates."""
    from moonas.config import api_path

    # Absolute, so the run's files are found after a chdir; not resolved, so a symlink the
    # caller named stays in the paths messages show.
    files = RunFiles(api_path(path, "path", "load_run").absolute())
    if not files.root.is_dir():
        raise MoonasError(f"{files.root} is not a directory: give a run directory of moonas search")
    if not files.config.is_file():
        raise MoonasError(f"{files.root} is not a moonas run (no config.yaml): give the --out "
                          "directory of a moonas search")
    if not files.pareto_json.is_file():
        from moonas.lock import holder

        owner = holder(files.root)
        if owner is not None:
            raise MoonasError(f"run {files.root} is still running (process {owner.get('pid')}, "
                              f"since {owner.get('since', '?')}): its front comes when it ends; "
                              "'moonas plot RUN --kind curves' draws its progress meanwhile")
        raise MoonasError(f"run {files.root} has no front yet (pareto.json): finish it with "
                          f"'moonas search --resume {files.root}'")
    rebuild = (f"rebuild it from the checkpoint with 'moonas search --resume {files.root}'"
               if files.rebuildable else "run the search again with --force")
    try:
        data = json.loads(files.pareto_json.read_text())
        front = ParetoFront.from_json(data)
    except KeyError as err:
        raise CorruptFront(f"{files.pareto_json} is corrupt (no {err} recorded): {rebuild}"
                           ) from None
    except (TypeError, ValueError, UnicodeDecodeError) as err:  # JSONDecodeError included
        raise CorruptFront(f"{files.pareto_json} is corrupt "
                           f"({str(err).splitlines()[0][:120]}): {rebuild}") from None
    try:
        candidates = read_candidates(files.candidates) if files.candidates.is_file() else ()
    except UnicodeDecodeError as err:
        raise CorruptFront(f"{files.candidates} is not text (byte {err.start}): {rebuild}"
                           ) from None
    except ValueError as err:  # names the file and line
        raise CorruptFront(f"{err}: {rebuild}") from None
    if not files.candidates.is_file():
        log.warning("run %s has no candidates.csv: picks choose among the front only; %s",
                    files.root, rebuild)
    if not read_yaml(files.config):  # not "a config that sets no keys": the run's record
        raise MoonasError(f"{files.config} is empty: it records the run's settings; restore it "
                          "from a copy of the run (its checkpoint.pt keeps the config the run "
                          "was written with, under the key 'config')")
    config = load_config(files.config)
    _check_archs(config, ((files.pareto_json, front.architectures),
                          (files.candidates, candidates)), rebuild)
    if files.candidates.is_file():
        _check_candidates_digest(files, data.get("candidates_csv"), len(candidates), rebuild)
    return Run(files.root, config, front, candidates)


def _check_candidates_digest(files: RunFiles, recorded: Any, count: int, rebuild: str) -> None:
    """`CorruptFront` when candidates.csv is not the file pareto.json recorded (cut short by a
    damaged disk, emptied, edited); runs written before the record was added pass."""
    if not isinstance(recorded, dict) or not isinstance(recorded.get("sha256"), str):
        return
    if hashlib.sha256(files.candidates.read_bytes()).hexdigest() != recorded["sha256"]:
        counts = (f"{count} candidates, pareto.json recorded {recorded.get('count')}"
                  if count != recorded.get("count") else "its bytes differ")
        raise CorruptFront(f"{files.candidates} is not the file the search wrote ({counts}): "
                           f"{rebuild}")


def _check_archs(config: RunConfig, sources: Sequence[tuple[Path, Sequence[Candidate]]],
                 rebuild: str) -> None:
    """One line (`CorruptFront`) naming the file and id of the first candidate whose
    architecture is not one of the run's space (an option out of range, too few choices)."""
    from moonas.spaces import ArchError

    space = choice_space(config)
    if space is None:
        return
    for path, candidates in sources:
        for c in candidates:
            try:
                space.validate(c.arch)
            except ArchError as err:
                raise CorruptFront(f"{path} is corrupt: id {c.id} has architecture "
                                   f"{list(c.arch)}, which is not one of the run's {space.name} "
                                   f"space ({err}): {rebuild}") from None


def choice_space(config: RunConfig):
    """The run's space, to check architectures against or name its choices: its choices do not depend on the
    data's shape, so where that is known only after loading the data (imagefolder) the space's
    defaults stand in for it. None where the config builds no space at all."""
    from moonas.pricing import static_space

    try:
        return static_space(config)
    except MoonasError:
        pass
    unset = {key: config.space.get(key) is None
             for key in ("input_size", "in_channels", "n_classes")}
    try:  # None keeps a setting's own value; the defaults fill the unset ones
        return config.space.build(*(default if unset[key] else None for key, default in
                                    (("input_size", 32), ("in_channels", 3),
                                     ("n_classes", 10))))
    except MoonasError:
        return None
