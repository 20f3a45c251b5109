"""Judging a benchmark result (DESIGN 7): returned set and picks, HV ratio, budget regret."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from moonas.bench.table import BenchProblem
from moonas.pareto import front_2d, hypervolume, normalise
from moonas.plugins.predictors import SMOOTHING, smoothed_scores

__all__ = [
    "PERCENTILES",
    "REFERENCE",
    "Scorer",
    "build_scorer",
    "budget_percentiles",
    "returned_set",
    "picks",
    "PICK_RULES",
    "pick_signal",
    "signal_regret",
    "front_2d",
    "bootstrap_interval",
]

#: Cost percentiles of the table that set the budgets (regret, and multi-asng's budget mode).
PERCENTILES: tuple[float, ...] = (10.0, 25.0, 50.0, 75.0, 90.0)
#: Reference point of the hypervolume, per normalised objective.
REFERENCE = 1.1


def budget_percentiles(cost: np.ndarray, percentiles: tuple[float, ...] = PERCENTILES
                       ) -> tuple[float, ...]:
    """Budgets at the given percentiles of the cost over every architecture of the table."""
    return tuple(float(b) for b in np.percentile(np.asarray(cost, dtype=np.float64), percentiles))


def bootstrap_interval(values: np.ndarray, level: float = 0.95, resamples: int = 2000,
                       stat: Callable[..., np.ndarray] = np.mean) -> tuple[float, float]:
    """Percentile-bootstrap interval of `stat` (the mean; np.median for HV) of `values` (one
    per seed): the spread a table's figure carries from the seeds it was measured on.
    Resamples with a fixed generator, so the same values always give the same interval; one
    value gives a zero-width interval."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("no values to bootstrap")
    draws = np.random.default_rng(0).integers(0, values.size, size=(resamples, values.size))
    boots = stat(values[draws], axis=1)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(boots, (tail, 100 - tail))
    return float(low), float(high)


def returned_set(rows: np.ndarray, signal: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """What a strategy returns: rows of the non-dominated evaluated archs under
    (12-epoch validation error, cost). rows: (n,) evaluated row indices."""
    rows = np.asarray(rows, dtype=np.int64)
    return rows[front_2d(-signal[rows], cost[rows])]


def picks(rows: np.ndarray, signal: np.ndarray, cost: np.ndarray,
          budgets: tuple[float, ...]) -> np.ndarray:
    """Per budget, the evaluated row with the best 12-epoch validation accuracy among those with
    cost <= budget (ties: the lowest row), or -1 when none is feasible. Returns (K,) int64."""
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    out = np.full(len(budgets), -1, dtype=np.int64)
    if rows.size == 0:
        return out
    c = cost[rows]
    s = signal[rows]
    for k, b in enumerate(budgets):
        feasible = c <= b
        if feasible.any():
            out[k] = rows[feasible][np.argmax(s[feasible])]
    return out


#: How a strategy's pick per budget is chosen among its evaluations (`--pick`); the same rule
#: for every strategy of a job.
PICK_RULES = {
    "observed": "each budget's pick is the evaluated architecture with the best 12-epoch "
                "validation accuracy under it (--pick observed)",
    "smoothed": "each budget's pick is the evaluated architecture with the best smoothed "
                f"12-epoch validation accuracy under it: {1 - SMOOTHING['weight']:g} x its own "
                f"plus {SMOOTHING['weight']:g} x a pairs ridge fit (ridge {SMOOTHING['ridge']:g}) "
                "on everything the strategy evaluated, which discounts accuracies far above what "
                "an architecture's operations predict (--pick smoothed, the same rule for every "
                "strategy)",
}


def pick_signal(rule: str, rows: np.ndarray, problem: BenchProblem) -> np.ndarray:
    """The per-row values (N,) that `picks` ranks the evaluated `rows` by under `rule`
    (`PICK_RULES`): the signal itself, or a copy with the rows' values smoothed."""
    if rule == "observed":
        return problem.signal
    if rule != "smoothed":
        raise ValueError(f"unknown pick rule {rule!r}; valid: {', '.join(PICK_RULES)}")
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    out = np.array(problem.signal, dtype=np.float64)
    out[rows] = smoothed_scores(problem.arch(rows), out[rows], problem.n_options)
    return out


def signal_regret(picked: np.ndarray, signal: np.ndarray, cost: np.ndarray,
                  budgets: tuple[float, ...]) -> np.ndarray:
    """Search-signal points lost per budget, (K,): the best 12-epoch validation accuracy among
    the table's feasible architectures minus the pick's (a budget without a pick: minus the
    worst feasible one's).

    What the search itself missed, apart from the signal's noise: exhaustive evaluation scores
    0 here while its budget regret is the price of a 12-epoch proxy.
    """
    picked = np.asarray(picked, dtype=np.int64)
    out = np.empty(len(budgets))
    for k, b in enumerate(budgets):
        feasible = signal[cost <= b]
        if feasible.size == 0:
            raise ValueError(f"budget {b:g} is below the cheapest architecture ({cost.min():g})")
        got = signal[picked[k]] if picked[k] >= 0 else feasible.min()
        out[k] = feasible.max() - got
    return out


@dataclass(frozen=True)
class Scorer:
    """Scores row sets of one `BenchProblem` with the 200-epoch test accuracy.

    Objectives (error %, cost), normalised by the table's min and max of each; hypervolume up to
    `REFERENCE` per coordinate; `true_hv` is that of the table's true front. `best`/`worst`
    (K,): the best and worst test accuracy among feasible architectures per budget.
    """

    error: np.ndarray
    cost: np.ndarray
    low: np.ndarray
    high: np.ndarray
    budgets: tuple[float, ...]
    best: np.ndarray
    worst: np.ndarray
    true_front: np.ndarray
    true_hv: float

    def normalised(self, rows: np.ndarray) -> np.ndarray:
        """(n, 2) normalised (error, cost) of rows (n,)."""
        rows = np.asarray(rows, dtype=np.int64)
        points = np.stack([self.error[rows], self.cost[rows]], axis=1)
        return normalise(points, self.low, self.high)

    def hv(self, rows: np.ndarray) -> float:
        """Hypervolume of the scored rows (only their non-dominated ones count)."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return 0.0
        front = rows[front_2d(self.error[rows], self.cost[rows])]
        return hypervolume(self.normalised(front), REFERENCE)

    def hv_ratio(self, rows: np.ndarray) -> float:
        """`hv(rows) / true_hv`, in [0, 1]."""
        return self.hv(rows) / self.true_hv

    def regret(self, picked: np.ndarray) -> np.ndarray:
        """Accuracy points lost per budget, (K,): best feasible test accuracy minus the pick's.

        A budget without a pick (-1: nothing feasible evaluated) scores as the worst feasible
        architecture, the most a blind choice could lose.
        """
        picked = np.asarray(picked, dtype=np.int64)
        acc = np.where(picked >= 0, 100.0 - self.error[np.maximum(picked, 0)], self.worst)
        return self.best - acc


def build_scorer(problem: BenchProblem, budgets: tuple[float, ...] | None = None) -> Scorer:
    """The scorer of a problem; budgets default to the `PERCENTILES` of its cost."""
    error = 100.0 - np.asarray(problem.score, dtype=np.float64)
    cost = np.asarray(problem.cost, dtype=np.float64)
    budgets = budget_percentiles(cost) if budgets is None else tuple(budgets)
    low = np.array([error.min(), cost.min()])
    high = np.array([error.max(), cost.max()])
    best = np.empty(len(budgets))
    worst = np.empty(len(budgets))
    for k, b in enumerate(budgets):
        feasible = cost <= b
        if not feasible.any():
            raise ValueError(f"budget {b:g} is below the cheapest architecture ({cost.min():g})")
        best[k] = 100.0 - error[feasible].min()
        worst[k] = 100.0 - error[feasible].max()
    true_front = front_2d(error, cost)
    points = normalise(np.stack([error[true_front], cost[true_front]], axis=1), low, high)
    true_hv = hypervolume(points, REFERENCE)
    for array in (error, cost, low, high, best, worst, true_front):
        array.flags.writeable = False
    return Scorer(error=error, cost=cost, low=low, high=high, budgets=budgets, best=best,
                  worst=worst, true_front=true_front, true_hv=true_hv)
