"""What each distribution is for: budgets on one cost (checked against the space) or
coefficients."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

# default_coefficients: the grid `search.coefficients=default` names (config.py sets it).
from moonas.config import SearchConfig, default_coefficients
from moonas.costs import CostTable
from moonas.errors import ConfigError
from moonas.spaces import SearchSpace

__all__ = ["Objective", "resolve_objective", "default_coefficients", "BUDGET_QUANTILES"]

log = logging.getLogger(__name__)

#: Where default budgets sit in the cost distribution of uniformly sampled architectures
#: (for 5 budgets the same percentiles as the NAS-Bench-201 harness's regret).
BUDGET_QUANTILES = {5: (0.10, 0.25, 0.50, 0.75, 0.90)}


@dataclass(frozen=True)
class Objective:
    """The cost searched over and, per distribution, a budget or a coefficient.

    Exactly one of `budgets` / `coefficients` is set, with one entry per distribution.
    `cost_max` is the dearest architecture's cost, which scales coefficient objectives.
    """

    cost: str
    budgets: tuple[float, ...] | None
    coefficients: tuple[float, ...] | None
    cost_min: float
    cost_max: float

    @property
    def n_dists(self) -> int:
        return len(self.budgets if self.budgets is not None else self.coefficients)


def _quantiles(k: int) -> tuple[float, ...]:
    return BUDGET_QUANTILES.get(k, tuple(np.linspace(0.1, 0.9, k).round(4).tolist()))


def resolve_objective(search: SearchConfig, table: CostTable, rng: np.random.Generator,
                      single: bool = False, floor: float | None = None) -> Objective:
    """The objective of a run; `single` for strategies with one distribution (`asng`).

    Budgets left unset are quantiles of the cost of 20,000 uniform samples (rounded to 3
    significant digits so they read well). Budgets below the cheapest architecture the search
    measures (`floor`, see `measured_floor`; default: the cheapest of the table) fail, naming
    its cost.
    """
    table.index(search.cost)  # unknown cost -> one line listing the valid ones
    cost_min, _ = table.extreme(search.cost, cheapest=True)
    cost_max, _ = table.extreme(search.cost, cheapest=False)
    floor = cost_min if floor is None else max(floor, cost_min)
    unit = " ms" if search.cost.startswith("latency:") else ""
    if search.budgets is not None:
        budgets = tuple(float(b) for b in search.budgets)
        if single and len(budgets) != 1:
            raise ConfigError(f"strategy {search.strategy!r} searches one distribution: give one "
                              f"budget (search.budgets=[{budgets[-1]:g}]), not {len(budgets)}")
        if budgets[0] < floor:
            measured = ("" if floor == cost_min else
                        f" a search measures (search.prune={search.prune} prunes the cheapest "
                        f"cell of the table, {cost_min:g}{unit}, to a dearer one)")
            raise ConfigError(
                f"budget {budgets[0]:g}{unit} is below the cheapest architecture of the space"
                f"{measured} ({search.cost} = {floor:g}{unit}): raise search.budgets to at least "
                f"{floor:g}"
            )
        loose = [b for b in budgets if b >= cost_max]
        if loose:
            log.warning("budget %s is at or above the dearest architecture of the space (%s = "
                        "%g): it limits nothing, and its distribution searches for accuracy "
                        "alone", ", ".join(f"{b:g}" for b in loose), search.cost, cost_max)
        return Objective(search.cost, budgets, None, cost_min, cost_max)
    if search.coefficients is not None:
        coefficients = tuple(float(c) for c in search.coefficients)
        if single and len(coefficients) != 1:
            raise ConfigError(f"strategy {search.strategy!r} searches one distribution: give one "
                              f"coefficient (search.coefficients=[{coefficients[0]:g}]), not "
                              f"{len(coefficients)}")
        return Objective(search.cost, None, coefficients, cost_min, cost_max)
    if single:
        log.info("strategy %s searches one distribution with no cost term (search.n_budgets "
                 "does not apply): give search.budgets=[B] for one budget, or "
                 "search.coefficients=[EPS] for a cost weight", search.strategy)
        return Objective(search.cost, None, (0.0,), cost_min, cost_max)
    n = search.n_budgets
    samples = _uniform_costs(table, search.cost, rng)
    raw = np.quantile(samples, _quantiles(n))
    budgets = _readable(raw, floor)
    if budgets is None:
        raise ConfigError(
            f"{n} budgets do not fit between the cheapest ({cost_min:g}) and dearest "
            f"({cost_max:g}) {search.cost}: use fewer (search.n_budgets) or give search.budgets"
        )
    return Objective(search.cost, budgets, None, cost_min, cost_max)


def _readable(raw: np.ndarray, cheapest: float) -> tuple[float, ...] | None:
    """The quantiles `raw` rounded to 3 significant digits so they read well, with more digits
    where 3 would merge two of them, and never below the cheapest architecture (`cheapest`: a
    low quantile equal to it rounds up, not down, so its distribution has something to meet).
    None when the quantiles themselves coincide."""
    for digits in range(3, 16):
        floor = _ceil_sig(cheapest, digits)
        budgets = tuple(max(_round_sig(float(b), digits), floor) for b in raw)
        if len(set(budgets)) == len(budgets):
            return budgets
    return None


#: Spaces up to this many architectures are enumerated for `measured_floor` (NAS-Bench-201's
#: 15,625 cells take a few milliseconds).
_ENUMERABLE = 200_000


def measured_floor(space: SearchSpace, table: CostTable, cost: str, prune: str) -> float:
    """The cheapest `cost` among the cells a search with `prune` measures: the table's cheapest
    architecture as drawn may prune to a dearer cell (a measured latency is not a sum: the
    all-none cell of NAS-Bench-201 is slower on raspi4 than some cells with dead operations).
    Spaces too large to enumerate give the table's cheapest (a lower bound)."""
    cheapest, _ = table.extreme(cost, cheapest=True)
    if prune == "keep" or space.size > _ENUMERABLE:
        return cheapest
    grids = np.meshgrid(*(np.arange(n) for n in space.n_options), indexing="ij")
    archs = np.stack([g.ravel() for g in grids], axis=1).astype(np.int64)
    return float(table.cost(cost, np.unique(space.prune(archs, prune), axis=0)).min())


def _uniform_costs(table: CostTable, cost: str, rng: np.random.Generator) -> np.ndarray:
    n_options = table.valid.sum(axis=1)
    archs = rng.integers(0, n_options, size=(20_000, len(n_options)))
    return table.cost(cost, archs)


def _round_sig(value: float, digits: int = 3) -> float:
    if value == 0:
        return 0.0
    return float(f"{value:.{digits}g}")


def _ceil_sig(value: float, digits: int) -> float:
    """`value` rounded up to `digits` significant digits (never below it)."""
    rounded = _round_sig(value, digits)
    if rounded >= value or value <= 0:
        return rounded
    step = 10.0 ** (math.floor(math.log10(abs(value))) - digits + 1)
    return max(_round_sig(rounded + step, digits), value)
