"""Proxy validation loss (PVLL-NAS): an online loss predictor that screens the samples to evaluate.

What it does (DESIGN 5). A regressor from an architecture encoding to the observed validation
loss (``moonas.plugins.predictors``: the encodings and regressors, and what each measured),
fitted on a FIFO memory of the most recent (architecture, loss) pairs and refitted every
``refit_every`` new pairs. Once it has seen ``min_observations`` pairs, ``propose`` screens:
for each row that ``core.ask`` drew from distribution k, it draws ``pool`` more candidates
from k and replaces the row by the candidate whose *predicted* ranking key under k's objective
is best (predicted loss; Deb's rule or the cost coefficient when the plug-in knows the cost,
see ``set_objective``).
A share ``explore`` of the rows is left as drawn, except in the greedy phase.

Greedy phase (``greedy_until``, 150 by default since session 9). Until the memory has seen
that many pairs, every row is screened: the search is a model-based local search from the first
fit on (``min_observations``), and the distributions, told only unscreened rows (``tell:
unscreened``, the default), wait. Measured on NAS-Bench-201 (tuned settings, smoothed picks,
seeds 0-259 of each cost, paired; results/plugins_seeded.md): 150 against 0 lowered the mean
regret at 100 evaluations by 0.031 (params) and 0.035 (MACs) points, both intervals below 0,
and the signal regret by 0.08-0.09; at 300 and 1000 the differences are inside -0.008 to
+0.002 with intervals across 0; the median HV ratio rose by 0.0006 at 100 and is level later.
Session 8 had kept it off on 280 seeds whose runs all seeded this plug-in's generator with 0
(results/plugins_greedy.md): it had lost at 1000 there (+0.010) and on seeds 0-19.

Neighbours (``neighbours: true``). Drawn pools mostly repeat what the distribution already
gave, and late in a search that is cells already evaluated. With this switch each screened
pool of k also holds every architecture one choice away from k's *incumbent* (the remembered
architecture with the best observed key under k's objective), and leaves out architectures
already in the memory while enough new ones remain: a local search around each distribution's
best, ranked by the predictor, like the mutation step that lets NSGA-II fill in the front.
On by default: on NAS-Bench-201 it raised the median HV ratio at 100 and 300 evaluations on
every seed set measured (results/plugins_significance.md, results/plugins_2026-12-02.md).

Crossover (``crossover``, children per screened row; ``parents``). Moves explore one choice
off one cell. With ``crossover`` > 0 each screened pool of k also holds ``crossover`` children
per screened row, each a uniform crossover (every choice from either parent with probability
1/2) of two parents (two memory entries: one cell held twice can be both) among k's
``parents`` best remembered under k's observed
objective: candidates that recombine what several good cells share (what NSGA-II's crossover
and TPE's per-choice draws from its good cells both do, on a landscape close to additive),
ranked by the predictor before anything is measured. Remembered cells (a child equal to a
parent) leave the pool while enough others remain, as with the moves. Default 32 children of 8 parents since session 14: on
NAS-Bench-201 (shipped settings, paired against 0 on seeds 100-139 and 300-379 of both costs,
240 runs; results/plugins_crossover.md) it lowered the mean regret at 300 evaluations by 0.025
points (interval excludes 0), level at 100 and 1000, at the same wall time; 16 or 64 children
and 4 or 16 parents did no better there.

Measured cells (``pruned: true``, the default since session 12). The search measures, prices
and returns an architecture's cell pruned at ``search.prune`` (operations that cannot reach the
output or only see zeros read ``none``); many drawn architectures share one cell. With this
switch the plug-in works on those cells (``cells``, handed over by the strategy layer): the
memory holds them, so the proxy's features are the operations that run, and screening pools and
the incumbents' moves are pruned before they are ranked and checked against the memory, so a
pruned twin of a remembered cell is no new candidate (a move of a pruned cell is checked only
on the choice it changes, as its dead edges read ``none`` whatever k allows). On NAS-Bench-201
(tuned settings, paired against ``false`` on 200 seeds per cost, results/plugins_pruned.md) it
lowered the mean regret at 100 and 300 evaluations on every seed set and cost (by 0.008-0.043),
left it level at 1000 but on one set, and cost 0.0003-0.0011 of median HV ratio at 100;
``false`` is the earlier behaviour, on the archs as drawn.

Front screening (``screen: front``; default ``objective``, the per-distribution rule above).
Linear scalarisations only reach the supported points of a front (its convex hull): on
NAS-Bench-201 the tuned coefficients aim at 0.13, 0.37, 0.64 and 1.07 M params, none near the
25th, 50th or 75th cost percentile. With ``front`` the screened rows of a step are chosen
together, one at a time, by *predicted hypervolume gain* over the remembered front (observed
loss, cost; ``moonas.pareto.improvements_2d``; a candidate that adds nothing ranks by how far its
predicted loss falls short), each chosen one joining the front with its predicted loss. The
pool: ``pool`` draws per row from the row's distribution and, with ``neighbours``, every
one-choice move of every remembered front member. No budgets needed, and it needs the cost
(``set_objective``); otherwise it falls back to ``objective``. Measured in
results/plugins_found.md; not the default.

Importance weights. ``core.tell`` weights every told sample by ``p_k / q`` with q the mixture
that ``ask`` samples from. A screened row does not come from q (it comes from q tilted towards
low predicted loss, a density with no closed form), so its weight is wrong. The choice is the
config's ``tell``:

- ``"unscreened"`` (default): only the rows left as drawn are told to the core (they are exact
  draws from q, so ``p_k / q`` is exact and the update stays unbiased); the screened rows are
  still evaluated, enter the predictor's memory and the front (the harness builds its front
  and picks from every evaluation), but do not move the distributions. ``tell_mask`` says which
  rows to tell. With ``explore`` at 0.5 and M = 5 that is 2-3 told rows per step (none in the
  greedy phase).
- ``"all"``: every row is told as if drawn from q. Biased (a greedy push towards what the
  predictor likes, an elitist step), kept as the measured alternative.

Operation importance. ``importance(core)`` returns per distribution and choice
``d = g2 / sum_d g2`` (normalised by the sum, DESIGN's ``G^2 / ||G^2||`` read with an L1 norm),
``g2[d] = sum_j theta_kdj * (a_dj - sum_i theta_kdi a_di)^2``: the Fisher (theta-weighted)
squared norm of the gradient of the expected predicted loss w.r.t. theta_kd. ``a`` is the
model's additive part, its one-hot block (``option_weights``); with the default pairs
features the pair terms are left out, so d is the importance of each choice alone. With ``damp > 0`` the screening pool of k is drawn
from theta_k sharpened on the important choices (``theta^(1 + damp * D * d)``, renormalised),
which damps sampling noise where the predicted loss says a choice matters.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from moonas.asng import MultiASNG
from moonas.asng.importance import budget_keys, coefficient_keys
from moonas.errors import CheckpointError, ConfigError
from moonas.pareto import front_2d, improvements_2d
from moonas.plugins import Plugin
from moonas.plugins.predictors import (DEFAULT_RIDGE, FEATURES, PREDICTORS, KernelPredictor,
                                       PairsRidgePredictor, Predictor, RidgePredictor)
from moonas.threads import blas_threads

__all__ = ["PVLLConfig", "PVLLPlugin", "make_predictor", "neighbours_of"]

log = logging.getLogger(__name__)

#: Costs of architectures (n, D) -> (n,), for screening by the predicted objective of k.
CostFn = Callable[[np.ndarray], np.ndarray]
#: What the search measures for architectures (n, D): the cells (n, D), e.g. pruned.
CellFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class PVLLConfig:
    """Knobs of the proxy-validation-loss plug-in (``search.pvll``); on by default for
    multi-asng (the best measured combination on NAS-Bench-201: results/plugins.md)."""

    enabled: bool = True
    memory: int = 500                    # FIFO capacity of (arch, loss) pairs
    refit_every: int = 10                # new pairs between refits
    min_observations: int = 30           # no screening before the first fit on this many
    pool: int = 16                       # candidates drawn per screened row
    explore: float = 0.5                 # share of rows left as drawn (exploration)
    tell: Literal["unscreened", "all"] = "unscreened"
    features: Literal["onehot", "pairs", "gae"] = "pairs"  # one-hot + pairs of choices
    predictor: Literal["ridge", "kernel"] = "ridge"
    ridge: float | None = None           # L2 penalty, standardised targets (None: see ``l2``)
    damp: float = 0.0                    # sharpening of the pool on important choices
    neighbours: bool = True              # pools also hold the incumbent's one-choice moves
    greedy_until: int = 150              # observations before which every row is screened
    screen: Literal["objective", "front"] = "objective"  # what a screened row is chosen by
    pruned: bool = True                  # learn and screen the cells as measured (pruned)
    crossover: int = 32                  # children bred per screened row (0: none)
    parents: int = 8                     # k's best remembered cells that breed them

    def __post_init__(self) -> None:
        if self.memory < 2:
            raise ConfigError(f"search.pvll.memory={self.memory}: use memory >= 2 (default 500)")
        if self.refit_every < 1:
            raise ConfigError(f"search.pvll.refit_every={self.refit_every}: use >= 1 (default 10)")
        if self.min_observations < 2:
            raise ConfigError(f"search.pvll.min_observations={self.min_observations}: use >= 2")
        if self.pool < 1:
            raise ConfigError(f"search.pvll.pool={self.pool}: use pool >= 1 (default 16)")
        if not 0.0 <= self.explore <= 1.0:
            raise ConfigError(f"search.pvll.explore={self.explore}: use 0 <= explore <= 1")
        if self.tell not in ("unscreened", "all"):
            raise ConfigError(f"search.pvll.tell={self.tell!r}: use 'unscreened' or 'all'")
        if self.features not in FEATURES:
            raise ConfigError(f"search.pvll.features={self.features!r}: use 'onehot', 'pairs' "
                              "or 'gae'")
        if self.predictor not in PREDICTORS:
            raise ConfigError(f"search.pvll.predictor={self.predictor!r}: use 'ridge' or 'kernel'")
        if self.ridge is not None and not self.ridge > 0:
            raise ConfigError(f"search.pvll.ridge={self.ridge}: use ridge > 0 or leave it unset "
                              "(1.0 for ridge, 0.1 for kernel)")
        if not 0 <= self.damp < float("inf"):  # NaN too
            raise ConfigError(f"search.pvll.damp={self.damp}: use a finite damp >= 0 (default 0)")
        if not isinstance(self.neighbours, bool):
            raise ConfigError(f"search.pvll.neighbours={self.neighbours!r}: use true or false")
        if self.greedy_until < 0:
            raise ConfigError(f"search.pvll.greedy_until={self.greedy_until}: use >= 0 "
                              "observations (0: no greedy phase; default 150)")
        if not isinstance(self.pruned, bool):
            raise ConfigError(f"search.pvll.pruned={self.pruned!r}: use true or false")
        if isinstance(self.crossover, bool) or self.crossover < 0:
            raise ConfigError(f"search.pvll.crossover={self.crossover!r}: use >= 0 children per "
                              "screened row (0: no crossover)")
        if isinstance(self.parents, bool) or self.parents < 2:
            raise ConfigError(f"search.pvll.parents={self.parents!r}: use >= 2 parents "
                              "(default 8)")
        if self.screen not in ("objective", "front"):
            raise ConfigError(f"search.pvll.screen={self.screen!r}: use 'objective' (each "
                              "distribution's own objective) or 'front' (predicted hypervolume "
                              "gain)")

    def explore_share(self, observed: int) -> float:
        """The share of a step's rows left as drawn once ``observed`` pairs were seen: 0 in the
        greedy phase (fewer than ``greedy_until``), ``explore`` after it. ``explore`` 1 (record
        only, screen nothing) holds in the greedy phase too."""
        if observed < self.greedy_until and self.explore < 1.0:
            return 0.0
        return self.explore

    @property
    def l2(self) -> float:
        """The L2 penalty in use: ``ridge``, or the predictor's default when unset."""
        return DEFAULT_RIDGE[self.predictor] if self.ridge is None else float(self.ridge)



def make_predictor(config: PVLLConfig, n_options: tuple[int, ...]) -> Predictor:
    """The regressor the config names, on the encoding it names (ridge on pairs: its dual)."""
    if config.predictor == "kernel":
        return KernelPredictor(n_options, config.features, config.l2)
    if config.features == "pairs":
        return PairsRidgePredictor(n_options, config.l2)
    return RidgePredictor(n_options, config.features, config.l2)


class PVLLPlugin(Plugin):
    """Online loss predictor screening the samples of a MultiASNG search (see module doc)."""

    name = "pvll"

    def __init__(self, config: PVLLConfig, n_options: tuple[int, ...], K: int,
                 rng: np.random.Generator | int | None = None, cells: CellFn | None = None
                 ) -> None:
        self.config = config
        # What the search measures for an architecture (its pruned cell); used with ``pruned``.
        self._cells = cells if config.pruned and cells is not None else None
        self.n_options = tuple(int(n) for n in n_options)
        self.K = int(K)
        # Own generator for the exploration choice, so screening never shifts the caller's.
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.predictor = make_predictor(config, self.n_options)
        self._archs = np.zeros((0, len(self.n_options)), dtype=np.int64)
        self._losses = np.zeros(0)
        self._since_fit = 0
        self.n_fits = 0
        self.n_observed = 0
        self._screened = np.zeros(0, dtype=bool)
        self._cost: CostFn | None = None
        self._budgets: np.ndarray | None = None
        self._coefficients: np.ndarray | None = None
        self._cost_max = 1.0

    # ------------------------------------------------------------------------- objective
    def set_objective(self, cost: CostFn, budgets: np.ndarray | None = None,
                      coefficients: np.ndarray | None = None, cost_max: float = 1.0) -> None:
        """Let screening rank by k's predicted objective (budgets or coefficients, as the core)
        instead of by predicted loss alone; ``cost`` must be cheap (a table or cost model)."""
        if (budgets is None) == (coefficients is None):
            raise ConfigError("give exactly one of budgets= or coefficients=")
        self._cost = cost
        self._budgets = None if budgets is None else np.asarray(budgets, dtype=np.float64)
        self._coefficients = (None if coefficients is None
                              else np.asarray(coefficients, dtype=np.float64))
        self._cost_max = float(cost_max) if cost_max > 0 else 1.0

    # ----------------------------------------------------------------------- ask side
    @property
    def active(self) -> bool:
        """Whether the predictor is fitted, i.e. whether ``propose`` screens."""
        return self.predictor.fitted

    def propose(self, rng: np.random.Generator, core: MultiASNG, archs: np.ndarray) -> np.ndarray:
        """Screened architectures (M, D): each non-exploration row from distribution k is
        replaced by the best of ``pool`` draws from k under the predicted objective of k."""
        archs = np.asarray(archs, dtype=np.int64)
        m = archs.shape[0]
        self._screened = np.zeros(m, dtype=bool)
        explore = self.config.explore_share(self.n_observed)
        if not self.active or explore >= 1.0:
            return archs
        per = m // core.K
        source = np.repeat(np.arange(core.K), per)
        if len(source) != m:  # not grouped by k (not from ask): nothing to screen against
            return archs
        n_screen = int(round((1.0 - explore) * m))
        rows = np.sort(self.rng.choice(m, size=n_screen, replace=False))
        out = archs.copy()
        thetas = self._pool_thetas(core)
        if self.config.screen == "front" and self._cost is not None and len(self._losses):
            out[rows] = self._front_choice(rng, thetas, np.bincount(source[rows], minlength=core.K))
            self._screened[rows] = True
            return out
        memory_costs = (self._memory_costs()
                        if self.config.neighbours or self.config.crossover > 0 else None)
        for k in np.unique(source[rows]):
            mine = rows[source[rows] == k]
            pool = self._measured(_sample(thetas[k], rng, len(mine) * self.config.pool))
            if self.config.crossover > 0:
                pool = np.concatenate([pool, self._children(rng, int(k),
                                                            len(mine) * self.config.crossover,
                                                            thetas[k] > 0, memory_costs)])
            if self.config.neighbours:
                pool = self._with_neighbours(pool, int(k), thetas[k] > 0, memory_costs)
            if self.config.neighbours or self.config.crossover > 0:
                pool = self._fresh(pool, len(mine))
            best = self._order(pool, int(k))
            # Distinct candidates first: screening two rows into one arch wastes a row.
            _, first = np.unique(pool[best], axis=0, return_index=True)
            order = best[np.sort(first)]
            if len(order) < len(mine):
                order = np.concatenate([order, best[~np.isin(best, order)]])
            out[mine] = pool[order[:len(mine)]]
        self._screened[rows] = True
        return out

    def _front_choice(self, rng: np.random.Generator, thetas: np.ndarray,
                      per_k: np.ndarray) -> np.ndarray:
        """``per_k.sum()`` distinct architectures chosen one by one by predicted hypervolume
        gain over the remembered front (``moonas.pareto.improvements_2d``), each chosen one
        joining the front with its predicted loss. The pool: ``pool`` draws per row from the
        row's distribution and, with ``neighbours``, every one-choice move of every remembered
        front member that some distribution still allows; remembered architectures are left out
        while enough others remain."""
        need = int(per_k.sum())
        pools = [self._measured(_sample(thetas[k], rng, int(n) * self.config.pool))
                 for k, n in enumerate(per_k) if n > 0]
        costs = self._memory_costs()
        front = np.stack([self._losses, costs], axis=1)
        on_front = front_2d(self._losses, costs)  # rows, by cost
        if self.config.neighbours:
            pools.append(self._moves(np.unique(self._archs[on_front], axis=0),
                                     (thetas > 0).any(axis=0)))
        pool = np.unique(np.concatenate(pools), axis=0)
        fresh = ~_rows_in(pool, self._archs)
        if fresh.sum() >= need:
            pool = pool[fresh]
        predicted = np.stack([self.predictor.predict(pool),
                              np.asarray(self._cost(pool), dtype=np.float64)], axis=1)
        reference = np.array([max(float(self._losses.max()), float(predicted[:, 0].max())) + 1e-9,
                              1.1 * max(self._cost_max, float(predicted[:, 1].max()))])
        front = front[on_front]
        chosen: list[int] = []
        left = np.ones(len(pool), dtype=bool)
        for _ in range(min(need, len(pool))):
            score = np.where(left, improvements_2d(front, predicted, reference), -np.inf)
            pick = int(np.argmax(score))
            chosen.append(pick)
            left[pick] = False
            front = np.concatenate([front, predicted[pick:pick + 1]])
        out = pool[chosen]
        if len(out) < need:  # a tiny space: repeat the best
            out = np.concatenate([out, np.repeat(out[:1], need - len(out), axis=0)])
        return out

    def front_samples(self, rng: np.random.Generator, core: MultiASNG, n: int) -> np.ndarray:
        """Dense-front candidates ranked cheaply, (K n, D) grouped by k: from each distribution
        ``n * pool`` draws, of which the ``n - n_explore`` distinct best under k's predicted
        objective are kept, plus ``n_explore = round(explore * n)`` left as drawn. Only the kept
        ones are then evaluated on the validation split, so the predictor chooses among
        ``pool`` times more candidates at the same cost. Inactive: plain draws."""
        thetas = core.thetas
        out = []
        for k in range(core.K):
            if not self.active:
                out.append(_sample(thetas[k], rng, n))
                continue
            n_explore = int(round(self.config.explore * n))
            drawn = _sample(thetas[k], rng, max(n - n_explore, 0) * self.config.pool)
            pool = self._measured(drawn)
            best = self._order(pool, k) if len(pool) else np.zeros(0, dtype=np.int64)
            _, first = np.unique(pool[best], axis=0, return_index=True)
            kept = pool[best[np.sort(first)][:n - n_explore]]
            out.append(np.concatenate([kept, _sample(thetas[k], rng, n_explore)]))
        return np.concatenate(out).astype(np.int64)

    def _memory_costs(self) -> np.ndarray | None:
        """Costs (n,) of the remembered architectures, or None without a cost."""
        if self._cost is None or len(self._losses) == 0:
            return None
        return np.asarray(self._cost(self._archs), dtype=np.float64)

    def incumbent(self, k: int, costs: np.ndarray | None = None) -> np.ndarray | None:
        """The remembered architecture (D,) with the best observed key under k's objective
        (loss alone when the plug-in has no cost), or None with an empty memory. ``costs``:
        the memory's costs when already priced (``_memory_costs``)."""
        if len(self._losses) == 0:
            return None
        return self._archs[int(self._ranked(k, costs)[0])]

    def _ranked(self, k: int, costs: np.ndarray | None = None) -> np.ndarray:
        """Indices of the remembered pairs, best first under k's observed objective (loss
        alone without a cost; ties keep the memory's order)."""
        if self._cost is None:
            return np.argsort(self._losses, kind="stable")
        costs = self._memory_costs() if costs is None else costs
        if self._budgets is not None:
            key = budget_keys(self._losses, costs, self._budgets[k:k + 1])[0]
            return np.lexsort((key[:, 1], key[:, 0]))
        key = coefficient_keys(self._losses, costs, self._coefficients[k:k + 1], self._cost_max)[0]
        return np.argsort(key, kind="stable")

    def _children(self, rng: np.random.Generator, k: int, n: int, allowed: np.ndarray,
                  costs: np.ndarray | None = None) -> np.ndarray:
        """n uniform-crossover children, as measured, of two parents (two memory entries, which
        can hold one cell twice) among k's ``parents`` best remembered (each choice from either parent with probability
        1/2); none while fewer than two are remembered. A child with an option k removed
        (``allowed`` (D, Kmax) bool) is dropped, unless the pruning put it there (a dead
        choice of the measured cell reads ``none`` whatever k allows, as in ``_moves``)."""
        top = self._archs[self._ranked(k, costs)[:self.config.parents]]
        if len(top) < 2 or n < 1:
            return np.zeros((0, len(self.n_options)), dtype=np.int64)
        a = rng.integers(len(top), size=n)
        b = (a + rng.integers(1, len(top), size=n)) % len(top)  # another parent
        kids = np.where(rng.random((n, top.shape[1])) < 0.5, top[a], top[b])
        cells = self._measured(kids)
        return cells[self._reachable(cells, allowed)]

    def _with_neighbours(self, pool: np.ndarray, k: int, allowed: np.ndarray,
                         memory_costs: np.ndarray | None = None) -> np.ndarray:
        """The pool plus the one-choice moves of k's incumbent that k allows (``_moves``;
        ``allowed`` (D, Kmax) bool: removed options, e.g. by EoiNAS or the angle, never come
        back). ``propose`` then leaves out remembered architectures (``_fresh``)."""
        best = self.incumbent(k, memory_costs)
        if best is None:
            return pool
        return np.concatenate([pool, self._moves(best[None], allowed)])

    def _fresh(self, pool: np.ndarray, need: int) -> np.ndarray:
        """The pool without remembered architectures while at least ``need`` others remain."""
        fresh = ~_rows_in(pool, self._archs)
        return pool[fresh] if fresh.sum() >= need else pool

    def _measured(self, archs: np.ndarray) -> np.ndarray:
        """What the search measures for archs (n, D): their pruned cells with ``pruned`` (and a
        cell function), else the archs themselves."""
        return archs if self._cells is None else np.asarray(self._cells(archs), dtype=np.int64)

    def _moves(self, bases: np.ndarray, allowed: np.ndarray) -> np.ndarray:
        """The one-choice moves of each of bases (a, D), as measured (``_measured``), that a
        distribution with ``allowed`` (D, Kmax) bool options can draw (``_reachable``)."""
        cells = self._measured(neighbours_of(bases, self.n_options))
        return cells[self._reachable(cells, allowed)]

    def _reachable(self, cells: np.ndarray, allowed: np.ndarray) -> np.ndarray:
        """Rows (n,) bool of measured cells (n, D) that some architecture using only
        ``allowed`` options measures as: on architectures as drawn, the cells' own options
        must be allowed; on pruned cells a removed option may stand where pruning writes it
        (a dead edge reads ``none`` whatever k draws there), checked by putting an allowed
        option in its place and measuring again. Removed options never come back."""
        columns = np.arange(cells.shape[1])[None, :]
        bad = ~allowed[columns, cells]
        clean = ~bad.any(axis=1)
        if self._cells is None or clean.all():
            return clean
        swapped = np.where(bad, np.argmax(allowed, axis=1)[None, :], cells)  # first allowed
        return clean | (self._measured(swapped) == cells).all(axis=1)

    def tell_mask(self, m: int) -> np.ndarray:
        """Rows (m,) bool of the last ``propose`` to tell the core (see module doc)."""
        if self.config.tell == "all" or len(self._screened) != m:
            return np.ones(m, dtype=bool)
        return ~self._screened

    def predict(self, archs: np.ndarray) -> np.ndarray:
        """Predicted losses (n,) of archs (n, D), e.g. to rank front candidates cheaply."""
        return self.predictor.predict(np.asarray(archs, dtype=np.int64))

    def _order(self, archs: np.ndarray, k: int) -> np.ndarray:
        """Indices of archs (n, D), best first under distribution k's predicted objective."""
        pred = self.predictor.predict(archs)
        if self._cost is None:
            return np.argsort(pred, kind="stable")
        costs = np.asarray(self._cost(archs), dtype=np.float64)
        if self._budgets is not None:
            key = budget_keys(pred, costs, self._budgets[k:k + 1])[0]  # (n, 2): excess, loss
            return np.lexsort((key[:, 1], key[:, 0]))
        key = coefficient_keys(pred, costs, self._coefficients[k:k + 1], self._cost_max)[0]
        return np.argsort(key, kind="stable")

    def _pool_thetas(self, core: MultiASNG) -> np.ndarray:
        """Distributions the pools are drawn from, (K, D, Kmax): theta, or sharpened by d."""
        thetas = core.thetas
        if self.config.damp <= 0:
            return thetas
        power = 1.0 + self.config.damp * thetas.shape[1] * self.importance(core)
        sharp = np.where(thetas > 0, thetas ** power[..., None], 0.0)
        return sharp / sharp.sum(axis=-1, keepdims=True)

    def importance(self, core: MultiASNG) -> np.ndarray:
        """Operation importance d, (K, D): per choice the Fisher (theta-weighted) squared norm
        of the gradient of the expected additive predicted loss w.r.t. theta_kd, normalised to
        sum 1 over the choices (see the module docstring)."""
        weights = self.predictor.option_weights()  # (D, Kmax)
        thetas = core.thetas
        expected = (thetas * weights[None]).sum(-1, keepdims=True)  # (K, D, 1)
        centred = np.where(thetas > 0, weights[None] - expected, 0.0)
        g2 = (thetas * centred ** 2).sum(-1)  # (K, D)
        total = g2.sum(axis=1, keepdims=True)
        return np.where(total > 0, g2 / np.where(total > 0, total, 1.0), 1.0 / g2.shape[1])

    # ---------------------------------------------------------------------- tell side
    def observe(self, archs: np.ndarray, losses: np.ndarray, costs: np.ndarray,
                core: MultiASNG) -> dict[str, Any]:
        """Add the evaluated pairs (finite losses) to the FIFO memory; refit on schedule."""
        # The memory holds what was measured: with ``pruned``, cells without dead operations.
        archs = self._measured(np.asarray(archs, dtype=np.int64))
        losses = np.asarray(losses, dtype=np.float64).reshape(-1)
        keep = np.isfinite(losses)
        self.add(archs[keep], losses[keep])
        fields: dict[str, Any] = {"pvll_memory": len(self._losses), "pvll_fits": self.n_fits,
                                  "pvll_screened": int(self._screened.sum())}
        return fields

    def add(self, archs: np.ndarray, losses: np.ndarray) -> bool:
        """Append pairs to the memory (oldest dropped past ``memory``); True if it refitted."""
        cap = self.config.memory
        self._archs = np.concatenate([self._archs, np.asarray(archs, dtype=np.int64)])[-cap:]
        self._losses = np.concatenate([self._losses, np.asarray(losses, dtype=np.float64)])[-cap:]
        self.n_observed += len(losses)
        self._since_fit += len(losses)
        due = self._since_fit >= self.config.refit_every or not self.predictor.fitted
        if due and self.n_observed >= self.config.min_observations:
            with blas_threads(1):  # a small solve: more threads only contend (with torch's too)
                self.predictor.fit(self._archs, self._losses)
            self._since_fit = 0
            self.n_fits += 1
            return True
        return False

    @property
    def memory(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the remembered (archs (n, D), losses (n,)), oldest first."""
        return self._archs.copy(), self._losses.copy()

    # ---------------------------------------------------------------------- persistence
    def state_dict(self) -> dict[str, Any]:
        return {
            "archs": self._archs.copy(), "losses": self._losses.copy(),
            "since_fit": self._since_fit, "n_fits": self.n_fits, "n_observed": self.n_observed,
            "predictor": self.predictor.state_dict(),
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        predictor = make_predictor(self.config, self.n_options)
        try:
            archs = np.asarray(state["archs"], dtype=np.int64).reshape(-1, len(self.n_options))
            losses = np.asarray(state["losses"], dtype=np.float64).reshape(-1)
            self._since_fit = int(state["since_fit"])
            self.n_fits = int(state["n_fits"])
            self.n_observed = int(state["n_observed"])
            # The model as last fitted (the memory may have moved on since); states saved
            # before the predictor had its own carry a ridge model's keys at the top.
            predictor.load_state_dict(state["predictor"] if "predictor" in state else state)
            self.rng.bit_generator.state = state["rng"]
        except KeyError as err:
            raise CheckpointError(f"pvll state lacks key {err}; save it with state_dict() of a "
                                  "plug-in with the same features and predictor") from err
        self._archs, self._losses = archs, losses
        self.predictor = predictor
        self._screened = np.zeros(0, dtype=bool)


def neighbours_of(arch: np.ndarray, n_options: tuple[int, ...]) -> np.ndarray:
    """Every architecture one choice away from arch (D,): (sum(n_d - 1), D), choice by choice;
    for several archs (a, D), those of each in turn, (a * sum(n_d - 1), D)."""
    archs = np.asarray(arch, dtype=np.int64)
    single = archs.ndim == 1
    archs = archs.reshape(-1, len(n_options))
    out = []
    for d, n in enumerate(n_options):
        moves = np.repeat(archs[:, None, :], n - 1, axis=1)  # (a, n - 1, D)
        others = np.arange(n - 1)[None, :]
        moves[:, :, d] = others + (others >= archs[:, d:d + 1])  # the other options, ascending
        out.append(moves)
    moves = np.concatenate(out, axis=1)
    return moves[0] if single else moves.reshape(-1, len(n_options))


def _rows_in(rows: np.ndarray, table: np.ndarray) -> np.ndarray:
    """(n,) bool: whether each row of rows (n, D) is a row of table (m, D)."""
    if len(table) == 0:
        return np.zeros(len(rows), dtype=bool)
    seen = {tuple(r) for r in table.tolist()}
    return np.array([tuple(r) in seen for r in rows.tolist()], dtype=bool)


def _sample(theta: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """n architectures (n, D) from one product of categoricals theta (D, Kmax)."""
    cum = np.cumsum(theta, axis=-1)
    # From the last option with mass on, +inf: rounding can never select past it.
    last = theta.shape[1] - 1 - np.argmax(theta[:, ::-1] > 0, axis=-1)
    cum = np.where(np.arange(theta.shape[1]) >= last[:, None], np.inf, cum)
    u = rng.random((n, theta.shape[0]))
    return (u[..., None] >= cum[None]).sum(axis=-1).astype(np.int64)
