"""Choosing a run's architecture per device: limits on params, MACs, latency and accuracy.

The pool is every candidate the run evaluated (`candidates.csv`, else the front). The most
accurate candidate meeting all limits is always on the Pareto front of accuracy and the
limited costs; ties go to the cheaper one under the run's cost. With limits only on the run's
searched cost, the pick is the one the front records for that budget.

The knee (`prefer="knee"`): among the front members (accuracy vs the run's cost) that meet
the limits, with cost and accuracy each scaled to [0, 1] over those members, the member
farthest above the straight line from the cheapest to the most accurate one (the largest
`accuracy' - cost'`): where extra cost stops buying much accuracy. With fewer than three
members it is the most accurate one.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from moonas.config import parse_amount
from moonas.costs.latency import (LatencyModel, RecordedLatency, device_name, known_devices,
                                  load_latency, round_ms)
from moonas.costs.table import cost_label, flops_hint
from moonas.errors import ArgumentError, ConfigError, DataError, MoonasError
from moonas.pareto import non_dominated
from moonas.registry import closest
from moonas.run import Candidate, Run
from moonas.yamlio import read_yaml

__all__ = [
    "PREFER",
    "Limits",
    "parse_limits",
    "Pick",
    "NoFeasibleArchitecture",
    "pick",
    "pick_many",
    "read_budgets_file",
    "candidate_pool",
    "candidate_costs",
    "knee_index",
    "resolve_latency",
    "recorded_latency",
    "cost_label",
]

log = logging.getLogger(__name__)

PREFER = ("accuracy", "knee")
_LIMIT_KEYS = ("max_params", "max_macs", "max_latency_ms", "min_accuracy")
_ENTRY_KEYS = (*_LIMIT_KEYS, "device", "latency_table", "prefer")


class NoFeasibleArchitecture(MoonasError):
    """No candidate of the run meets the limits (exit code 2)."""

    exit_code = 2


@dataclass(frozen=True)
class Limits:
    """Upper limits on costs and a lower limit on accuracy (fraction in [0, 1]); None = none."""

    max_params: float | None = None
    max_macs: float | None = None
    max_latency_ms: float | None = None
    min_accuracy: float | None = None

    def __post_init__(self) -> None:
        for key in ("max_params", "max_macs", "max_latency_ms"):
            value = getattr(self, key)
            if value is not None and not value > 0:  # NaN too
                raise ConfigError(f"{_arg(key)} must be > 0, got {value:g}")
        if self.min_accuracy is not None and not 0 <= self.min_accuracy <= 1:
            raise ConfigError(f"{_arg('min_accuracy')} must be a fraction in [0, 1], got "
                              f"{self.min_accuracy:g}")

    @property
    def empty(self) -> bool:
        return all(getattr(self, k) is None for k in _LIMIT_KEYS)

    def describe(self, device: str | None = None) -> str:
        parts = []
        if self.max_params is not None:
            parts.append(f"params <= {self.max_params:,.0f}")
        if self.max_macs is not None:
            parts.append(f"macs <= {self.max_macs:,.0f}")
        if self.max_latency_ms is not None:
            parts.append(f"latency on {device} <= {self.max_latency_ms:g} ms")
        if self.min_accuracy is not None:
            parts.append(f"accuracy >= {self.min_accuracy:g}")
        return " and ".join(parts) or "no limits"


@dataclass(frozen=True)
class Pick:
    """The chosen candidate, the limits it meets, its latency on `device` (when one is
    named), and its retrained metrics when `moonas train` produced them.

    Hashable: `trained` (the plain dict of `metrics.json`) is left out of the hash but
    compared for equality, so equal picks hash alike and a pick is a set member or key."""

    candidate: Candidate
    limits: Limits
    prefer: str
    device: str | None = None
    latency_ms: float | None = None
    trained: dict | None = field(default=None, hash=False)
    label: str | None = None
    n_feasible: int = 0

    @property
    def weights(self) -> str:
        return "trained" if self.trained is not None else "supernet"

    def to_json(self) -> dict[str, Any]:
        c = self.candidate
        out: dict[str, Any] = {}
        if self.label is not None:
            out["name"] = self.label
        out.update({
            "id": c.id, "arch": list(c.arch), "arch_str": c.arch_str,
            "accuracy": c.accuracy, "params": c.params, "macs": c.macs,
            "on_front": c.on_front, "mode_of": c.mode_of, "modes": list(c.modes),
        })
        if self.device is not None:
            out["device"] = self.device
            out["latency_ms"] = None if self.latency_ms is None else round_ms(self.latency_ms)
        out["limits"] = {k: getattr(self.limits, k) for k in _LIMIT_KEYS
                         if getattr(self.limits, k) is not None}
        out["prefer"] = self.prefer
        out["feasible"] = self.n_feasible
        out["weights"] = self.weights
        if self.trained is not None:
            out["trained"] = {k: self.trained.get(k) for k in
                              ("test_accuracy", "val_accuracy", "init", "recipe")}
        return out


def candidate_pool(run: Run) -> tuple[Candidate, ...]:
    """Every candidate the run evaluated (the front's records win for front members)."""
    if not run.candidates:
        return run.front.architectures
    front = {c.id: c for c in run.front.architectures}
    return tuple(front.get(c.id, c) for c in run.candidates)


def candidate_costs(candidates: Sequence[Candidate], cost: str,
                    latency: LatencyModel | None = None) -> np.ndarray:
    """`params`, `macs` or `latency:DEVICE` (with its model) of each candidate, `(n,)` float64."""
    if cost in ("params", "macs"):
        return np.array([getattr(c, cost) for c in candidates], dtype=np.float64)
    if cost.startswith("latency:"):
        if latency is None:
            raise ConfigError(f"{cost} needs a latency table: pass --latency-table PATH "
                              "(a 'moonas profile' JSON or nb201.csv)")
        if latency.device != device_name(cost):
            raise ConfigError(f"{cost} asked for, but the latency model is {latency.name}")
        if not candidates:
            return np.zeros(0)
        return latency.price(np.array([c.arch for c in candidates], dtype=np.int64))
    hint = flops_hint(cost) or closest(cost, ("params", "macs", "latency:"))
    raise ConfigError(f"unknown cost {cost!r}{hint}; valid: params, macs, latency:DEVICE")


def knee_index(cost: np.ndarray, accuracy: np.ndarray) -> int:
    """Index of the knee of a front (see the module docstring); `cost`, `accuracy` `(n,)`."""
    n = len(cost)
    if n == 0:
        raise ValueError("empty front")
    best = int(np.lexsort((cost, -accuracy))[0])
    if n < 3:
        return best
    c_span = np.ptp(cost)
    a_span = np.ptp(accuracy)
    if c_span == 0 or a_span == 0:
        return best
    gain = (accuracy - accuracy.min()) / a_span - (cost - cost.min()) / c_span
    top = gain.max()
    tied = np.flatnonzero(np.isclose(gain, top, rtol=0, atol=1e-12))
    return int(tied[np.argmax(accuracy[tied])])


def resolve_latency(run: Run, device: str | LatencyModel | None,
                    latency_table: str | Path | None) -> LatencyModel | None:
    """The latency model named by `device`: a model as is, else loaded from `latency_table`
    (or the run config's `search.latency_table` when it has one) and checked on the space.

    Without `device`, a `latency_table` that holds one device (a 'moonas profile' JSON) gives
    that device; one of several devices needs `device`. A missing table always fails, except
    the run's own (`latency_table` not given) for the device it searched on: when that table is
    missing or no longer fits the run, the latencies the search recorded serve instead
    (`recorded_latency`), with a warning. A `latency_table` that is no path raises
    `ArgumentError`."""
    _check_table(latency_table)
    if isinstance(device, LatencyModel):
        return device
    if device is None:
        if latency_table is None:
            return None
        known = known_devices(latency_table)
        if len(known) != 1:
            raise ConfigError(f"{_arg('latency_table')} {latency_table} holds {len(known)} "
                              f"devices: add {_arg('device', 'NAME')}, one of "
                              f"{', '.join(known) or 'none'}")
        device = known[0]
    table = latency_table or getattr(run.config.search, "latency_table", None)
    if table is None:
        raise ConfigError(f"device {device!r} needs a latency table: pass "
                          f"{_arg('latency_table', 'PATH')}: a 'moonas profile' JSON, a folder of "
                          "them, or nb201.csv")
    from moonas.pricing import run_space

    space = run_space(run)
    try:
        model = load_latency(table, device_name(device), space=space)
    except (ConfigError, DataError) as err:
        # The run's own table, replaced or removed since the search: the latencies the search
        # recorded for its device still price every candidate. A table the user names is used
        # as named.
        recorded = recorded_latency(run, device) if latency_table is None else None
        if recorded is None:
            raise
        reason = (f"{str(table)!r} was not found" if not Path(table).exists()
                  else f"{table} no longer fits the run ({err})")
        log.warning("the run's latency table %s: pricing %s with the latencies its search "
                    "recorded in %s", reason, recorded.name, recorded.source)
        return recorded
    if latency_table is None:
        _warn_if_remeasured(run, model, table)
    return model


def _check_table(latency_table) -> None:
    """`ArgumentError` unless `latency_table` is None or a path (str or os.PathLike)."""
    if latency_table is not None and not isinstance(latency_table, (str, os.PathLike)):
        raise ArgumentError(f"latency_table must be a path (str or pathlib.Path), got "
                            f"{type(latency_table).__name__} {repr(latency_table)[:40]}")


def _warn_if_remeasured(run: Run, model: LatencyModel, table: str | Path) -> None:
    """One warning when the run's own table now prices its candidates otherwise than the
    search recorded (the device was profiled again): picks follow the table, not the front."""
    recorded = recorded_latency(run, model.name.split(":", 1)[1])
    if recorded is None:
        return
    archs = np.array(list(recorded.latency), dtype=np.int64)
    then = np.array(list(recorded.latency.values()))
    now = model.price(archs)
    change = float(np.max(np.abs(now - then) / np.maximum(np.abs(then), 1e-9)))
    if change > 1e-3:
        log.warning("%s prices the run's candidates up to %.1f%% otherwise than its search "
                    "recorded (profiled again since?): latencies follow the table, so picks may "
                    "differ from the front's; 'moonas profile' the device as it was, or search "
                    "again", table, 100 * change)


def recorded_latency(run: Run, device: str) -> RecordedLatency | None:
    """The latencies `run` recorded (`latency_ms` of candidates.csv and the front) as a model
    of `device`, or None unless the run searched on `latency:DEVICE` and recorded every
    candidate's latency."""
    if run.config.search.cost != f"latency:{device_name(device)}":
        return None
    candidates = (*run.candidates, *run.front.architectures)  # the front's records win
    if not candidates or any(c.latency_ms is None for c in candidates):
        return None
    source = "candidates.csv" if run.candidates else "pareto.json"
    return RecordedLatency(device_name(device), {c.arch: float(c.latency_ms) for c in candidates},
                           len(candidates[0].arch), str(Path(run.dir) / source),
                           table=run.config.search.latency_table)


def _trained_metrics(run: Run, candidate: Candidate) -> dict | None:
    """The candidate's retrained metrics, None when it has none (or they are another arch's)."""
    from moonas.deploy.trained import read_trained_metrics

    return read_trained_metrics(run.dir, candidate.id, candidate.arch)


def pick(run: Run, max_params: float | str | None = None, max_macs: float | str | None = None,
         max_latency_ms: float | str | None = None, device: str | LatencyModel | None = None,
         min_accuracy: float | str | None = None,
         prefer: Literal["accuracy", "knee"] = "accuracy", *,
         latency_table: str | Path | None = None, label: str | None = None) -> Pick:
    """The most accurate candidate of `run` meeting every limit given (or, with
    `prefer="knee"`, the knee of the feasible part of the front).

    Amounts accept `'120k'`, `'3.5M'`; `min_accuracy` is a fraction in [0, 1], a percentage
    (`'90%'`), or a number in (1, 100] read as a percentage. `max_latency_ms` needs `device`
    (a name resolved in `latency_table`, or a `LatencyModel`) or a one-device `latency_table`
    (see `resolve_latency`). Nothing feasible raises `NoFeasibleArchitecture` (exit code 2) naming
    the cheapest candidate under each limit.
    """
    if prefer not in PREFER:
        raise ConfigError(f"{_arg('prefer')} must be one of {', '.join(PREFER)}, got {prefer!r}")
    _check_table(latency_table)
    limits = parse_limits(max_params, max_macs, max_latency_ms, min_accuracy)
    searched = run.config.search.cost
    # The device the run searched for: reported by default, limited by --max-latency-ms.
    own = device is None and latency_table is None and searched.startswith("latency:")
    if device is None and searched.startswith("latency:") and (
            latency_table is None or limits.max_latency_ms is not None):
        device = device_name(searched)
    try:
        model = resolve_latency(run, device, latency_table)
    except MoonasError as err:
        if not own or limits.max_latency_ms is not None:
            raise
        # Only reporting the searched device's latency: without it, the pick still stands.
        log.warning("the pick leaves out latency on %s, the cost %s searched on: %s",
                    device, run.dir, err)
        model = None
    if limits.max_latency_ms is not None and model is None:
        raise ConfigError(f"{_arg('max_latency_ms')} needs {_arg('device', 'NAME')} (and "
                          f"{_arg('latency_table', 'PATH')})")
    pool = candidate_pool(run)
    if not pool:
        raise MoonasError(f"run {run.dir} has an empty front: search again")
    accuracy = np.array([c.accuracy for c in pool])
    latency = candidate_costs(pool, model.name, model) if model is not None else None
    # Ties and the knee use the run's searched cost (params when it is a latency not given).
    if run.front.cost in ("params", "macs"):
        run_cost = candidate_costs(pool, run.front.cost)
    elif model is not None and run.front.cost == model.name:
        run_cost = latency
    else:
        run_cost = candidate_costs(pool, "params")
    feasible = np.ones(len(pool), dtype=bool)
    checks = []
    for key, cost in (("max_params", "params"), ("max_macs", "macs"),
                      ("max_latency_ms", "latency")):
        limit = getattr(limits, key)
        if limit is None:
            continue
        values = latency if cost == "latency" else candidate_costs(pool, cost)
        feasible &= values <= limit
        checks.append((cost, values, limit))
    if limits.min_accuracy is not None:
        feasible &= accuracy >= limits.min_accuracy - 1e-12
    device_label = None if model is None else model.device
    if not feasible.any():
        raise NoFeasibleArchitecture(_infeasible_message(run, pool, limits, checks, accuracy,
                                                         device_label))
    index = np.flatnonzero(feasible)
    on_front = np.array([c.on_front for c in pool])
    if prefer == "knee":
        members = index[non_dominated(np.column_stack([-accuracy[index], run_cost[index]]))]
        members = members[np.lexsort((run_cost[members],))]
        chosen = int(members[knee_index(run_cost[members], accuracy[members])])
    else:
        order = np.lexsort((np.array([c.id for c in pool])[index], ~on_front[index],
                            run_cost[index], -accuracy[index]))
        chosen = int(index[order[0]])
    c = pool[chosen]
    return Pick(candidate=c, limits=limits, prefer=prefer, device=device_label,
                latency_ms=None if latency is None else float(latency[chosen]),
                trained=_trained_metrics(run, c), label=label, n_feasible=int(feasible.sum()))


def parse_limits(max_params: float | str | None = None, max_macs: float | str | None = None,
                 max_latency_ms: float | str | None = None,
                 min_accuracy: float | str | None = None) -> Limits:
    """The `Limits` that `pick` reads from its arguments (amounts such as `'120k'`, accuracy
    as a fraction or a percentage), or one line naming the value that cannot be a limit."""
    return Limits(max_params=_amount(max_params, "max_params"),
                  max_macs=_amount(max_macs, "max_macs"),
                  max_latency_ms=_amount(max_latency_ms, "max_latency_ms"),
                  min_accuracy=_accuracy(min_accuracy))


def _infeasible_message(run: Run, pool: Sequence[Candidate], limits: Limits, checks: list,
                        accuracy: np.ndarray, device: str | None) -> str:
    hints = []
    units = {"params": "params", "macs": "MACs", "latency": "ms"}
    alone = []
    for cost, values, limit in checks:
        i = int(np.lexsort((-accuracy, values))[0])
        name = f"latency on {device}" if cost == "latency" else cost
        shown = f"{values[i]:.3g} ms" if cost == "latency" else f"{values[i]:,.0f} {units[cost]}"
        hints.append(f"the cheapest by {name} is id {pool[i].id} ({shown})")
        alone.append(bool((values <= limit).any()))
    if limits.min_accuracy is not None:
        i = int(np.argmax(accuracy))
        hints.append(f"the most accurate is id {pool[i].id} (accuracy {accuracy[i]:.4f})")
        alone.append(bool((accuracy >= limits.min_accuracy - 1e-12).any()))
    together = " (each limit alone can be met, not all at once)" if alone and all(alone) else ""
    return (f"no architecture of {run.dir} meets {limits.describe(device)}{together}: "
            f"{'; '.join(hints)}; relax the limits")


def _arg(key: str, value: str = "") -> str:
    """How a message names the limit `key`: the CLI flag, then the Python argument (`pick` and
    `Run.pick` take the same settings as `moonas pick`)."""
    return f"--{key.replace('_', '-')}{' ' + value if value else ''} ({key}=)"


def _amount(value: float | str | None, key: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    try:
        return parse_amount(str(value), unit="ms" if key == "max_latency_ms" else None)
    except ValueError as err:
        raise ConfigError(f"{_arg(key)} {value!r}: {err}") from None


def _accuracy(value: float | str | None) -> float | None:
    if value is None:
        return None
    text = str(value).strip()
    percent = text.endswith("%")
    try:
        number = float(text[:-1] if percent else text)
    except ValueError:
        raise ConfigError(f"{_arg('min_accuracy')} {text!r} is not a number (e.g. 0.9 or "
                          "90%)") from None
    fraction = number / 100 if percent or number > 1 else number
    if not 0 <= fraction <= 1:
        raise ConfigError(f"{_arg('min_accuracy')} {text!r} is out of range: give a fraction "
                          "in [0, 1] (0.9), a percentage up to 100% (90%), or a number in "
                          "(1, 100] (90)")
    return fraction


# -- several devices at once -----------------------------------------------------------------
def read_budgets_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """`devices.yaml`: a mapping of device name -> limits, e.g.

        raspi4: {max_latency_ms: 20}            # device defaults to the entry's name
        mcu: {max_params: 120k, max_macs: 3.5M}
        phone: {max_latency_ms: 8, device: pixel3, latency_table: nb201.csv, prefer: knee}

    Keys: max_params, max_macs, max_latency_ms, min_accuracy, device, latency_table (relative
    to the file), prefer. An optional top-level `devices:` key may hold the mapping.
    """
    path = Path(path)
    example = "e.g. 'mcu: {max_params: 120k}'"
    if path.is_dir():
        raise ConfigError(f"budgets file {str(path)!r} is a folder: give a YAML file mapping "
                          f"device name -> limits, {example}")
    if not path.is_file():
        raise ConfigError(f"budgets file {str(path)!r} not found: write a YAML mapping of device "
                          f"name -> limits, {example}")
    try:
        path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:  # read_yaml's own line would call it a config
        raise ConfigError(f"budgets file {path} is not UTF-8 text (byte {err.start}): save it "
                          f"as UTF-8 YAML mapping device name -> limits, {example}") from None
    except OSError as err:
        raise ConfigError(f"budgets file {path} cannot be read ({err.strerror or err}): make "
                          "it readable") from None
    data = read_yaml(path)
    if isinstance(data, dict) and set(data) == {"devices"}:
        data = data["devices"]
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{path} must map device names to limits, e.g. "
                          "'mcu: {max_params: 120k}'")
    out: dict[str, dict[str, Any]] = {}
    for name, entry in data.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: entry {name!r} must be a mapping of limits, e.g. "
                              "{max_params: 120k}")
        for key in entry:
            if key not in _ENTRY_KEYS:
                raise ConfigError(f"{path}: unknown key {key!r} in {name!r}"
                                  f"{closest(str(key), _ENTRY_KEYS)}; valid: "
                                  f"{', '.join(_ENTRY_KEYS)}")
        entry = dict(entry)
        if entry.get("latency_table") is not None:
            table = Path(str(entry["latency_table"]))
            entry["latency_table"] = table if table.is_absolute() else path.parent / table
        if entry.get("max_latency_ms") is not None and entry.get("device") is None:
            entry["device"] = str(name)
        out[str(name)] = entry
    return out


def pick_many(run: Run, budgets: Mapping[str, Mapping[str, Any]],
              latency_table: str | Path | None = None,
              prefer: Literal["accuracy", "knee"] = "accuracy"
              ) -> list[tuple[str, Pick | NoFeasibleArchitecture]]:
    """One pick per named device; infeasible devices give their `NoFeasibleArchitecture`.

    `latency_table` is the default table of the entries that name a `device`."""
    _check_table(latency_table)
    if latency_table is not None:
        known_devices(latency_table)  # a missing table fails even when no entry uses it
    out: list[tuple[str, Pick | NoFeasibleArchitecture]] = []
    models: dict[tuple[str, str | None], LatencyModel] = {}  # each table read (and warned) once
    for name, entry in budgets.items():
        kwargs = {k: entry.get(k) for k in _LIMIT_KEYS}
        table = entry.get("latency_table") or (latency_table if entry.get("device") else None)
        device = entry.get("device")
        try:
            if device is not None:
                key = (str(device), None if table is None else str(table))
                if key not in models:
                    models[key] = resolve_latency(run, str(device), table)
                device = models[key]
            result: Pick | NoFeasibleArchitecture = pick(
                run, device=device, prefer=entry.get("prefer", prefer),
                latency_table=table, label=name, **kwargs)
        except NoFeasibleArchitecture as err:
            result = err
        except (ConfigError, DataError) as err:
            # A bad value or table of this entry (of its class): named by its key, not a flag.
            text = str(err)
            for key in (*_LIMIT_KEYS, "prefer"):
                text = text.replace(_arg(key), key)
            raise type(err)(f"budgets entry {name!r}: {text}") from None
        out.append((name, result))
    return out
