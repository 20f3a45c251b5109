"""Search strategies behind one ask/tell interface, shared by the supernet search and the
NAS-Bench-201 harness: which paths train the weights, how distributions learn, what goes to
the front."""

from __future__ import annotations

import math
from typing import Any, Callable, ClassVar, Mapping

import numpy as np

from moonas.asng import MultiASNG
from moonas.config import SearchConfig
from moonas.errors import CheckpointError, ConfigError
from moonas.plugins import Plugin
from moonas.registry import Registry
from moonas.search.objective import Objective

__all__ = ["Strategy", "STRATEGIES", "MultiASNGStrategy", "RandomStrategy", "build_strategy",
           "SINGLE_DISTRIBUTION"]

#: Evaluates architectures `(n, D)` -> minimised objectives `(n, m)` (error, cost, ...).
Evaluate = Callable[[np.ndarray], np.ndarray]

#: Prices architectures `(n, D)` -> the searched cost `(n,)`.
Price = Callable[[np.ndarray], np.ndarray]

#: What the search measures for architectures `(n, D)`: their cells `(n, D)` (pruned).
Cells = Callable[[np.ndarray], np.ndarray]

#: Strategies that search one distribution (their objective has one budget or coefficient).
SINGLE_DISTRIBUTION = ("asng",)


class Strategy:
    """Base: uniform paths, no distribution; subclasses override what they learn."""

    name: ClassVar[str] = ""

    def __init__(self, n_options: tuple[int, ...], objective: Objective,
                 search: SearchConfig, price: Price | None = None, seed: int = 0,
                 cells: Cells | None = None) -> None:
        # `price`, `seed` and `cells` serve the subclasses that build plug-ins (MultiASNG's).
        self.n_options = tuple(n_options)
        self.objective = objective
        self.search = search

    def train_paths(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Paths `(n, D)` for one weight step of the supernet."""
        return rng.integers(0, np.asarray(self.n_options), size=(n, len(self.n_options)))

    def train_sources(self, rng: np.random.Generator, n: int
                      ) -> tuple[np.ndarray, np.ndarray | None]:
        """`train_paths` and, per path, the distribution that drew it (None: no distributions);
        the same draws as `train_paths` for the same `rng` state."""
        return self.train_paths(rng, n), None

    def ask(self, rng: np.random.Generator) -> np.ndarray | None:
        """Architectures `(M, D)` to evaluate on a validation minibatch, or None (no learning)."""
        return None

    def tell(self, archs: np.ndarray, losses: np.ndarray, costs: np.ndarray) -> dict[str, Any]:
        """Learn from `losses` and `costs` `(M,)` of `archs`; returns fields for the log."""
        return {}

    def candidates(self, rng: np.random.Generator, evaluate: Evaluate) -> tuple[np.ndarray, list]:
        """Architectures for the dense front `(N, D)` and, per row, the indices of the
        distributions it is the mode of (a tuple, empty for none). `evaluate` may be used by
        strategies that search on the trained supernet; the caller evaluates the returned
        candidates on the whole validation split."""
        n = self.search.front_samples * self.objective.n_dists
        archs = _unique(rng.integers(0, np.asarray(self.n_options), size=(n, len(self.n_options))))
        return archs, [()] * len(archs)

    def front_evaluations(self) -> int | None:
        """The most architectures `candidates` measures through `evaluate` (None: it measures
        none; the caller measures what it returns). The front's progress counts to it."""
        return None

    def modes(self) -> np.ndarray | None:
        return None

    def bind_supernet(self, supernet: Any) -> None:
        """Called by the supernet loop before training (fresh or resumed)."""

    def end_epoch(self, supernet: Any, done: int) -> dict[str, Any]:
        """Called by the supernet loop after `done` completed epochs; returns log fields."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass


STRATEGIES: Registry[type[Strategy]] = Registry("strategy")


@STRATEGIES.register("random")
class RandomStrategy(Strategy):
    """Uniform paths for training, uniform random candidates for the front."""

    name = "random"


@STRATEGIES.register("multi-asng")
class MultiASNGStrategy(Strategy):
    """K distributions updated jointly by importance sampling (Noda, Saito & Shirakawa 2022)."""

    name = "multi-asng"

    def __init__(self, n_options: tuple[int, ...], objective: Objective,
                 search: SearchConfig, price: Price | None = None, seed: int = 0,
                 cells: Cells | None = None) -> None:
        super().__init__(n_options, objective, search, price, seed, cells)
        k = objective.n_dists
        self.core = MultiASNG(
            n_options, k,
            budgets=objective.budgets,
            coefficients=objective.coefficients,
            cost_max=objective.cost_max if objective.coefficients is not None else None,
            n_per_dist=samples_per_dist(search, k),
            utility=search.utility,
            delta0=search.delta0,
            delta_max=search.step_cap,
            alpha=search.alpha,
        )
        # The seed plug-ins serve multi-asng; `asng` is plain ASNG-NAS, the baseline.
        plain = self.name != "multi-asng"
        self.plugins = [] if plain else _plugins(search, objective, self.core)
        self.pvll = None if plain else _pvll(search, objective, n_options, k, price, seed, cells)
        self.angle = None if plain else _angle(search, objective, n_options, k, price, seed)

    def train_paths(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.train_sources(rng, n)[0]

    def train_sources(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        # Paths come from the mixture: each from a distribution chosen uniformly.
        per = math.ceil(n / self.core.K)
        archs, source = self.core.stack.sample(rng, per)
        rows = np.sort(rng.choice(len(archs), size=n, replace=False))
        return archs[rows], source[rows]

    def ask(self, rng: np.random.Generator) -> np.ndarray:
        if self.angle is not None and not self.angle.bound:
            raise ConfigError("search.angle.enabled needs a supernet (it measures how far trained "
                              "weights moved): it does not apply to a table benchmark; switch it "
                              "off or run 'moonas search'")
        archs = self.core.ask(rng)
        if self.pvll is not None:
            archs = self.pvll.propose(rng, self.core, archs)
        for plugin in self.plugins:
            archs = plugin.propose(rng, self.core, archs)
        return archs

    def tell(self, archs: np.ndarray, losses: np.ndarray, costs: np.ndarray) -> dict[str, Any]:
        # Rows the proxy screened were not drawn from the mixture, so their p_k/q weights
        # would be wrong: the distributions learn from the rows left as drawn (PVLLPlugin).
        told = (np.ones(len(archs), dtype=bool) if self.pvll is None
                else self.pvll.tell_mask(len(archs)))
        # A row no distribution can draw (a pruned cell writes `none` where every distribution
        # removed it, told under pvll.tell=all) has no importance weight: it teaches none.
        # Only a removed option makes one, so the common step skips the extra look-up.
        stack = self.core.stack
        if (stack.mask.sum(axis=-1) < np.asarray(stack.n_options)).any():
            told &= np.isfinite(stack.log_prob(np.asarray(archs, dtype=np.int64))).any(axis=0)
        fields: dict[str, Any] = {}
        if told.sum() >= 2:
            a, l, c = archs[told], np.asarray(losses)[told], np.asarray(costs)[told]
            diag = self.core.tell(a, l, c)
            fields = {"ess": _rounded(diag.ess), "entropy": _rounded(diag.entropy),
                      "delta": _rounded(diag.delta), "stepped": list(diag.stepped)}
            for plugin in self.plugins:
                fields.update(plugin.observe(a, l, c, self.core))
        if self.pvll is not None:
            fields.update(self.pvll.observe(archs, losses, costs, self.core))
        return fields

    def modes(self) -> np.ndarray:
        return self.core.modes()

    def bind_supernet(self, supernet: Any) -> None:
        if self.angle is not None:
            self.angle.bind(supernet)

    def end_epoch(self, supernet: Any, done: int) -> dict[str, Any]:
        return {} if self.angle is None else self.angle.end_epoch(supernet, self.core, done)

    def candidates(self, rng: np.random.Generator, evaluate: Evaluate) -> tuple[np.ndarray, list]:
        modes = self.core.modes()
        if self.pvll is not None:  # the predictor ranks pool x more draws; the best are measured
            samples = self.pvll.front_samples(rng, self.core, self.search.front_samples)
        else:
            samples, _ = self.core.stack.sample(rng, self.search.front_samples)
        archs = _unique(np.concatenate([modes, samples]))
        mode_of = [tuple(int(k) for k in np.flatnonzero((modes == arch).all(axis=1)))
                   for arch in archs]
        return archs, mode_of

    def state_dict(self) -> dict[str, Any]:
        state = self.core.state_dict()
        state["plugins"] = {p.name: p.state_dict() for p in self.plugins}
        if self.pvll is not None:
            state["plugins"]["pvll"] = self.pvll.state_dict()
        if self.angle is not None:
            state["plugins"]["angle"] = self.angle.state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.core.load_state_dict(state)
        saved = state.get("plugins", {})
        extra = [p for p in (self.pvll, self.angle) if p is not None]
        for plugin in self.plugins + extra:
            if plugin.name not in saved:
                raise CheckpointError(f"the checkpoint has no state of the {plugin.name} plug-in: "
                                      "resume with the config the run started with")
            plugin.load_state_dict(saved[plugin.name])


@STRATEGIES.register("asng")
class ASNGStrategy(MultiASNGStrategy):
    """Plain ASNG-NAS: one distribution, one budget or coefficient (0 by default)."""

    name = "asng"


@STRATEGIES.register("spos-nsga2")
class SPOSNSGA2Strategy(Strategy):
    """The classic two-stage one-shot baseline: uniform single-path training of the supernet
    (SPOS), then pymoo's NSGA-II over the trained supernet's validation accuracy and cost."""

    name = "spos-nsga2"

    def front_evaluations(self) -> int:
        # As many distinct evaluations as the other strategies put on their front.
        return self.search.front_samples * self.objective.n_dists

    def candidates(self, rng: np.random.Generator, evaluate: Evaluate) -> tuple[np.ndarray, list]:
        from moonas.baselines.nsga2 import run_nsga2

        archs, _ = run_nsga2(self.n_options, evaluate, self.front_evaluations(),
                             seed=int(rng.integers(2**31)))
        return archs, [()] * len(archs)


def _plugins(search: SearchConfig, objective: Objective, core: MultiASNG) -> list[Plugin]:
    """The seed plug-ins the config switches on, in a fixed order."""
    plugins: list[Plugin] = []
    if search.eoi.enabled:
        from moonas.plugins.eoi import EoiPlugin

        cost_max = objective.cost_max if objective.coefficients is not None else None
        plugins.append(EoiPlugin.for_core(search.eoi, core, cost_max))
    return plugins


def _pvll(search: SearchConfig, objective: Objective, n_options: tuple[int, ...], k: int,
          price: Price | None, seed: int, cells: Cells | None = None):
    """The proxy-validation-loss plug-in when switched on, ranking by each distribution's
    predicted objective when the cost can be priced, on the measured cells when given."""
    if not search.pvll.enabled:
        return None
    from moonas.plugins.pvll import PVLLPlugin

    plugin = PVLLPlugin(search.pvll, n_options, k, rng=seed, cells=cells)
    if price is not None:
        plugin.set_objective(price, budgets=objective.budgets,
                             coefficients=objective.coefficients, cost_max=objective.cost_max)
    return plugin


def _angle(search: SearchConfig, objective: Objective, n_options: tuple[int, ...], k: int,
           price: Price | None, seed: int):
    """The angle-based shrinking plug-in when switched on (it needs the supernet loop's hooks)."""
    if not search.angle.enabled:
        return None
    from moonas.plugins.angle import AnglePlugin

    return AnglePlugin(search.angle, n_options, k, search.epochs, budgets=objective.budgets,
                       price=price, seed=seed)


def samples_per_dist(search: SearchConfig, k: int) -> int:
    """Samples per distribution and step: as configured, else `ceil(2 / K)`.

    Two samples per step is what one ASNG needs to rank; with K distributions every sample
    informs every distribution through its importance weight, so one each (M = K validation
    forwards) keeps the run's cost close to a single ASNG run.
    """
    if search.samples_per_dist is not None:
        return search.samples_per_dist
    return max(1, math.ceil(2 / k))


def build_strategy(name: str, n_options: tuple[int, ...], objective: Objective,
                   search: SearchConfig, price: Price | None = None, seed: int = 0,
                   cells: Cells | None = None) -> Strategy:
    """The strategy `name`; `price` (the searched cost of architectures), `seed` and `cells`
    (what is measured for an architecture: its cell pruned at `search.prune`) serve the
    plug-ins that need them."""
    return STRATEGIES.get(name)(n_options, objective, search, price, seed, cells)


def _rounded(values) -> list[float]:
    return [float(f"{v:.6g}") for v in values]


def _unique(archs: np.ndarray) -> np.ndarray:
    """Rows of `archs` without repeats, in order of first appearance."""
    _, first = np.unique(archs, axis=0, return_index=True)
    return archs[np.sort(first)]
