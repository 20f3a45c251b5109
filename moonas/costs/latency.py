"""Latency models (ms on a named device): additive per-option tables and NAS-Bench-201 lookups."""

from __future__ import annotations

import functools
import json
import logging
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from moonas.atomic import write_json
from moonas.costs.table import CostTable, cost_index
from moonas.errors import ConfigError, DataError, MoonasError
from moonas.registry import closest
from moonas.spaces import Arch, SearchSpace

__all__ = [
    "LATENCY_FORMAT",
    "LatencyModel",
    "AdditiveLatency",
    "LookupLatency",
    "RecordedLatency",
    "LatencyCosts",
    "load_latency",
    "known_devices",
    "device_name",
    "with_latency",
    "round_ms",
    "remeasure_advice",
]

log = logging.getLogger(__name__)

#: `format` field of a latency table written by `moonas profile`.
LATENCY_FORMAT = "moonas-latency/1"

#: Settings of the network whose latencies NAS-Bench-201's csv holds (CIFAR-10 head).
_NB201_BENCH_SETTINGS = {"channels": 16, "cells_per_stage": 5, "input_size": 32,
                         "in_channels": 3, "n_classes": 10}


#: The timing conditions of a profile table (its `measured` record) that travel with its
#: figures: into an export's sidecar, and the log line of a table loaded.
_CONDITIONS = ("batch", "threads", "statistic", "repeats")


def device_name(device: str) -> str:
    """`'latency:raspi4'` or `'raspi4'` -> `'raspi4'`."""
    return device.split(":", 1)[1] if device.startswith("latency:") else device


def round_ms(value: float, digits: int = 6) -> float:
    """A latency as JSON outputs record it: `digits` significant digits (0.01182678 ->
    0.0118268), so sub-millisecond figures keep their precision as whole milliseconds do."""
    return float(f"{float(value):.{digits}g}")


def remeasure_advice(measured: Mapping[str, Any]) -> str:
    """How to time a table again more steadily, given how it was timed (its `measured`
    record): `--statistic min` unless it was already used, fewer threads when it used more
    than one."""
    steps = ["more --repeats"]
    if measured.get("statistic") != "min":
        steps.append("--statistic min")
    threads = measured.get("threads")
    if not isinstance(threads, int) or threads > 1:
        steps.append("fewer --threads")
    return f"{', '.join(steps)}, or on a quieter machine"


class LatencyModel(ABC):
    """Latency in ms of architectures of one space on one device.

    `name` is the cost name (`latency:DEVICE`); `price` maps `(n, D)` architectures to `(n,)` ms;
    `extreme` gives the fastest (or slowest) architecture of the space and its latency.
    """

    device: str
    source: str
    unit: str = "ms"

    @property
    def name(self) -> str:
        return f"latency:{self.device}"

    def price(self, archs: np.ndarray | Sequence[Sequence[int]]) -> np.ndarray:
        """Latency of architectures `(n, D)` (or one `(D,)`) -> `(n,)` float64 ms."""
        archs = np.asarray(archs, dtype=np.int64)
        if archs.ndim == 1:
            archs = archs[None, :]
        if archs.ndim != 2 or archs.shape[1] != self.n_choices:
            raise ConfigError(f"{self.name} prices architectures of {self.n_choices} choices, got "
                              f"shape {tuple(archs.shape)}")
        return self._price(archs)

    @property
    @abstractmethod
    def n_choices(self) -> int: ...

    @abstractmethod
    def _price(self, archs: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def extreme(self, cheapest: bool = True) -> tuple[float, Arch]:
        """`(ms, arch)` of the fastest (`cheapest=True`) or slowest architecture."""

    @abstractmethod
    def check_space(self, space: SearchSpace) -> None:
        """Raise ConfigError when this model does not describe `space`'s networks."""

    def relative_note(self, space: SearchSpace) -> str | None:
        """Why this model's figures are only a relative measure for `space`'s networks (they
        were measured on other settings), or None when they are these networks' own."""
        return None

    def conditions(self) -> dict[str, Any]:
        """How the figures were timed (batch, threads, statistic, repeats), as far as known."""
        return {}


@dataclass(frozen=True, eq=False)
class AdditiveLatency(LatencyModel):
    """`latency(x) = base + sum_d table[d, x_d]` (ms), measured per option by `moonas profile`.

    `table` `(D, Kmax)` holds each option's extra ms over the fastest option of its choice
    (so every entry is >= 0 up to noise and `base` is the fastest architecture's latency);
    `valid` `(D, Kmax)` marks existing options; `space` is the profiled space's settings
    (`SearchSpace.settings()`); `measured` records how (threads, repeats, machine, fit error).
    """

    device: str
    base: float
    table: np.ndarray
    valid: np.ndarray
    space: dict[str, Any]
    option_names: tuple[tuple[str, ...], ...] = ()
    choice_names: tuple[str, ...] = ()
    measured: dict[str, Any] = field(default_factory=dict)
    source: str = "<memory>"

    @property
    def n_choices(self) -> int:
        return self.table.shape[0]

    def conditions(self) -> dict[str, Any]:
        return {k: self.measured[k] for k in _CONDITIONS if k in self.measured}

    def _price(self, archs: np.ndarray) -> np.ndarray:
        d = np.arange(archs.shape[1])
        return self.base + self.table[d[None, :], archs].sum(axis=1)

    def extreme(self, cheapest: bool = True) -> tuple[float, Arch]:
        fill = np.inf if cheapest else -np.inf
        per_choice = np.where(self.valid, self.table, fill)
        pick = per_choice.argmin(axis=1) if cheapest else per_choice.argmax(axis=1)
        arch = tuple(int(k) for k in pick)
        return float(self.price(np.asarray(arch))[0]), arch

    def check_space(self, space: SearchSpace) -> None:
        mine = {k: _plain(v) for k, v in self.space.items()}
        theirs = {k: _plain(v) for k, v in space.settings().items()}
        if mine == theirs:
            return
        diffs = [f"{k}={mine.get(k)!r} (table) vs {theirs.get(k)!r}"
                 for k in sorted(set(mine) | set(theirs)) if mine.get(k) != theirs.get(k)]
        raise ConfigError(
            f"latency table {self.source} was measured for another space ({'; '.join(diffs)}): "
            f"measure this one with 'moonas profile --name {self.device} --out TABLE' and the "
            "same space settings (or --run RUN)"
        )

    def to_json(self) -> dict[str, Any]:
        choices = []
        for d in range(self.n_choices):
            names = (self.option_names[d] if self.option_names
                     else tuple(str(k) for k in range(int(self.valid[d].sum()))))
            choices.append({
                "name": self.choice_names[d] if self.choice_names else f"choice{d}",
                "options_ms": {name: round_ms(self.table[d, k], 9)
                               for k, name in enumerate(names)},
            })
        return {"format": LATENCY_FORMAT, "kind": "additive", "device": self.device, "unit": "ms",
                "space": self.space, "base_ms": round_ms(self.base, 9), "choices": choices,
                "measured": self.measured}

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str = "<memory>") -> "AdditiveLatency":
        """The table `to_json` wrote; each choice's `options_ms` is read by option name (the
        profiled space's names, from `space`), so a file re-saved with sorted keys keeps its
        figures; a table without names (`"0"`, `"1"`, ...) is read by option index.

        Choices are read in order and must carry the space's choice names (or `choiceD`, of a
        table written without names); the unit must be ms, every figure finite, and the
        fastest architecture's latency (`base_ms` plus each choice's fastest option) above 0:
        else one line, a `DataError`."""
        unit = data.get("unit", "ms")
        if unit != "ms":
            raise DataError(f"latency table {source} gives its figures in {unit!r}; moonas "
                            "reads ms only: measure it again with 'moonas profile' (or convert "
                            'base_ms and every options_ms to ms and set "unit": "ms")')
        choices = data["choices"]
        space = _table_space(data["space"], source)
        if len(choices) != space.n_choices:
            raise DataError(f"latency table {source} has {len(choices)} choices, its space "
                            f"({space.name}) {space.n_choices}: measure it again with "
                            "'moonas profile'")
        k_max = max(space.n_options)
        table = np.zeros((len(choices), k_max))
        valid = np.zeros((len(choices), k_max), dtype=bool)
        for d, choice in enumerate(choices):
            _check_choice_name(choice.get("name"), d, space, source)
            values = _options_ms(choice["options_ms"], space.choices[d].options, d, source)
            table[d, :len(values)] = values
            valid[d, :len(values)] = True
        model = cls(device=str(data["device"]), base=_ms(data["base_ms"], "base_ms", source),
                    table=table, valid=valid, space=dict(data["space"]),
                    option_names=tuple(space.choices[d].options for d in range(len(choices))),
                    choice_names=tuple(str(c["name"]) for c in choices),
                    measured=dict(data.get("measured", {})), source=source)
        fastest, arch = model.extreme(cheapest=True)
        if not fastest > 0:
            raise DataError(f"latency table {source} predicts {fastest:.4g} ms for the fastest "
                            f"architecture {list(arch)} (base_ms plus each choice's fastest "
                            "option): its timings were too noisy for an additive table; "
                            "measure it again with 'moonas profile' and "
                            f"{remeasure_advice(model.measured)}")
        return model

    def save(self, path: str | Path) -> None:
        """Write the table as JSON (atomically)."""
        write_json(path, self.to_json())


def _table_space(settings: dict[str, Any], source: str) -> SearchSpace:
    """The space a profile table was measured on, from its `space` settings: its choices name
    the options of `options_ms`."""
    from moonas.spaces import build_space

    settings = dict(settings)
    name = settings.pop("name")
    try:
        return build_space(str(name), **settings)
    except (TypeError, ValueError, MoonasError) as err:  # unknown space, setting or value
        raise DataError(f"latency table {source}: its space settings do not build a {name} "
                        f"space ({err}): measure it again with 'moonas profile'") from None


def _ms(value: Any, field: str, source: str) -> float:
    """`value` of the table's `field` as finite ms; else one line naming the field."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = None
    if isinstance(value, bool) or number is None or not math.isfinite(number):
        shown = json.dumps(value, default=str)
        raise DataError(f"latency table {source}: {field} is {shown}, not a finite number of "
                        "ms: measure it again with 'moonas profile'")
    return number


def _check_choice_name(name: Any, d: int, space: SearchSpace, source: str) -> None:
    """Choices are read by position: the table's `d`-th must be the space's `d`-th (a table
    written without names calls it `choiceD`), else its figures would price another choice."""
    own = space.choices[d].name
    if name is None or str(name) in (own, f"choice{d}"):
        return
    order = ", ".join(c.name for c in space.choices)
    raise DataError(f"latency table {source}: choice {d} is named {str(name)!r}, the space's "
                    f"choice {d} is {own!r}: list the choices in the space's order ({order}), "
                    "or measure it again with 'moonas profile'")


def _options_ms(given: Mapping[str, Any], options: Sequence[str], d: int,
                source: str) -> list[float]:
    """One choice's `options_ms` as finite ms per option index: by name (any key order), or
    by index for a table written without option names (keys "0", "1", ...)."""
    if not isinstance(given, Mapping):
        raise DataError(f"latency table {source} choice {d}: options_ms is not an object of "
                        "option name -> ms: measure it again with 'moonas profile'")
    keys = None
    if set(given) == set(options):
        keys = list(options)
    elif set(given) == {str(k) for k in range(len(options))}:
        keys = [str(k) for k in range(len(options))]
    if keys is not None:
        return [_ms(given[key], f"choice {d} options_ms[{key!r}]", source) for key in keys]
    missing = [name for name in options if name not in given]
    unknown = [name for name in given if name not in options]
    parts = ([f"lacks {', '.join(map(repr, missing))}"] if missing else []) + (
        [f"has unknown {', '.join(map(repr, unknown))}"] if unknown else [])
    raise DataError(f"latency table {source} choice {d}: options_ms {' and '.join(parts)} "
                    f"(the space's options: {', '.join(options)}): measure it again with "
                    "'moonas profile'")


@dataclass(frozen=True, eq=False)
class LookupLatency(LatencyModel):
    """Latency of every architecture of a space, looked up (NAS-Bench-201's device columns).

    `values` `(N,)` ms in mixed-radix architecture order over `n_options`.
    """

    device: str
    values: np.ndarray
    n_options: tuple[int, ...]
    space_name: str = "nb201"
    source: str = "<memory>"

    @property
    def n_choices(self) -> int:
        return len(self.n_options)

    def _price(self, archs: np.ndarray) -> np.ndarray:
        high = np.asarray(self.n_options)
        if np.any(archs < 0) or np.any(archs >= high[None, :]):
            raise ConfigError(f"architecture outside the {self.space_name} space given to "
                              f"{self.name}")
        index = np.ravel_multi_index(tuple(archs.T), self.n_options)
        return np.asarray(self.values, dtype=np.float64)[index]

    def extreme(self, cheapest: bool = True) -> tuple[float, Arch]:
        i = int(np.argmin(self.values) if cheapest else np.argmax(self.values))
        arch = tuple(int(v) for v in np.unravel_index(i, self.n_options))
        return float(self.values[i]), arch

    def check_space(self, space: SearchSpace) -> None:
        if space.name != self.space_name or space.n_options != self.n_options:
            raise ConfigError(
                f"{self.name} from {self.source} holds {self.space_name} architectures; this run's "
                f"space is {space.name!r}: measure a table with 'moonas profile' instead"
            )
        note = self.relative_note(space)
        if note is not None:
            log.warning("%s %s", self.name, note)

    def relative_note(self, space: SearchSpace) -> str | None:
        """The benchmark's figures are its own network's: relative for other settings."""
        return _nb201_note(space)


def _nb201_note(space: SearchSpace) -> str | None:
    """Why NAS-Bench-201's latencies are only relative for `space` (it differs from the
    benchmark's network), None when `space` is that network."""
    settings = space.settings()
    differs = {k: settings.get(k) for k, v in _NB201_BENCH_SETTINGS.items()
               if settings.get(k) != v}
    if not differs:
        return None
    return ("gives the latency of NAS-Bench-201's CIFAR-10 network (channels 16, 5 cells "
            "per stage, 32x32 input); this space differs ("
            + ", ".join(f"{k}={v}" for k, v in differs.items())
            + "), so read it as a relative measure")


class RecordedLatency(LatencyModel):
    """The latencies (ms) a run recorded for its candidates on the device it searched for
    (built by `moonas.deploy.pick.recorded_latency`): prices those architectures only.
    `latency` maps each architecture to its ms; `table` is the path of the latency table the
    search priced them with (gone or changed since), whose kind tells whether they are
    relative figures (`relative_note`)."""

    def __init__(self, device: str, latency: Mapping[tuple[int, ...], float], n_choices: int,
                 source: str, table: str | Path | None = None) -> None:
        self.device = device
        self.latency = dict(latency)
        self._n_choices = n_choices
        self.source = source
        self.table = table

    @property
    def n_choices(self) -> int:
        return self._n_choices

    def _price(self, archs: np.ndarray) -> np.ndarray:
        out = np.empty(len(archs))
        for i, arch in enumerate(archs):
            key = tuple(int(v) for v in arch)
            if key not in self.latency:
                raise ConfigError(
                    f"{self.name} of {list(key)} is unknown: {self.source} records the latency "
                    f"of the run's {len(self.latency)} candidates only, and this architecture is "
                    f"not among them; measure a table with 'moonas profile --name {self.device}'")
            out[i] = self.latency[key]
        return out

    def extreme(self, cheapest: bool = True) -> tuple[float, tuple[int, ...]]:
        arch = (min if cheapest else max)(self.latency, key=self.latency.__getitem__)
        return self.latency[arch], arch

    def check_space(self, space) -> None:
        """Recorded by the run on its own space: nothing to check."""

    def relative_note(self, space: SearchSpace) -> str | None:
        """As the table the search priced with says: only NAS-Bench-201's csv (the one kind
        `load_latency` reads from a .csv) times a network other than the space's own."""
        if self.table is not None and Path(self.table).suffix.lower() == ".csv":
            return _nb201_note(space)
        return None


class LatencyCosts:
    """A `CostTable` plus a non-additive latency model, with the same pricing interface
    (`names`, `index`, `price`, `cost`, `extreme`, `valid`); latency is the last column."""

    def __init__(self, table: CostTable, model: LatencyModel) -> None:
        self.costs = table
        self.model = model
        self.names = (*table.names, model.name)
        self.valid = table.valid

    def index(self, name: str) -> int:
        return cost_index(self.names, name)

    def price(self, archs: np.ndarray) -> np.ndarray:
        """`(n, D)` -> `(n, C + 1)`."""
        archs = np.asarray(archs, dtype=np.int64)
        if archs.ndim == 1:
            archs = archs[None, :]
        return np.column_stack([self.costs.price(archs), self.model.price(archs)])

    def cost(self, name: str, archs: np.ndarray) -> np.ndarray:
        if name == self.model.name:
            return self.model.price(archs)
        return self.costs.cost(name, archs)

    def extreme(self, name: str, cheapest: bool = True) -> tuple[float, Arch]:
        if name == self.model.name:
            return self.model.extreme(cheapest)
        return self.costs.extreme(name, cheapest)


def with_latency(table: CostTable, model: LatencyModel) -> CostTable | LatencyCosts:
    """`table` with the column `model.name` appended: a `CostTable` again when the model is
    additive (so every cost stays `c0 + sum_d c[d, x_d]`), else a `LatencyCosts`."""
    if model.n_choices != table.valid.shape[0]:
        raise ConfigError(f"{model.name} has {model.n_choices} choices, the space has "
                          f"{table.valid.shape[0]}")
    if isinstance(model, AdditiveLatency):
        k_max = table.table.shape[2]
        extra = np.zeros((1, model.n_choices, k_max))
        width = min(k_max, model.table.shape[1])
        extra[0, :, :width] = model.table[:, :width]
        return CostTable(names=(*table.names, model.name),
                         base=np.append(table.base, model.base),
                         table=np.concatenate([table.table, extra], axis=0), valid=table.valid)
    return LatencyCosts(table, model)


# -- loading ---------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def _nb201_table(path: str, mtime: float):
    from moonas.bench.table import load_table

    return load_table(path)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"latency table {path} is not valid JSON ({err}): measure it again with "
                        "'moonas profile'") from None
    if not isinstance(data, dict) or data.get("format") != LATENCY_FORMAT:
        raise DataError(f"{path} is not a moonas latency table (format {LATENCY_FORMAT!r}): give "
                        "the --out file of 'moonas profile' or nb201.csv")
    return data


def known_devices(path: str | Path) -> tuple[str, ...]:
    """Device names a latency source offers: a profile JSON (one), a folder of them, nb201.csv."""
    path = _existing(path)
    if path.is_dir():
        return tuple(sorted(_folder_tables(path)))
    if path.suffix.lower() == ".csv":
        return tuple(sorted(_nb201_table(str(path), path.stat().st_mtime).devices))
    return (str(_read_json(path)["device"]),)


def _folder_tables(folder: Path) -> dict[str, Path]:
    """The latency tables of a folder by device: its JSON files in moonas's latency format;
    other JSON files there (export sidecars, notes) are passed over, and one that is no JSON
    at all with a warning (it may be a damaged table). Two tables of one device are one line
    (which of them prices it would depend on the file names)."""
    tables: dict[str, Path] = {}
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            log.warning("%s is not JSON: passed over as a latency table (measure it again with "
                        "'moonas profile' if it was one)", path)
            continue
        if isinstance(data, dict) and data.get("format") == LATENCY_FORMAT:
            device = str(data.get("device"))
            if device in tables:
                raise DataError(f"{tables[device].name} and {path.name} in {folder} both hold the "
                                f"latency table of device {device!r}: keep one per device "
                                "(move the other out of the folder, or profile it under "
                                "another --name)")
            tables[device] = path
    return tables


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise DataError(f"latency table {str(path)!r} not found: measure one with 'moonas profile "
                        "--name DEVICE --out TABLE.json', or give the path of nb201.csv")
    return path


def _unknown(device: str, known: Sequence[str], path: Path) -> ConfigError:
    listing = ", ".join(known) if known else "none"
    return ConfigError(f"unknown latency device {device!r}{closest(device, tuple(known))} in "
                       f"{path}; known devices: {listing}")


def load_latency(path: str | Path, device: str | None = None,
                 space: SearchSpace | None = None) -> LatencyModel:
    """The latency model of `device` from `path`, checked against `space` when given.

    `path`: a `moonas profile` JSON (its one device; `device` may be left out), a folder of
    such files (one per device), or NAS-Bench-201's csv (`device` one of its latency columns:
    raspi4, pixel3, fpga, eyeriss, titan_rtx_1, ...). An unknown device fails with one line
    listing the known ones.
    """
    path = _existing(path)
    device = None if device is None else device_name(device)
    if path.is_dir():
        files = _folder_tables(path)
        if device is None:
            if len(files) != 1:
                raise ConfigError(f"{path} holds {len(files)} latency tables: name the device, "
                                  f"one of {', '.join(files) or 'none'}")
            device = next(iter(files))
        if device not in files:
            raise _unknown(device, tuple(files), path)
        model: LatencyModel = _load_json_table(files[device])
    elif path.suffix.lower() == ".csv":
        table = _nb201_table(str(path), path.stat().st_mtime)
        known = tuple(sorted(table.devices))
        if device is None:
            raise ConfigError(f"{path} holds several devices: name one of {', '.join(known)}")
        if device not in table.devices:
            raise _unknown(device, known, path)
        model = LookupLatency(device=device, values=np.asarray(table.latency(device)),
                              n_options=tuple(table.n_options), source=str(path))
    else:
        model = _load_json_table(path)
        if device is not None and device != model.device:
            raise _unknown(device, (model.device,), path)
    if space is not None:
        model.check_space(space)
    _log_conditions(model)
    return model


#: (source, device, conditions) already logged: a table priced for several runs (plot) is
#: described once.
_LOGGED: set[tuple[str, str, str]] = set()


def _log_conditions(model: LatencyModel) -> None:
    """One INFO line per table loaded: how its figures were timed (they hold for those
    conditions only: other threads or statistic give other latencies)."""
    conditions = model.conditions()
    key = (model.source, model.device, json.dumps(conditions, sort_keys=True, default=str))
    if not conditions or key in _LOGGED:
        return
    _LOGGED.add(key)
    said = ", ".join(f"{k} {conditions[k]}" for k in _CONDITIONS if k in conditions)
    log.info("%s from %s was timed with %s: its latencies hold for those conditions", model.name,
             model.source, said)


def _load_json_table(path: Path) -> AdditiveLatency:
    data = _read_json(path)
    try:
        return AdditiveLatency.from_json(data, source=str(path))
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise DataError(f"latency table {path} is incomplete ({type(err).__name__}: {err}): "
                        "measure it again with 'moonas profile'") from None


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value

