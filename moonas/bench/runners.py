"""One runner per benchmark strategy: each searches the table and logs its evaluations in order."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from moonas.bench.table import BenchProblem
from moonas.config import SearchConfig, build_section
from moonas.errors import ConfigError
from moonas.registry import Registry
from moonas.spaces import check_prune_level

__all__ = [
    "RUNNERS",
    "RunOptions",
    "Trace",
    "TableEvaluator",
    "run_strategy",
    "search_config",
    "SEARCH_KEYS",
    "describe",
]

#: Lookups in a row without a new architecture after which a distribution-based run stops (it
#: has converged onto archs it already evaluated; repeats are free, so it would never end).
STALL_LOOKUPS = 20_000

#: SearchConfig fields of multi-asng that the benchmark lets one change.
SEARCH_KEYS = ("delta0", "delta_max", "alpha", "samples_per_dist", "utility", "coefficients",
               "budgets", "eoi", "pvll")


@dataclass(frozen=True)
class RunOptions:
    """What every runner gets besides the problem: the budgets (cost percentiles of the table),
    multi-asng's search settings (`SEARCH_KEYS` overrides), the population of NSGA-II, what
    pruning every strategy's cells get before they are looked up (`PRUNE_LEVELS`), and the
    table's path, which a latency cost's search config names as its latency table."""

    budgets: tuple[float, ...]
    search: tuple[tuple[str, Any], ...] = ()
    population: int = 20
    prune: str = "dead"
    table: str | None = None


@dataclass
class Trace:
    """What one run evaluated. `parts`: per independent search, the distinct rows in order of
    first evaluation and the seconds since that search started at which each was evaluated (one
    part, except `asng-separate-full`: K parts, each with the full budget). `modes`: evaluation
    count -> the modes (K, D) of the distributions when that count was reached."""

    parts: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    modes: dict[int, np.ndarray] = field(default_factory=dict)

    def rows_at(self, count: int) -> np.ndarray:
        """Rows evaluated once each part had made `count` distinct evaluations (union)."""
        rows = [r[:count] for r, _ in self.parts]
        return np.unique(np.concatenate(rows)) if rows else np.zeros(0, dtype=np.int64)

    def seconds_at(self, count: int) -> float:
        """Wall seconds the parts took to reach `count` (or to stop, if they stalled before)."""
        return float(sum(t[min(count, len(t)) - 1] for _, t in self.parts if len(t)))

    def modes_at(self, count: int) -> np.ndarray | None:
        """Modes recorded at the first logged count >= `count` (None without distributions)."""
        later = [c for c in self.modes if c >= count]
        if later:
            return self.modes[min(later)]
        return self.modes[max(self.modes)] if self.modes else None


class TableEvaluator:
    """The table as an evaluator: a lookup per architecture, cached, logging distinct rows.

    `__call__(archs (M, D))` returns (losses, costs), each (M,): loss = 12-epoch validation
    error as a fraction. Repeats cost nothing; `n_distinct` counts first evaluations, in order.
    Each cell is looked up (and logged, so returned) pruned at level `prune`
    (`BenchProblem.prune`), as the supernet search measures cells with `search.prune`.
    """

    def __init__(self, problem: BenchProblem, prune: str = "dead") -> None:
        check_prune_level(prune)
        self.problem = problem
        self.prune = prune
        self._loss = 1.0 - np.asarray(problem.signal, dtype=np.float64) / 100.0
        self._seen = np.zeros(problem.size, dtype=bool)
        self._rows: list[np.ndarray] = []
        self._times: list[np.ndarray] = []
        self.n_distinct = 0
        self.lookups_since_new = 0
        self._start = time.perf_counter()

    def pruned(self, archs: np.ndarray) -> np.ndarray:
        """The cells `(n, D)` looked up for `archs`: pruned at this evaluator's level."""
        return self.problem.prune(archs, self.prune)

    def rows(self, archs: np.ndarray) -> np.ndarray:
        """Rows looked up for `archs` (n, D): those of their pruned cells."""
        return self.problem.index(self.pruned(archs))

    def __call__(self, archs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = self.rows(archs)
        self.log(rows)
        return self._loss[rows], self.problem.cost[rows]

    def objectives(self, archs: np.ndarray) -> np.ndarray:
        """(M, 2) minimised objectives (12-epoch validation error %, cost) for the baselines."""
        rows = self.rows(archs)
        self.log(rows)
        return np.stack([100.0 - self.problem.signal[rows], self.problem.cost[rows]], axis=1)

    def log(self, rows: np.ndarray) -> None:
        """Record the first evaluation of each new row, in order of appearance."""
        unique, first = np.unique(rows, return_index=True)
        fresh = ~self._seen[unique]
        if not fresh.any():
            self.lookups_since_new += len(rows)
            return
        new = unique[fresh][np.argsort(first[fresh])]
        self._seen[new] = True
        self._rows.append(new)
        self._times.append(np.full(len(new), time.perf_counter() - self._start))
        self.n_distinct += len(new)
        self.lookups_since_new = 0

    def part(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows, seconds) of the distinct evaluations so far."""
        if not self._rows:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        return np.concatenate(self._rows), np.concatenate(self._times)


Runner = Callable[[BenchProblem, int, np.random.Generator, RunOptions, Sequence[int]], Trace]
RUNNERS: Registry[Runner] = Registry("benchmark strategy")


def run_strategy(name: str, problem: BenchProblem, max_evals: int, rng: np.random.Generator,
                 options: RunOptions, counts: Sequence[int] = ()) -> Trace:
    """Run strategy `name` until `max_evals` distinct archs; `counts` are where modes are logged."""
    return RUNNERS.get(name)(problem, int(max_evals), rng, options, tuple(sorted(counts)))


def search_config(options: RunOptions, cost: str) -> SearchConfig:
    """multi-asng's `SearchConfig`: budget mode on the options' budgets unless overridden
    (`coefficients` switches to coefficient mode). Overrides go through the config layer's
    validation; dotted keys (`eoi.enabled`) set plug-in sections. A `latency:DEVICE` cost
    names the options' table as its latency table (the benchmark prices cells from it)."""
    overrides = dict(options.search)
    unknown = sorted(k for k in overrides if k.split(".")[0] not in SEARCH_KEYS)
    if unknown:
        raise ConfigError(f"unknown search setting {unknown[0]!r} for the benchmark; valid: "
                          f"{', '.join(SEARCH_KEYS)}")
    data: dict[str, Any] = {"strategy": "multi-asng", "cost": cost, "prune": options.prune,
                            "budgets": list(options.budgets), "n_budgets": len(options.budgets),
                            "latency_table": _latency_table(options, cost)}
    for key in ("budgets", "coefficients"):
        value = overrides.get(key, ())
        if key in overrides and not (isinstance(value, (list, tuple)) and value):
            shown = json.dumps(list(value) if isinstance(value, tuple) else value)
            raise ConfigError(f"--set {key}={shown}: expected a non-empty list of numbers, "
                              f"e.g. --set '{key}=[0.1,0.3]'"
                              + (" (leave budgets unset for the table's percentile budgets)"
                                 if key == "budgets" else ""))
    if overrides.get("coefficients") is not None:
        data.update(budgets=None, n_budgets=len(overrides["coefficients"]))
    elif "budgets" in overrides:
        data.update(n_budgets=len(overrides["budgets"]))
    for key, value in overrides.items():
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = list(value) if isinstance(value, tuple) else value
    return build_section(SearchConfig, data, "search")


# ---------------------------------------------------------------------- the Strategy layer
def _strategy(name: str, problem: BenchProblem, search: SearchConfig, seed: int = 0):
    """The supernet search's own Strategy object, its objective built from the table; `seed`
    seeds the plug-ins' own generators (PVLL's choice of the rows it leaves unscreened)."""
    from moonas.search.objective import Objective
    from moonas.search.strategies import build_strategy

    cost = np.asarray(problem.cost)
    objective = Objective(problem.cost_name, search.budgets, search.coefficients,
                          float(cost.min()), float(cost.max()))
    def cells(archs: np.ndarray) -> np.ndarray:  # what the table looks up: the pruned cells
        return problem.prune(archs, search.prune)

    return build_strategy(name, problem.n_options, objective, search,
                          price=lambda archs: problem.cost[problem.index(cells(archs))],
                          seed=seed, cells=cells)


def plugin_seed(rng: np.random.Generator) -> int:
    """A seed for a run's plug-ins drawn from a child of `rng` (`Generator.spawn`): it differs
    from run to run as `rng` does, and leaves `rng`'s own stream where it was."""
    return int(rng.spawn(1)[0].integers(2**31 - 1))


def _drive(strategies: Sequence[Any], evaluator: TableEvaluator, rng: np.random.Generator,
           max_evals: int, counts: Sequence[int], trace: Trace) -> None:
    """Ask/tell the strategies in turn (round robin) on one evaluator until `max_evals`."""
    pending = [c for c in counts if c <= max_evals]
    while evaluator.n_distinct < max_evals and evaluator.lookups_since_new < STALL_LOOKUPS:
        for strategy in strategies:
            archs = strategy.ask(rng)
            losses, costs = evaluator(archs)
            strategy.tell(archs, losses, costs)
            while pending and evaluator.n_distinct >= pending[0]:
                trace.modes[pending.pop(0)] = np.concatenate([s.modes() for s in strategies])
            if evaluator.n_distinct >= max_evals:
                break
    for count in pending:  # stalled before reaching these counts
        trace.modes[count] = np.concatenate([s.modes() for s in strategies])


@RUNNERS.register("multi-asng")
def _multi_asng(problem: BenchProblem, max_evals: int, rng: np.random.Generator,
                options: RunOptions, counts: Sequence[int]) -> Trace:
    """Ours: K distributions updated jointly by importance sampling (the supernet search's code)."""
    strategy = _strategy("multi-asng", problem, search_config(options, problem.cost_name),
                         seed=plugin_seed(rng))
    evaluator = TableEvaluator(problem, options.prune)
    trace = Trace()
    _drive([strategy], evaluator, rng, max_evals, counts, trace)
    trace.parts.append(evaluator.part())
    return trace


def _latency_table(options: RunOptions, cost: str) -> str | None:
    """The latency table a search config on `cost` names: the benchmark's own table for a
    `latency:DEVICE` cost (cells are priced from it), None for params and MACs."""
    return options.table if cost.startswith("latency:") else None


def _single_asngs(problem: BenchProblem, options: RunOptions) -> list[Any]:
    cost = problem.cost_name
    return [_strategy("asng", problem, SearchConfig(
                strategy="asng", cost=cost, prune=options.prune, budgets=(float(b),),
                n_budgets=1, latency_table=_latency_table(options, cost)))
            for b in options.budgets]


@RUNNERS.register("asng-separate")
def _asng_separate(problem: BenchProblem, max_evals: int, rng: np.random.Generator,
                   options: RunOptions, counts: Sequence[int]) -> Trace:
    """K plain ASNG runs, one per budget, stepping in turn and sharing one evaluation budget."""
    evaluator = TableEvaluator(problem, options.prune)
    trace = Trace()
    _drive(_single_asngs(problem, options), evaluator, rng, max_evals, counts, trace)
    trace.parts.append(evaluator.part())
    return trace


@RUNNERS.register("asng-separate-full")
def _asng_separate_full(problem: BenchProblem, max_evals: int, rng: np.random.Generator,
                        options: RunOptions, counts: Sequence[int]) -> Trace:
    """K plain ASNG runs, one per budget, each with the full evaluation budget (K times ours)."""
    trace = Trace()
    modes: dict[int, list[np.ndarray]] = {}
    for strategy in _single_asngs(problem, options):
        evaluator = TableEvaluator(problem, options.prune)
        part = Trace()
        _drive([strategy], evaluator, rng, max_evals, counts, part)
        trace.parts.append(evaluator.part())
        for count, m in part.modes.items():
            modes.setdefault(count, []).append(m)
    trace.modes = {c: np.concatenate(m) for c, m in modes.items()}
    return trace


@RUNNERS.register("random")
def _random(problem: BenchProblem, max_evals: int, rng: np.random.Generator,
            options: RunOptions, counts: Sequence[int]) -> Trace:
    """Uniform sampling without replacement, repeats free, until the count of distinct cells
    is reached (pruning maps several rows to one cell, so rows are drawn in chunks)."""
    evaluator = TableEvaluator(problem, options.prune)
    order = rng.permutation(problem.size)
    start = 0
    while evaluator.n_distinct < max_evals and start < problem.size:
        stop = start + max_evals - evaluator.n_distinct
        evaluator(problem.arch(order[start:stop]))
        start = stop
    return Trace(parts=[evaluator.part()])


@RUNNERS.register("exhaustive")
def _exhaustive(problem: BenchProblem, max_evals: int, rng: np.random.Generator,
                options: RunOptions, counts: Sequence[int]) -> Trace:
    """Every architecture of the table (the count is ignored; with pruning, every pruned cell)."""
    evaluator = TableEvaluator(problem, options.prune)
    evaluator(problem.arch(np.arange(problem.size)))
    return Trace(parts=[evaluator.part()])


@RUNNERS.register("nsga2")
def _nsga2(problem: BenchProblem, max_evals: int, rng: np.random.Generator,
           options: RunOptions, counts: Sequence[int]) -> Trace:
    """pymoo's NSGA-II (categorical operators; its population is the job's --population)."""
    from moonas.baselines.nsga2 import run_nsga2

    evaluator = TableEvaluator(problem, options.prune)
    run_nsga2(problem.n_options, evaluator.objectives, max_evals, int(rng.integers(2**31 - 1)),
              pop_size=options.population, canonical=evaluator.pruned)
    return Trace(parts=[evaluator.part()])


def _optuna(sampler: str) -> Runner:
    def run(problem: BenchProblem, max_evals: int, rng: np.random.Generator,
            options: RunOptions, counts: Sequence[int]) -> Trace:
        from moonas.baselines.optuna_search import run_optuna

        evaluator = TableEvaluator(problem, options.prune)
        run_optuna(sampler, problem.n_options, evaluator.objectives, max_evals,
                   int(rng.integers(2**31 - 1)), population_size=options.population,
                   canonical=evaluator.pruned)
        return Trace(parts=[evaluator.part()])

    run.__doc__ = f"optuna's multi-objective {sampler} sampler."
    return run


RUNNERS.register("optuna-nsga2")(_optuna("nsga2"))
RUNNERS.register("optuna-tpe")(_optuna("tpe"))


def describe(name: str) -> str:
    """What strategy `name` is: the first paragraph of its runner's doc, on one line."""
    doc = (RUNNERS.get(name).__doc__ or name).strip().split("\n\n")[0]
    return " ".join(doc.split())
