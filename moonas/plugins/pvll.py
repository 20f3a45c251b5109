"""Proxy validation loss (PVLL-NAS): an online loss predictor that screens the samples to evaluate.

What it does (DESIGN 5). A ridge regressor from an architecture encoding (one-hot, optionally
with one-hot pairs of choices) to the observed validation loss, fitted on a FIFO memory of
the most recent (architecture, loss) pairs and refitted every ``refit_every`` new pairs.
Once it has seen ``min_observations`` pairs, ``propose`` screens: for each row that
``core.ask`` drew from distribution k, it draws ``pool`` more candidates from k and replaces
the row by the candidate whose *predicted* ranking key under k's objective is best (predicted
loss; Deb's rule or the cost coefficient when the plug-in knows the cost, see ``set_objective``).
A share ``explore`` of the rows is left as drawn.

Importance weights. ``core.tell`` weights every told sample by ``p_k / q`` with q the mixture
that ``ask`` samples from. A screened row does not come from q (it comes from q tilted towards
low predicted loss, a density with no closed form), so its weight is wrong. The choice is the
config's ``tell``:

- ``"unscreened"`` (default): only the rows left as drawn are told to the core (they are exact
  draws from q, so ``p_k / q`` is exact and the update stays unbiased); the screened rows are
  still evaluated, enter the predictor's memory and the front (the harness builds its front
  and picks from every evaluation), but do not move the distributions. ``tell_mask`` says which
  rows to tell. With ``explore`` at 0.5 and M = 5 that is 2-3 told rows per step.
- ``"all"``: every row is told as if drawn from q. Biased (a greedy push towards what the
  predictor likes, an elitist step), kept as the measured alternative.

Operation importance. ``importance(core)`` returns ``d = G^2 / sum G^2`` per distribution and
choice, G the gradient of the expected predicted loss under theta_k (the one-hot weights of
the ridge model, centred under theta_k). With ``damp > 0`` the screening pool of k is drawn
from theta_k sharpened on the important choices (``theta^(1 + damp * D * d)``, renormalised),
which damps sampling noise where the predicted loss says a choice matters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from moonas.asng import MultiASNG
from moonas.asng.importance import budget_keys, coefficient_keys
from moonas.errors import CheckpointError, ConfigError
from moonas.plugins import Plugin

__all__ = ["PVLLConfig", "PVLLPlugin", "RidgePredictor", "encode"]

#: Costs of architectures (n, D) -> (n,), for screening by the predicted objective of k.
CostFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class PVLLConfig:
    """Knobs of the proxy-validation-loss plug-in (``search.pvll``); off by default."""

    enabled: bool = False
    memory: int = 500                    # FIFO capacity of (arch, loss) pairs
    refit_every: int = 10                # new pairs between refits
    min_observations: int = 30           # no screening before the first fit on this many
    pool: int = 16                       # candidates drawn per screened row
    explore: float = 0.5                 # share of rows left as drawn (exploration)
    tell: Literal["unscreened", "all"] = "unscreened"
    features: Literal["onehot", "pairs"] = "onehot"
    ridge: float = 1.0                   # L2 penalty on standardised targets
    damp: float = 0.0                    # sharpening of the pool on important choices

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
        if self.features not in ("onehot", "pairs"):
            raise ConfigError(f"search.pvll.features={self.features!r}: use 'onehot' or 'pairs'")
        if not self.ridge > 0:
            raise ConfigError(f"search.pvll.ridge={self.ridge}: use ridge > 0 (default 1.0)")
        if self.damp < 0:
            raise ConfigError(f"search.pvll.damp={self.damp}: use damp >= 0 (default 0)")


def encode(archs: np.ndarray, n_options: tuple[int, ...], features: str = "onehot") -> np.ndarray:
    """Encoding of architectures (n, D) -> (n, F) float64: one-hot of every choice
    (F = sum n_options), with ``"pairs"`` also the one-hot of every pair of choices."""
    archs = np.asarray(archs, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(n_options)[:-1]]).astype(np.int64)
    n = archs.shape[0]
    single = np.zeros((n, int(sum(n_options))))
    single[np.arange(n)[:, None], offsets[None, :] + archs] = 1.0
    if features == "onehot":
        return single
    blocks = [single]
    d = len(n_options)
    for a in range(d):
        for b in range(a + 1, d):
            block = np.zeros((n, n_options[a] * n_options[b]))
            block[np.arange(n), archs[:, a] * n_options[b] + archs[:, b]] = 1.0
            blocks.append(block)
    return np.concatenate(blocks, axis=1)


class RidgePredictor:
    """Ridge regression on an encoding, targets standardised; closed form, deterministic."""

    def __init__(self, n_options: tuple[int, ...], features: str = "onehot",
                 ridge: float = 1.0) -> None:
        self.n_options = tuple(int(n) for n in n_options)
        self.features = features
        self.ridge = float(ridge)
        self.coef: np.ndarray | None = None  # (F,)
        self.intercept = 0.0
        self.scale = 1.0

    @property
    def fitted(self) -> bool:
        return self.coef is not None

    def fit(self, archs: np.ndarray, losses: np.ndarray) -> None:
        """Fit on archs (n, D) and losses (n,)."""
        x = encode(archs, self.n_options, self.features)
        y = np.asarray(losses, dtype=np.float64)
        mean, std = float(y.mean()), float(y.std())
        std = std if std > 0 else 1.0
        xc = x - x.mean(axis=0)
        gram = xc.T @ xc + self.ridge * np.eye(x.shape[1])
        self.coef = np.linalg.solve(gram, xc.T @ ((y - mean) / std))
        self.intercept = mean - std * float(x.mean(axis=0) @ self.coef)
        self.scale = std

    def predict(self, archs: np.ndarray) -> np.ndarray:
        """Predicted losses (n,) of archs (n, D)."""
        if self.coef is None:
            raise RuntimeError("predictor is not fitted yet")
        x = encode(archs, self.n_options, self.features)
        return self.intercept + self.scale * (x @ self.coef)

    def option_weights(self) -> np.ndarray:
        """Additive part of the model per (choice, option), (D, Kmax); 0 past n_options."""
        if self.coef is None:
            raise RuntimeError("predictor is not fitted yet")
        n_max = max(self.n_options)
        out = np.zeros((len(self.n_options), n_max))
        start = 0
        for d, n in enumerate(self.n_options):
            out[d, :n] = self.scale * self.coef[start:start + n]
            start += n
        return out


class PVLLPlugin(Plugin):
    """Online loss predictor screening the samples of a MultiASNG search (see module doc)."""

    name = "pvll"

    def __init__(self, config: PVLLConfig, n_options: tuple[int, ...], K: int,
                 rng: np.random.Generator | int | None = None) -> None:
        self.config = config
        self.n_options = tuple(int(n) for n in n_options)
        self.K = int(K)
        # Own generator for the exploration choice, so screening never shifts the caller's.
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.predictor = RidgePredictor(self.n_options, config.features, config.ridge)
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
        if not self.active or self.config.explore >= 1.0:
            return archs
        per = m // core.K
        source = np.repeat(np.arange(core.K), per)
        if len(source) != m:  # not grouped by k (not from ask): nothing to screen against
            return archs
        n_screen = int(round((1.0 - self.config.explore) * m))
        rows = np.sort(self.rng.choice(m, size=n_screen, replace=False))
        out = archs.copy()
        thetas = self._pool_thetas(core)
        for k in np.unique(source[rows]):
            mine = rows[source[rows] == k]
            pool = _sample(thetas[k], rng, len(mine) * self.config.pool)
            best = self._order(pool, int(k))
            # Distinct candidates first: screening two rows into one arch wastes a row.
            _, first = np.unique(pool[best], axis=0, return_index=True)
            order = best[np.sort(first)]
            if len(order) < len(mine):
                order = np.concatenate([order, best[~np.isin(best, order)]])
            out[mine] = pool[order[:len(mine)]]
        self._screened[rows] = True
        return out

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
        """Operation importance d = G^2 / sum_d G^2, (K, D): G the gradient of the expected
        predicted loss under theta_k w.r.t. theta_k (centred under theta_k), summed per choice."""
        weights = self.predictor.option_weights()  # (D, Kmax)
        thetas = core.thetas
        centred = np.where(thetas > 0, weights[None] - (thetas * weights[None]).sum(-1, keepdims=True), 0.0)
        g2 = (thetas * centred ** 2).sum(-1)  # (K, D)
        total = g2.sum(axis=1, keepdims=True)
        return np.where(total > 0, g2 / np.where(total > 0, total, 1.0), 1.0 / g2.shape[1])

    # ---------------------------------------------------------------------- tell side
    def observe(self, archs: np.ndarray, losses: np.ndarray, costs: np.ndarray,
                core: MultiASNG) -> dict[str, Any]:
        """Add the evaluated pairs (finite losses) to the FIFO memory; refit on schedule."""
        archs = np.asarray(archs, dtype=np.int64)
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
            "coef": None if self.predictor.coef is None else self.predictor.coef.copy(),
            "intercept": self.predictor.intercept, "scale": self.predictor.scale,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        try:
            archs = np.asarray(state["archs"], dtype=np.int64).reshape(-1, len(self.n_options))
            losses = np.asarray(state["losses"], dtype=np.float64).reshape(-1)
            self._since_fit = int(state["since_fit"])
            self.n_fits = int(state["n_fits"])
            self.n_observed = int(state["n_observed"])
            coef = state["coef"]
            intercept, scale = float(state["intercept"]), float(state["scale"])
            self.rng.bit_generator.state = state["rng"]
        except KeyError as err:
            raise CheckpointError(f"pvll state lacks key {err}; save it with state_dict()") from err
        self._archs, self._losses = archs, losses
        self.predictor = RidgePredictor(self.n_options, self.config.features, self.config.ridge)
        # The model as last fitted (the memory may have moved on since).
        if coef is not None:
            self.predictor.coef = np.asarray(coef, dtype=np.float64)
            self.predictor.intercept, self.predictor.scale = intercept, scale
        self._screened = np.zeros(0, dtype=bool)


def _sample(theta: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """n architectures (n, D) from one product of categoricals theta (D, Kmax)."""
    cum = np.cumsum(theta, axis=-1)
    # From the last option with mass on, +inf: rounding can never select past it.
    last = theta.shape[1] - 1 - np.argmax(theta[:, ::-1] > 0, axis=-1)
    cum = np.where(np.arange(theta.shape[1]) >= last[:, None], np.inf, cum)
    u = rng.random((n, theta.shape[0]))
    return (u[..., None] >= cum[None]).sum(axis=-1).astype(np.int64)
