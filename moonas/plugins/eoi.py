"""Operation importance and Markov slimming (EoiNAS-style): drop options that keep ranking last.

Importance of option j of choice d in distribution k (defined here; the paper's exact indicator
is not known), recomputed at every check::

    score[k, d, j] = w_prob  * n_kd * pbar[k, d, j]               (smoothed probability)
                   + w_trend * n_kd * interval * trend[k, d, j]   (its drift per check)
                   + w_adv   * adv[k, d, j]                        (mean advantage)

- ``n_kd``: active options of choice d in distribution k (so a uniform row scores 1 per option);
- ``pbar``: exponential moving average of ``theta`` over tells (factor ``smoothing``);
- ``trend``: moving average (same factor) of the per-tell change of ``theta``;
- ``adv``: discounted (``adv_decay`` per tell), importance-weighted mean utility of the evaluated
  architectures that use the option, under distribution k's own ranking: a sample's utility is
  ``1 - 2 q`` with ``q`` its weighted mid-quantile among the step's samples ranked by f_k (best
  +1, worst -1), weighted by ``w_k = p_k / q`` like the update. Options never evaluated score 0.

Rule (a high-order Markov chain on "ranked last"): after ``warmup`` tells, every ``interval``
tells, the lowest-scoring active option of each (k, d) is marked last (none when several tie
for lowest). An option marked last in
at least ``R - 1`` of the last ``R`` checks since its row last changed, and whose smoothed
probability is below ``gate`` times uniform (``n_kd * pbar < gate``), is removed from k's space
(at most one option per row and check; a row keeps at least ``min_options``). Removing resets
the row's history. The gate and ``min_options = 2`` exist because removal ends ASNG's margin
exploration: on NAS-Bench-201 an ungated rule with one option kept cut every distribution down
to one architecture and the search stalled at ~340 distinct evaluations (results/eoi.md). Supernet weights of an option can be freed once no distribution keeps it
(``freed_options``).
"""

from __future__ import annotations

import math

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from moonas.asng import MultiASNG
from moonas.asng.importance import budget_keys, coefficient_keys, dense_ranks, importance_weights
from moonas.errors import CheckpointError, ConfigError
from moonas.plugins import Plugin

__all__ = ["EoiConfig", "EoiPlugin", "centred_utilities", "freed_options"]


@dataclass(frozen=True)
class EoiConfig:
    """Settings of the operation-importance plug-in (``search.eoi``); off by default."""

    enabled: bool = False
    interval: int = 20  # tells between two checks
    R: int = 5  # Markov order: removed when last in >= R - 1 of the last R checks
    warmup: int = 100  # tells before the first check
    smoothing: float = 0.9  # EMA factor of the probability and trend histories
    adv_decay: float = 0.95  # per-tell discount of the advantage sums
    w_prob: float = 1.0
    w_trend: float = 1.0
    w_adv: float = 1.0
    min_options: int = 2  # options a choice keeps in every distribution
    gate: float = 0.5  # removable only while n_kd * pbar < gate (below gate x uniform); inf: off

    def __post_init__(self) -> None:
        if int(self.interval) < 1:
            raise ConfigError(f"search.eoi.interval={self.interval}: use interval >= 1 "
                              "(default 20)")
        if int(self.R) < 2:
            raise ConfigError(f"search.eoi.R={self.R}: use R >= 2 (default 5)")
        if int(self.warmup) < 0:
            raise ConfigError(f"search.eoi.warmup={self.warmup}: use warmup >= 0 (default 100)")
        if not 0.0 <= self.smoothing < 1.0:
            raise ConfigError(f"search.eoi.smoothing={self.smoothing}: use 0 <= smoothing < 1 "
                              "(default 0.9)")
        if not 0.0 <= self.adv_decay <= 1.0:
            raise ConfigError(f"search.eoi.adv_decay={self.adv_decay}: use 0 <= adv_decay <= 1 "
                              "(default 0.95)")
        if int(self.min_options) < 1:
            raise ConfigError(f"search.eoi.min_options={self.min_options}: use min_options >= 1 "
                              "(default 2)")
        if not self.gate > 0:
            raise ConfigError(f"search.eoi.gate={self.gate}: use gate > 0 "
                              "(default 0.5; inf turns it off)")
        for name in ("w_prob", "w_trend", "w_adv"):
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"search.eoi.{name}={getattr(self, name)}: use a finite "
                                  "weight of the importance score (default 1)")


def centred_utilities(ranks: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``1 - 2 q`` per sample, (K, M) from dense ranks and importance weights (K, M).

    ``q``: the weighted mid-quantile of the sample's rank group (mass of better groups plus half
    its own, over the total); best near +1, worst near -1, ties share one value. A row with no
    weight gives 0.
    """
    ranks = np.asarray(ranks, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.float64)
    out = np.zeros(ranks.shape)
    for k in range(ranks.shape[0]):
        total = weights[k].sum()
        if not total > 0:
            continue
        mass = np.bincount(ranks[k], weights=weights[k]) / total
        mid = np.cumsum(mass) - 0.5 * mass
        out[k] = 1.0 - 2.0 * mid[ranks[k]]
    return out


def freed_options(core: MultiASNG) -> list[tuple[int, int]]:
    """(choice, option) pairs of the space that no distribution keeps: their weights can go."""
    stack = core.stack
    exists = np.arange(stack.n_max)[None, :] < np.asarray(stack.n_options)[:, None]
    dropped = exists & ~stack.mask.any(axis=0)
    return [(int(d), int(j)) for d, j in zip(*np.nonzero(dropped))]


def _safe_weights(log_p: np.ndarray) -> np.ndarray:
    """Importance weights (K, M); an architecture no distribution can draw any more (it uses a
    removed option everywhere, e.g. proposed by another plug-in) gets weight 0."""
    drawable = np.isfinite(log_p).any(axis=0)
    weights = np.zeros(log_p.shape)
    if drawable.any():
        weights[:, drawable] = importance_weights(log_p[:, drawable])
    return weights


class EoiPlugin(Plugin):
    """Scores every (distribution, choice, option) and removes persistent losers (see module)."""

    name = "eoi"

    def __init__(self, config: EoiConfig, targets: np.ndarray, mode: str,
                 cost_max: float | None = None) -> None:
        """``targets``/``mode``: the core's objectives (``"budgets"`` or ``"coefficients"``),
        ``cost_max``: the coefficient mode's cost scale (None: largest cost seen)."""
        if mode not in ("budgets", "coefficients"):
            raise ConfigError(f"mode={mode!r}: use 'budgets' or 'coefficients'")
        self.config = config
        self.mode = mode
        self.targets = np.asarray(targets, dtype=np.float64).reshape(-1)
        self.cost_max = cost_max
        self._cost_max_seen = 0.0
        self._n_tells = 0
        self._n_checks = 0
        self._pbar: np.ndarray | None = None  # (K, D, Kmax)
        self._prev: np.ndarray | None = None
        self._trend: np.ndarray | None = None
        self._adv_num: np.ndarray | None = None
        self._adv_den: np.ndarray | None = None
        self._last: np.ndarray | None = None  # (R, K, D, Kmax) bool ring of "ranked last"
        self._filled: np.ndarray | None = None  # (K, D) checks recorded since the row changed
        self._mask: np.ndarray | None = None  # (K, D, Kmax) the active options last seen

    @classmethod
    def for_core(cls, config: EoiConfig, core: MultiASNG,
                 cost_max: float | None = None) -> "EoiPlugin":
        """A plug-in ranking by the objectives of ``core`` (its mode and targets); ``cost_max``
        as given to the core (coefficient mode)."""
        state = core.state_dict()
        return cls(config, state["targets"], state["mode"], cost_max)

    # ------------------------------------------------------------------------------ hooks
    def observe(self, archs: np.ndarray, losses: np.ndarray, costs: np.ndarray,
                core: MultiASNG) -> dict[str, Any]:
        """Update the histories from one evaluated step; check and remove on schedule."""
        if not self.config.enabled:
            return {}
        theta = core.thetas
        self._ensure(theta)
        cfg = self.config
        archs = np.asarray(archs, dtype=np.int64)
        losses = np.asarray(losses, dtype=np.float64).reshape(-1)
        costs = np.asarray(costs, dtype=np.float64).reshape(-1)

        self._rows_changed(core)
        # Probability history: EMA of theta and of its per-tell change.
        self._trend = cfg.smoothing * self._trend + (1 - cfg.smoothing) * (theta - self._prev)
        self._pbar = cfg.smoothing * self._pbar + (1 - cfg.smoothing) * theta
        self._prev = theta

        # Advantage: each distribution ranks the samples by its own objective.
        weights = _safe_weights(core.told_log_prob(archs))  # (K, M): the update's own
        utils = centred_utilities(dense_ranks(self._keys(losses, costs)), weights)
        onehot = np.zeros((archs.shape[0], *theta.shape[1:]))
        onehot[np.arange(archs.shape[0])[:, None], np.arange(theta.shape[1])[None, :], archs] = 1.0
        self._adv_num = (cfg.adv_decay * self._adv_num
                         + np.einsum("km,mdj->kdj", weights * utils, onehot))
        self._adv_den = cfg.adv_decay * self._adv_den + np.einsum("km,mdj->kdj", weights, onehot)
        self._n_tells += 1

        if self._n_tells < cfg.warmup or (self._n_tells - cfg.warmup) % cfg.interval != 0:
            return {}
        removed = self._check(core)
        return {"eoi_removed": removed} if removed else {}

    def scores(self, mask: np.ndarray) -> np.ndarray:
        """Importance of each option, (K, D, Kmax); -inf where ``mask`` (K, D, Kmax) is off."""
        if self._pbar is None:
            raise RuntimeError("no step observed yet")
        cfg = self.config
        n_active = mask.sum(axis=-1, keepdims=True)
        adv = np.divide(self._adv_num, self._adv_den, out=np.zeros_like(self._adv_num),
                        where=self._adv_den > 1e-12)
        score = (cfg.w_prob * n_active * self._pbar
                 + cfg.w_trend * n_active * cfg.interval * self._trend
                 + cfg.w_adv * adv)
        return np.where(mask, score, -np.inf)

    def _check(self, core: MultiASNG) -> list[list[int]]:
        cfg = self.config
        mask = np.array(core.stack.mask)
        score = self.scores(mask)
        active = np.where(mask, score, np.inf)
        lowest = np.argmin(active, axis=-1)  # (K, D)
        last = np.zeros_like(mask)
        np.put_along_axis(last, lowest[..., None], True, axis=-1)
        # A tie for lowest marks no option: "last" would be the tie-break's (the lowest index,
        # `none` on nb201), not the scores'.
        unique = (active == active.min(axis=-1, keepdims=True)).sum(axis=-1) == 1
        last &= mask & unique[..., None]
        self._last[self._n_checks % cfg.R] = last
        self._n_checks += 1
        self._filled = np.minimum(self._filled + 1, cfg.R)

        count = self._last.sum(axis=0)  # (K, D, Kmax) over the ring
        ready = (self._filled >= cfg.R) & (mask.sum(axis=-1) > cfg.min_options)  # (K, D)
        removed = []
        for k, d in zip(*np.nonzero(ready)):
            n_kd = mask[k, d].sum()
            candidates = np.flatnonzero(mask[k, d] & (count[k, d] >= cfg.R - 1)
                                        & (n_kd * self._pbar[k, d] < cfg.gate))
            if len(candidates) == 0:
                continue
            j = int(candidates[np.argmin(score[k, d, candidates])])
            core.stack.remove_option(int(k), int(d), j)
            self._last[:, k, d] = False
            self._filled[k, d] = 0
            removed.append([int(k), int(d), j])
        if removed:
            # Renormalisation moved mass: restart the drift from the new probabilities.
            self._prev = core.thetas
            self._pbar = np.where(core.stack.mask, self._pbar, 0.0)
            self._mask = np.array(core.stack.mask)
        return removed

    def _rows_changed(self, core: MultiASNG) -> None:
        """Rows whose options another plug-in removed (the angle's shrinking) since the last
        tell start over as this plug-in's own removals do: their "last" history is cleared, and
        the renormalisation is not taken for a drift of the probabilities."""
        mask = np.array(core.stack.mask)
        if self._mask is not None and self._mask.shape == mask.shape:
            changed = (mask != self._mask).any(axis=-1)  # (K, D)
            if changed.any():
                self._last[:, changed] = False
                self._filled[changed] = 0
                self._prev[changed] = core.thetas[changed]
                self._pbar = np.where(mask, self._pbar, 0.0)
        self._mask = mask

    def _keys(self, losses: np.ndarray, costs: np.ndarray) -> np.ndarray:
        if self.mode == "budgets":
            return budget_keys(losses, costs, self.targets)
        self._cost_max_seen = max(self._cost_max_seen, float(np.max(costs)))
        cost_max = self.cost_max if self.cost_max is not None else self._cost_max_seen
        return coefficient_keys(losses, costs, self.targets, cost_max if cost_max > 0 else 1.0)

    def _ensure(self, theta: np.ndarray) -> None:
        """Start the histories at the first observed ``theta`` (K, D, Kmax)."""
        shape = theta.shape
        if self._pbar is not None:
            if self._pbar.shape != shape:
                raise ValueError(f"plug-in state is for thetas {self._pbar.shape}, not {shape}")
            return
        if self.targets.shape[0] != shape[0]:
            raise ConfigError(f"{self.targets.shape[0]} targets for K={shape[0]} distributions")
        self._pbar = theta.copy()
        self._prev = theta.copy()
        self._trend = np.zeros(shape)
        self._adv_num = np.zeros(shape)
        self._adv_den = np.zeros(shape)
        self._last = np.zeros((self.config.R, *shape), dtype=bool)
        self._filled = np.zeros(shape[:2], dtype=np.int64)

    # ------------------------------------------------------------------------ persistence
    _ARRAYS = ("_pbar", "_prev", "_trend", "_adv_num", "_adv_den", "_last", "_filled", "_mask")
    _OPTIONAL = ("_mask",)  # absent from checkpoints written before it existed

    def state_dict(self) -> dict[str, Any]:
        """Counters and histories (plain numpy arrays and python scalars)."""
        state: dict[str, Any] = {"n_tells": self._n_tells, "n_checks": self._n_checks,
                                 "cost_max_seen": self._cost_max_seen, "R": int(self.config.R)}
        for name in self._ARRAYS:
            value = getattr(self, name)
            state[name.lstrip("_")] = None if value is None else value.copy()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        try:
            if int(state["R"]) != int(self.config.R):
                raise CheckpointError(f"eoi state was saved with R={state['R']}: resume with it")
            arrays = {name: (state.get(name.lstrip("_")) if name in self._OPTIONAL
                             else state[name.lstrip("_")]) for name in self._ARRAYS}
            n_tells, n_checks = int(state["n_tells"]), int(state["n_checks"])
            cost_max_seen = float(state["cost_max_seen"])
        except KeyError as err:
            raise CheckpointError(f"eoi state lacks key {err}; save it with "
                                  "EoiPlugin.state_dict()") from err
        for name, value in arrays.items():
            dtype = (bool if name in ("_last", "_mask")
                     else np.int64 if name == "_filled" else np.float64)
            setattr(self, name, None if value is None else np.array(value, dtype=dtype))
        self._n_tells, self._n_checks, self._cost_max_seen = n_tells, n_checks, cost_max_seen
