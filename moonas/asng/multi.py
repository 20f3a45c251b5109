"""MultiASNG: ask/tell core updating K distributions jointly by importance sampling (DESIGN 4)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from moonas.asng.categorical import CategoricalStack, one_hot
from moonas.asng.importance import (
    UTILITY_METHODS,
    budget_keys,
    coefficient_keys,
    dense_ranks,
    effective_sample_size,
    importance_weights,
    natural_gradients,
    utilities,
)
from moonas.asng.step import StepState, asng_step, initial_state
from moonas.errors import CheckpointError, ConfigError

__all__ = ["MultiASNG", "TellDiagnostics"]


@dataclass(frozen=True)
class TellDiagnostics:
    """What one ``tell`` did, one entry per distribution (length K each).

    ``ess``: effective sample size ``(sum w)^2 / sum w^2`` of its importance weights (M when
    all weights are 1); ``entropy``: entropy in nats after the step; ``delta``: step size
    the next step will use; ``stepped``: False when its gradient was zero.
    """

    ess: tuple[float, ...]
    entropy: tuple[float, ...]
    delta: tuple[float, ...]
    stepped: tuple[bool, ...]


class MultiASNG:
    """K categorical distributions, one per objective, updated from shared samples.

    Objective of distribution k, in one of two modes:

    - ``coefficients`` (eps, shape (K,)): ``f_k = loss + eps_k * cost / cost_max``. When
      ``cost_max`` is None, the largest cost told so far (this tell included) is used.
    - ``budgets`` (strictly increasing, (K,)): Deb's rule, feasible ``cost <= b_k`` by loss
      ahead of infeasible by excess cost.

    ``ask`` draws ``n_per_dist`` architectures from each distribution (M = K n); ``tell``
    weights every sample for every distribution by ``p_k / q`` (q the mixture), ranks all
    samples under each objective, and takes one ASNG step per distribution with its own
    step-size state. With K = 1 this is plain ASNG: all weights are 1 and, for
    ``n_per_dist = 2``, both utility methods give the +1/-1 ranking up to a positive factor,
    which the normalised step removes.
    """

    def __init__(
        self,
        n_options: Sequence[int],
        K: int,
        *,
        coefficients: Sequence[float] | np.ndarray | None = None,
        budgets: Sequence[float] | np.ndarray | None = None,
        n_per_dist: int = 2,
        utility: str = "weighted-quantile",
        delta0: float = 1.0,
        delta_max: float | None = None,
        alpha: float = 1.5,
        rho: float = 0.25,
        cost_max: float | None = None,
    ) -> None:
        if int(K) < 1:
            raise ConfigError(f"K={K} distributions: use K >= 1")
        if (coefficients is None) == (budgets is None):
            raise ConfigError(
                "give exactly one of coefficients= (eps per distribution) or budgets="
            )
        if coefficients is not None:
            values = np.asarray(coefficients, dtype=np.float64).reshape(-1)
            name = "coefficients"
        else:
            values = np.asarray(budgets, dtype=np.float64).reshape(-1)
            name = "budgets"
        if values.shape[0] != int(K):
            raise ConfigError(
                f"{name} has {values.shape[0]} entries but K={K}: give one per distribution"
            )
        if not np.all(np.isfinite(values)):
            raise ConfigError(
                f"{name}={values.tolist()} has non-finite entries: use finite numbers"
            )
        if budgets is not None and np.any(np.diff(values) <= 0):
            raise ConfigError(
                f"budgets={values.tolist()} are not strictly increasing: "
                "sort them, drop duplicates"
            )
        if int(n_per_dist) < 1:
            raise ConfigError(f"n_per_dist={n_per_dist}: use n_per_dist >= 1")
        if int(K) * int(n_per_dist) < 2:
            raise ConfigError(
                "K * n_per_dist < 2 samples per step cannot be ranked: use n_per_dist >= 2"
            )
        if utility not in UTILITY_METHODS:
            raise ConfigError(f"utility={utility!r} is unknown: use one of {list(UTILITY_METHODS)}")
        if not delta0 > 0:
            raise ConfigError(f"delta0={delta0}: use delta0 > 0 (default 1.0)")
        if delta_max is not None and not delta_max >= delta0:
            raise ConfigError(f"delta_max={delta_max} is below delta0={delta0}: use delta_max >= "
                              "delta0, or None for no cap")
        if not alpha > 0:
            raise ConfigError(f"alpha={alpha}: use alpha > 0 (default 1.5)")
        if not 0.0 < rho <= 0.5:
            raise ConfigError(f"rho={rho}: use 0 < rho <= 0.5 (default 0.25)")
        if cost_max is not None and not cost_max > 0:
            raise ConfigError(
                f"cost_max={cost_max}: use cost_max > 0, or None to use the largest cost seen"
            )

        self._stack = CategoricalStack(n_options, int(K))
        self._mode = "coefficients" if coefficients is not None else "budgets"
        self._targets = values
        self._n_per_dist = int(n_per_dist)
        self._utility = utility
        self._rho = float(rho)
        self._delta_max = np.inf if delta_max is None else float(delta_max)
        self._cost_max = None if cost_max is None else float(cost_max)
        self._cost_max_seen = 0.0
        self._n_tells = 0
        shape = self._stack.theta.shape[1:]
        self._states = [initial_state(shape, delta0, alpha) for _ in range(int(K))]
        self._diagnostics: TellDiagnostics | None = None
        self._told: tuple[np.ndarray, np.ndarray] | None = None  # (archs, log_p) of the last tell

    # ------------------------------------------------------------------------- properties
    @property
    def K(self) -> int:
        """Number of distributions."""
        return self._stack.K

    @property
    def n_per_dist(self) -> int:
        """Samples drawn from each distribution per ``ask``."""
        return self._n_per_dist

    @property
    def stack(self) -> CategoricalStack:
        """The distributions (use it to read theta or to remove options)."""
        return self._stack

    @property
    def thetas(self) -> np.ndarray:
        """Copy of the probabilities, (K, D, Kmax)."""
        return self._stack.theta.copy()

    @property
    def states(self) -> tuple[StepState, ...]:
        """Step-size state of each distribution."""
        return tuple(self._states)

    @property
    def diagnostics(self) -> TellDiagnostics | None:
        """Diagnostics of the last ``tell`` (None before the first)."""
        return self._diagnostics

    @property
    def n_tells(self) -> int:
        """Number of ``tell`` calls so far."""
        return self._n_tells

    # ---------------------------------------------------------------------------- ask/tell
    def ask(self, rng: np.random.Generator) -> np.ndarray:
        """Draw ``n_per_dist`` architectures from every distribution, (M, D) int64, grouped by k."""
        archs, _ = self._stack.sample(rng, self._n_per_dist)
        return archs

    def tell(self, archs: np.ndarray, losses: np.ndarray, costs: np.ndarray) -> TellDiagnostics:
        """Update every distribution from evaluated architectures.

        archs: (M, D) ints (any M >= 1; usually those from ``ask``); losses, costs: (M,),
        shared by all distributions, smaller is better. Returns the diagnostics.
        """
        archs = self._stack.check_archs(archs)
        m = archs.shape[0]
        losses = _as_vector(losses, m, "losses")
        costs = _as_vector(costs, m, "costs")
        if not np.all(np.isfinite(costs)):
            raise ValueError("costs must be finite")

        log_p = self._stack.log_prob(archs)  # (K, M), under the thetas that drew them
        self._told = (archs.copy(), log_p.copy())
        weights = importance_weights(log_p)  # (K, M)
        ranks = dense_ranks(self._keys(losses, costs))  # (K, M)
        utils = utilities(ranks, weights, self._utility, self._rho)  # (K, M)
        thetas = self._stack.theta.copy()
        grads = natural_gradients(one_hot(archs, self._stack.n_max), thetas, weights, utils)
        # What |G_k| would be without cancellation; a gradient far below it is rounding noise.
        scales = np.mean(weights * np.abs(utils), axis=1)

        stepped = []
        for k in range(self.K):
            result = asng_step(thetas[k], self._stack.mask[k], grads[k], self._states[k],
                               float(scales[k]), self._delta_max)
            if result.stepped:
                self._stack.set_theta(k, result.theta)
            self._states[k] = result.state
            stepped.append(result.stepped)
        self._n_tells += 1
        self._diagnostics = TellDiagnostics(
            ess=tuple(float(v) for v in effective_sample_size(weights)),
            entropy=tuple(float(v) for v in self._stack.entropy()),
            delta=tuple(float(s.delta) for s in self._states),
            stepped=tuple(stepped),
        )
        return self._diagnostics

    def _keys(self, losses: np.ndarray, costs: np.ndarray) -> np.ndarray:
        """Ranking keys of all samples under each objective, (K, M) or (K, M, 2)."""
        if self._mode == "budgets":
            return budget_keys(losses, costs, self._targets)
        self._cost_max_seen = max(self._cost_max_seen, float(np.max(costs)))
        cost_max = self._cost_max if self._cost_max is not None else self._cost_max_seen
        if not cost_max > 0:
            # All costs so far are 0: the cost term cannot separate anything yet.
            cost_max = 1.0
        return coefficient_keys(losses, costs, self._targets, cost_max)

    def told_log_prob(self, archs: np.ndarray) -> np.ndarray:
        """log p_k of `archs` (K, M) under the distributions as they were when the last
        `tell` got exactly these rows (the probabilities that drew them, before its step),
        else under the current ones. For plug-ins that weight a step's samples as the update
        did, after it."""
        archs = np.asarray(archs, dtype=np.int64)
        told = self._told
        if told is not None and told[0].shape == archs.shape and np.array_equal(told[0], archs):
            return told[1].copy()
        return self._stack.log_prob(archs)

    def modes(self) -> np.ndarray:
        """Most likely architecture of every distribution, (K, D) int64."""
        return self._stack.mode()

    # ------------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (not the rng: the caller saves that).

        Plain numpy arrays and python scalars, so torch.save(weights_only=True) or json
        (after ``.tolist()``) can store it.
        """
        return {
            "mode": self._mode,
            "targets": self._targets.copy(),
            "n_per_dist": self._n_per_dist,
            "utility": self._utility,
            "rho": self._rho,
            "cost_max_seen": self._cost_max_seen,
            "n_tells": self._n_tells,
            "distributions": self._stack.state_dict(),
            "delta0": np.array([s.delta0 for s in self._states]),
            "alpha": np.array([s.alpha for s in self._states]),
            "Delta": np.array([s.Delta for s in self._states]),
            "gamma": np.array([s.gamma for s in self._states]),
            "s": np.stack([s.s for s in self._states]),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from ``state_dict()`` into a MultiASNG built with the same configuration."""
        try:
            mode = str(state["mode"])
            targets = np.asarray(state["targets"], dtype=np.float64)
            n_per_dist = int(state["n_per_dist"])
            utility = str(state["utility"])
            rho = float(state["rho"])
            fields = {
                key: np.asarray(state[key], dtype=np.float64)
                for key in ("delta0", "alpha", "Delta", "gamma")
            }
            s = np.asarray(state["s"], dtype=np.float64)
            distributions = state["distributions"]
            cost_max_seen = float(state["cost_max_seen"])
            n_tells = int(state["n_tells"])
        except KeyError as err:
            raise CheckpointError(
                f"search state lacks key {err}; save it with MultiASNG.state_dict()"
            ) from err
        if (
            mode != self._mode
            or targets.shape != self._targets.shape
            or not np.array_equal(targets, self._targets)
            or n_per_dist != self._n_per_dist
            or utility != self._utility
            or rho != self._rho
        ):
            raise CheckpointError(
                f"search state was saved with {mode}={targets.tolist()}, n_per_dist={n_per_dist}, "
                f"utility={utility!r}, rho={rho}: resume with that configuration"
            )
        if s.shape != (self.K, *self._stack.theta.shape[1:]) or any(
            v.shape != (self.K,) for v in fields.values()
        ):
            raise CheckpointError(
                f"search state has step-size arrays of shape {tuple(s.shape)}, this search's "
                f"are {(self.K, *self._stack.theta.shape[1:])}: it was saved by a search of "
                "another space or distribution count (resume with that configuration), or it "
                "is damaged"
            )
        self._stack.load_state_dict(distributions)
        self._states = [
            StepState(
                delta0=float(fields["delta0"][k]),
                alpha=float(fields["alpha"][k]),
                Delta=float(fields["Delta"][k]),
                gamma=float(fields["gamma"][k]),
                s=s[k].copy(),
            )
            for k in range(self.K)
        ]
        self._cost_max_seen = cost_max_seen
        self._n_tells = n_tells
        self._diagnostics = None


def _as_vector(values: np.ndarray, m: int, name: str) -> np.ndarray:
    """Validate a per-sample vector of length m (NaN refused, inf allowed)."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.shape[0] != m:
        raise ValueError(f"{name} has {values.shape[0]} entries for {m} architectures")
    if np.any(np.isnan(values)):
        raise ValueError(f"{name} contains NaN; evaluate again or give such samples inf")
    return values
