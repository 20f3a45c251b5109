"""The NAS-Bench-201 table (all 15,625 cells) as a frozen record of numpy arrays in arch order."""

from __future__ import annotations

import csv
import math
import re
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from moonas.costs.table import flops_hint
from moonas.errors import ConfigError, DataError
from moonas.registry import closest
from moonas.spaces import ArchError, NB201Space

__all__ = [
    "DATASETS",
    "COST_KINDS",
    "NB201Table",
    "BenchProblem",
    "load_table",
    "load_problem",
    "arch_index",
]

#: Per dataset: the search signal (12-epoch validation accuracy, %) and the score (200-epoch
#: test accuracy, %). CIFAR-10's 12-epoch validation split is the benchmark's `c10valid`.
DATASETS: Mapping[str, tuple[str, str]] = types.MappingProxyType({
    "c10": ("c10valid_val_12ep", "c10_test_200ep"),
    "c100": ("c100_val_12ep", "c100_test_200ep"),
    "in16": ("in16_val_12ep", "in16_test_200ep"),
})

#: Costs by name; latency takes a device (`latency:raspi4`).
COST_KINDS = ("params", "macs", "latency:DEVICE")

_COST_COLUMNS = {"params": "params_MB_{ds}", "macs": "flops_M_{ds}"}
_COST_UNITS = {"params": "M params", "macs": "M MACs", "latency": "ms"}
_LATENCY = (re.compile(r"^hwnb_c10_(.+)_latency_ms$"), re.compile(r"^help_(.+)_latency_ms$"))


def arch_index(archs: np.ndarray, n_options: tuple[int, ...]) -> np.ndarray:
    """Mixed-radix index of each architecture, (n,) int64 from archs (n, D): the first choice is
    the most significant digit, so index order is the lexicographic order of the archs."""
    archs = np.asarray(archs, dtype=np.int64)
    if archs.ndim == 1:
        archs = archs[None, :]
    return np.ravel_multi_index(tuple(archs.T), n_options).astype(np.int64)


@dataclass(frozen=True)
class NB201Table:
    """Every cell of NAS-Bench-201; row `i` is the architecture with mixed-radix index `i`.

    `archs` (N, D) int64 option indices; `arch_strs` the benchmark's strings; `columns` every
    numeric column of the csv by its name, each (N,) float64, finite and read-only; `devices`
    maps a latency device name (`raspi4`, `titan_rtx_1`, ...) to its column; `unparsed`: the
    columns besides `arch_str` holding a value that is not a finite number (`abc`, `nan`,
    `inf`) or is impossible (a negative cost or latency, an accuracy outside [0, 100]), each
    with the first such cell (csv row, value), so that a run needing one names the cell.
    """

    path: str
    n_options: tuple[int, ...]
    archs: np.ndarray
    arch_strs: tuple[str, ...]
    official_index: np.ndarray
    columns: Mapping[str, np.ndarray]
    devices: Mapping[str, str]
    unparsed: Mapping[str, tuple[int, str]] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.arch_strs)

    def index(self, archs: np.ndarray) -> np.ndarray:
        """Rows of `archs` (n, D), (n,) int64."""
        return arch_index(archs, self.n_options)

    def column(self, name: str, needed_for: str) -> np.ndarray:
        """A numeric column, or a DataError naming it (or its first cell that is not a number)
        and what needs it."""
        if name in self.unparsed:
            row, value = self.unparsed[name]
            if not _is_float(value):
                what = "is not a number"
            elif not math.isfinite(float(value)):
                what = "is not a finite number"
            elif _kind(name) == "accuracy":
                what = "is outside [0, 100] (an accuracy in %)"
            else:
                what = "is negative (a cost or latency cannot be)"
            raise DataError(f"{self.path} row {row}, column {name!r}: {value!r} {what} "
                            f"(needed for {needed_for}): use the full nb201.csv of "
                            "shared/data/nb201 (see its README)")
        if name not in self.columns:
            raise DataError(
                f"{self.path} lacks column {name!r} needed for {needed_for}: use the full "
                "nb201.csv of shared/data/nb201 (see its README)"
            )
        return self.columns[name]

    def latency(self, device: str) -> np.ndarray:
        """Latency in ms on a named device, (N,)."""
        if device not in self.devices:
            valid = ", ".join(sorted(self.devices)) or "none in this table"
            raise ConfigError(
                f"unknown latency device {device!r}{closest(device, tuple(self.devices))}; "
                f"valid: {valid}"
            )
        return self.column(self.devices[device], f"--cost latency:{device}")

    def cost(self, cost: str, dataset: str = "c10") -> np.ndarray:
        """`params` (millions), `macs` (millions) for a dataset's head, or `latency:DEVICE` (ms)."""
        _check_dataset(dataset)
        if cost.startswith("latency:"):
            return self.latency(cost.split(":", 1)[1])
        if cost not in _COST_COLUMNS:
            devices = ", ".join(sorted(self.devices))
            hint = flops_hint(cost) or closest(cost, tuple(_COST_COLUMNS))
            raise ConfigError(
                f"unknown cost {cost!r}{hint}; valid: params, macs, latency:DEVICE with DEVICE "
                f"one of {devices}"
            )
        return self.column(_COST_COLUMNS[cost].format(ds=dataset), f"--cost {cost}")

    def problem(self, dataset: str, cost: str) -> BenchProblem:
        """The arrays one benchmark run needs: search signal, score and cost of every row."""
        _check_dataset(dataset)
        signal_name, score_name = DATASETS[dataset]
        costs = self.cost(cost, dataset)
        kind = cost.split(":", 1)[0]
        return BenchProblem(
            dataset=dataset,
            cost_name=cost,
            cost_unit=_COST_UNITS[kind],
            n_options=self.n_options,
            signal=self.column(signal_name, f"--dataset {dataset}"),
            score=self.column(score_name, f"--dataset {dataset}"),
            cost=costs,
            arch_strs=self.arch_strs,
            cost_column=(self.devices[cost.split(":", 1)[1]] if kind == "latency"
                         else _COST_COLUMNS[cost].format(ds=dataset)),
        )


@dataclass(frozen=True)
class BenchProblem:
    """One benchmark's view of the table, rows in mixed-radix arch order, each array (N,).

    `signal`: 12-epoch validation accuracy (%), what a search sees; `score`: 200-epoch test
    accuracy (%), what its result is judged by; `cost`: the searched cost; `cost_column`: the
    table's column it comes from.
    """

    dataset: str
    cost_name: str
    cost_unit: str
    n_options: tuple[int, ...]
    signal: np.ndarray
    score: np.ndarray
    cost: np.ndarray
    arch_strs: tuple[str, ...]
    cost_column: str = ""

    @property
    def size(self) -> int:
        return len(self.arch_strs)

    def index(self, archs: np.ndarray) -> np.ndarray:
        """Rows of `archs` (n, D), (n,) int64."""
        return arch_index(archs, self.n_options)

    def prune(self, archs: np.ndarray, level: str) -> np.ndarray:
        """The cells `(n, D)` with the operations `level` names set to `none` (`NB201Space.prune`)."""
        return NB201Space().prune(archs, level)

    def arch(self, index: np.ndarray | int) -> np.ndarray:
        """Architectures (n, D) of row indices (n,)."""
        return np.stack(np.unravel_index(np.asarray(index, dtype=np.int64), self.n_options),
                        axis=-1)


def _check_dataset(dataset: str) -> None:
    if dataset not in DATASETS:
        raise ConfigError(
            f"unknown dataset {dataset!r}{closest(dataset, tuple(DATASETS))}; "
            f"valid: {', '.join(DATASETS)}"
        )


def _read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        with path.open(newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            rows = list(reader)
    except UnicodeDecodeError:
        raise DataError(f"{path} is not a text csv: pass the path of nb201.csv") from None
    if not header:
        raise DataError(f"{path} is empty: pass the path of nb201.csv")
    return header, rows


def load_table(path: str | Path) -> NB201Table:
    """Read nb201.csv (never copied; read where it lies) into an `NB201Table`.

    Fails with one line on a missing file, a table without `arch_str`, a wrong number of
    rows or an unparsable architecture. Columns a run needs are checked when it asks.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"NAS-Bench-201 table {str(path)!r} is a folder: pass --table with the "
                        "path of the csv file itself (shared/data/nb201/nb201.csv)")
    if not path.is_file():
        raise DataError(
            f"NAS-Bench-201 table {str(path)!r} not found: pass --table with the path of "
            "nb201.csv (shared/data/nb201/nb201.csv)"
        )
    header, rows = _read_rows(path)
    if "arch_str" not in header:
        raise DataError(f"{path} lacks column 'arch_str' (every architecture's string): use the "
                        "full nb201.csv of shared/data/nb201")
    space = NB201Space()
    n_options = space.n_options
    expected = int(np.prod(n_options))
    width = len(header)
    if any(len(r) != width for r in rows):
        bad = next(i for i, r in enumerate(rows) if len(r) != width)
        raise DataError(f"{path} row {bad + 2} has {len(rows[bad])} fields, the header {width} "
                        "(a file cut short or edited): use the full nb201.csv of "
                        "shared/data/nb201 (see its README)")
    if len(rows) != expected:
        raise DataError(f"{path} has {len(rows)} architectures, NAS-Bench-201 has {expected}: "
                        "use the full nb201.csv")
    raw = list(zip(*rows))
    col = {name: raw[j] for j, name in enumerate(header)}
    try:
        archs = np.array([space.from_str(s) for s in col["arch_str"]], dtype=np.int64)
    except ArchError as err:
        raise DataError(f"{path}: {err}") from None
    index = arch_index(archs, n_options)
    if len(np.unique(index)) != expected:
        raise DataError(f"{path} repeats architectures: every arch_str must appear once")
    order = np.argsort(index)
    columns: dict[str, np.ndarray] = {}
    unparsed: dict[str, tuple[int, str]] = {}
    for name, values in col.items():
        if name == "arch_str":
            continue
        try:
            array = np.asarray(values, dtype=np.float64)[order]
        except ValueError:  # an error only if a run needs it (`NB201Table.column`)
            unparsed[name] = _first_unparsed(values)
            continue
        # nan and inf parse as floats, but no cost, signal or score can be one: a NaN poisons
        # every mean and comparison downstream, silently.
        if not np.isfinite(array).all():
            unparsed[name] = _first_unparsed(values)
            continue
        # Values no cell can have, which would run to a wrong result: a negative cost or
        # latency (0 is one: HW-NAS-Bench's ~0 ms of a cell whose output is disconnected), an
        # accuracy (%) outside [0, 100].
        low, high = _RANGES.get(_kind(name), (-math.inf, math.inf))
        if ((array < low) | (array > high)).any():
            unparsed[name] = _first_unparsed(values, low, high)
            continue
        array.flags.writeable = False
        columns[name] = array
    devices: dict[str, str] = {}
    for name in header:
        for pattern in _LATENCY:
            match = pattern.match(name)
            known = name in columns or name in unparsed
            if match and match.group(1) not in devices and known:
                devices[match.group(1)] = name
    archs = archs[order]
    archs.flags.writeable = False
    official = (columns["index"].astype(np.int64) if "index" in columns
                else order.astype(np.int64))
    official.flags.writeable = False
    return NB201Table(
        path=str(path),
        n_options=n_options,
        archs=archs,
        arch_strs=tuple(col["arch_str"][i] for i in order),
        official_index=official,
        columns=types.MappingProxyType(columns),
        devices=types.MappingProxyType(dict(sorted(devices.items()))),
        unparsed=types.MappingProxyType(unparsed),
    )


def _is_float(value: str) -> bool:
    """Whether a cell parses as a float (nan and inf included)."""
    try:
        float(value)
    except ValueError:
        return False
    return True


#: The values a column of each kind (`_kind`) can hold.
_RANGES = {"accuracy": (0.0, 100.0), "cost": (0.0, math.inf)}


def _kind(name: str) -> str | None:
    """"accuracy" (%), "cost" (params, MACs, a latency) or None (`index`, ...) of a column."""
    if name.endswith(("_200ep", "_12ep")):
        return "accuracy"
    if name.startswith(("params_", "flops_")) or any(p.match(name) for p in _LATENCY):
        return "cost"
    return None


def _first_unparsed(values: tuple[str, ...], low: float = -math.inf,
                    high: float = math.inf) -> tuple[int, str]:
    """(csv row, value) of the first of a column's cells that is not a finite number in
    [`low`, `high`]; the header is row 1."""
    for i, value in enumerate(values):
        if not _is_float(value) or not math.isfinite(float(value)) or not (
                low <= float(value) <= high):
            return i + 2, value
    return 2, values[0]  # unreachable when the column failed to parse or held a non-finite


def load_problem(path: str | Path, dataset: str = "c10", cost: str = "params") -> BenchProblem:
    """`load_table(path).problem(dataset, cost)`, checking the dataset and cost names first."""
    _check_dataset(dataset)
    return load_table(path).problem(dataset, cost)
