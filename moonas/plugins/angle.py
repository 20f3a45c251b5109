"""Angle-based search-space shrinking (PWSNAS / ABS, Hu et al.): drop options whose children's
weights moved least from their initialisation.

The angle of a child network ``x`` is ``arccos(<V0, Vt> / (|V0| |Vt|))`` between its weight
vector at initialisation (``V0``, a frozen copy this plug-in keeps and checkpoints) and now
(``Vt``); larger is better, and it needs no data. The child's vector is made of the parameters
its standalone network has (what ``Supernet.extract`` copies: the shared stem, reduction
blocks, head and classifier, plus those of the chosen option of every choice); with
``parameters="weights"`` (default) only the conv kernels and linear matrices (parameters of 2+
dimensions): batch-norm scales start at 1 and would otherwise dominate every norm (NAS-Bench-
201's one-shot cells use affine-free batch norm, where ABS was measured), biases are left out
with them; ``"all"`` takes every parameter. Dot products and squared norms are sums over
parameters, so with per-(choice, option) terms of
``Supernet.option_parameters(d, j)`` and the shared terms computed once per check::

    <V0, Vt>(x) = dot_shared + sum_d dot[d, x_d]      (likewise |V0|^2 and |Vt|^2)

and the angle of any number of architectures is a vectorised table look-up (``AngleTerms``).

Parameter-free options (``none``, ``skip_connect``, ``avg_pool_3x3``, mobilenet's ``skip``) add
nothing to the vector, as in ABS: a cell made only of them leaves the child with the shared
weights alone. An nb201 edge cut off from the cell output by ``none`` edges still counts (its
weights are in the standalone network, though they cannot change its output).

Scores and shrinking (defined here where ABS leaves it open). At each shrink, for each
distribution k, ``samples`` children are drawn *uniformly* from k's remaining space (as ABS
does; drawing from theta_k would score an option by the co-options k already prefers, and a
sharp theta_k would leave most options with no sample); in budget mode only the children
within k's budget count (each distribution scores options for its own budget). An option's
score is the mean angle of the counted children that contain it. The ``drops`` lowest-scoring
options of k (one per choice at most) are removed from k's space with
``core.stack.remove_option``, never:

- an option of a choice left with ``min_options`` options in k;
- an option scored on fewer than ``min_count`` children;
- an option of the cheapest architecture left in k's space (found by coordinate descent on
  the search's price, exact for the additive cost tables), so a budget that was feasible stays
  feasible and the cheap end stays reachable in coefficient mode.

Schedule: the first shrink after ``warmup`` of the search's epochs (ABS warms up 40-50%),
then one every ``interval`` of them (at least one epoch), the last before the final epoch
ends. The search loop calls ``bind`` before training and ``end_epoch`` after each epoch.
Weights of an option that no distribution keeps (``freed_options``) are no longer sampled, so
they get no gradient and no weight decay: they are reported, not deleted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping

import numpy as np

from moonas.asng import MultiASNG
from moonas.errors import CheckpointError, ConfigError
from moonas.plugins import Plugin
from moonas.plugins.eoi import freed_options

if TYPE_CHECKING:  # the config's AngleConfig lives here: reading a config loads no torch
    import torch

__all__ = ["AngleConfig", "AnglePlugin", "AngleTerms", "angle_terms", "snapshot",
           "weight_groups", "vector_angle"]

#: Costs of architectures (n, D) -> (n,).
Price = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class AngleConfig:
    """Settings of the angle-based shrinking plug-in (``search.angle``); off by default."""

    enabled: bool = False
    warmup: float = 0.5  # share of search.epochs before the first shrink
    interval: float = 0.05  # share of search.epochs between shrinks (at least one epoch)
    drops: int = 1  # options each distribution loses per shrink (at most one per choice)
    min_options: int = 2  # options every choice keeps in every distribution
    samples: int = 2048  # children drawn uniformly from each distribution's space per shrink
    min_count: int = 8  # counted children an option needs before it may be dropped
    parameters: Literal["weights", "all"] = "weights"  # conv/linear weights only, or all

    def __post_init__(self) -> None:
        if not 0.0 <= self.warmup < 1.0:
            raise ConfigError(f"search.angle.warmup={self.warmup}: use 0 <= warmup < 1, a share "
                              "of search.epochs (default 0.5)")
        if not 0.0 < self.interval <= 1.0:
            raise ConfigError(f"search.angle.interval={self.interval}: use 0 < interval <= 1, a "
                              "share of search.epochs (default 0.05)")
        if int(self.drops) < 1:
            raise ConfigError(f"search.angle.drops={self.drops}: use drops >= 1 (default 1)")
        if int(self.min_options) < 1:
            raise ConfigError(f"search.angle.min_options={self.min_options}: use min_options >= 1 "
                              "(default 2)")
        if int(self.samples) < 1:
            raise ConfigError(f"search.angle.samples={self.samples}: use samples >= 1 "
                              "(default 2048)")
        if int(self.min_count) < 1:
            raise ConfigError(f"search.angle.min_count={self.min_count}: use min_count >= 1 "
                              "(default 8)")
        if self.parameters not in ("weights", "all"):
            raise ConfigError(f"search.angle.parameters={self.parameters!r}: use 'weights' (conv "
                              "and linear weights, default) or 'all'")

    def shrink_epochs(self, epochs: int) -> tuple[int, ...]:
        """Completed-epoch counts after which a shrink happens, for a search of ``epochs``."""
        first = max(1, int(round(self.warmup * epochs)))
        step = max(1, int(round(self.interval * epochs)))
        return tuple(range(first, epochs, step))


# ------------------------------------------------------------------------ the decomposition
def weight_groups(supernet: torch.nn.Module, parameters: str = "weights"
                  ) -> tuple[list[str], list[list[list[str]]]]:
    """Parameter names in the vector: (shared, per choice d and option j those of
    ``option_parameters``); ``parameters="weights"`` keeps those of 2+ dimensions only."""
    names = {id(p): n for n, p in supernet.named_parameters()}
    keep = {n for n, p in supernet.named_parameters() if parameters == "all" or p.dim() >= 2}
    options: list[list[list[str]]] = []
    owned: set[str] = set()
    for d, k_d in enumerate(supernet.space.n_options):
        row = []
        for j in range(k_d):
            group = [names[id(p)] for p in supernet.option_parameters(d, j)]
            if owned.intersection(group):
                raise ValueError(f"option ({d}, {j}) shares parameters with another option: the "
                                 "angle does not decompose over options in this supernet")
            owned.update(group)
            row.append([n for n in group if n in keep])
        options.append(row)
    shared = [n for n, _ in supernet.named_parameters() if n not in owned and n in keep]
    return shared, options


def snapshot(supernet: torch.nn.Module) -> dict[str, np.ndarray]:
    """A frozen copy of every parameter (float32 numpy), the ``V0`` of the angle."""
    return {n: p.detach().cpu().numpy().copy() for n, p in supernet.named_parameters()}


def vector_angle(v0: np.ndarray, vt: np.ndarray) -> float:
    """``arccos(<v0, vt> / (|v0| |vt|))`` of two flat vectors, in float64 (the reference)."""
    v0, vt = np.asarray(v0, dtype=np.float64), np.asarray(vt, dtype=np.float64)
    return float(np.arccos(np.clip(v0 @ vt / math.sqrt((v0 @ v0) * (vt @ vt)), -1.0, 1.0)))


@dataclass(frozen=True)
class AngleTerms:
    """Terms of the angle: ``shared`` (3,) = (dot, |V0|^2, |Vt|^2) of the shared parameters,
    ``options`` (3, D, Kmax) the same per (choice, option), 0 past ``n_options``."""

    shared: np.ndarray
    options: np.ndarray

    def angles(self, archs: np.ndarray) -> np.ndarray:
        """Angles in radians (n,) of architectures (n, D)."""
        archs = np.asarray(archs, dtype=np.int64).reshape(-1, self.options.shape[1])
        d = np.arange(archs.shape[1])
        dot, n0, nt = self.shared[:, None] + self.options[:, d[None, :], archs].sum(axis=2)
        cos = dot / np.sqrt(n0 * nt)
        return np.arccos(np.clip(cos, -1.0, 1.0))


def angle_terms(supernet: torch.nn.Module, v0: Mapping[str, np.ndarray],
                groups: tuple[list[str], list[list[list[str]]]] | None = None,
                parameters: str = "weights") -> AngleTerms:
    """Terms of every option and of the shared weights, from one pass over the parameters
    (``groups`` from ``weight_groups``, else built for ``parameters``)."""
    import torch

    shared, options = groups if groups is not None else weight_groups(supernet, parameters)
    now = dict(supernet.named_parameters())

    def terms(names: list[str]) -> np.ndarray:
        out = np.zeros(3)
        with torch.no_grad():
            for n in names:
                b = now[n].detach().double().reshape(-1)
                a = torch.from_numpy(np.asarray(v0[n])).to(b.device).double().reshape(-1)
                out += (float(a @ b), float(a @ a), float(b @ b))
        return out

    n_max = max(len(row) for row in options)
    table = np.zeros((3, len(options), n_max))
    for d, row in enumerate(options):
        for j, names in enumerate(row):
            table[:, d, j] = terms(names)
    return AngleTerms(terms(shared), table)


# ---------------------------------------------------------------------------- the plug-in
class AnglePlugin(Plugin):
    """Scores options by the mean angle of uniform children and removes the worst (module doc)."""

    name = "angle"

    def __init__(self, config: AngleConfig, n_options: tuple[int, ...], K: int, epochs: int,
                 *, budgets: tuple[float, ...] | None = None, price: Price | None = None,
                 seed: int = 0) -> None:
        """``epochs``: the search's length (the schedule's unit); ``budgets`` in budget mode
        (children over k's budget are not counted for k); ``price``: the searched cost."""
        self.config = config
        self.n_options = tuple(int(n) for n in n_options)
        self.K = int(K)
        self.epochs = int(epochs)
        self.budgets = None if budgets is None else np.asarray(budgets, dtype=np.float64)
        self.price = price
        self.rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xA9]))
        self._v0: dict[str, np.ndarray] | None = None
        self._groups: tuple[list[str], list[list[list[str]]]] | None = None
        self.last_scores: np.ndarray | None = None  # (K, D, Kmax) of the last shrink, nan unscored
        self.removed: list[list[int]] = []  # [epoch, k, d, j] in order
        self.n_shrinks = 0

    @property
    def bound(self) -> bool:
        """Whether a supernet was bound (the plug-in can measure angles)."""
        return self._groups is not None

    def bind(self, supernet: torch.nn.Module) -> None:
        """Attach the supernet; at the first bind of a run its weights become ``V0``."""
        self._groups = weight_groups(supernet, self.config.parameters)
        if self._v0 is None:
            self._v0 = snapshot(supernet)
        elif set(self._v0) != {n for n, _ in supernet.named_parameters()}:
            raise CheckpointError("the angle plug-in's V0 is for another supernet: resume with "
                                  "the config the run started with")

    def terms(self, supernet: torch.nn.Module) -> AngleTerms:
        """The current angle terms of ``supernet`` against ``V0``."""
        if self._v0 is None:
            raise RuntimeError("bind(supernet) first")
        groups = self._groups or weight_groups(supernet, self.config.parameters)
        return angle_terms(supernet, self._v0, groups)

    def end_epoch(self, supernet: torch.nn.Module, core: MultiASNG, done: int) -> dict[str, Any]:
        """After ``done`` completed epochs: shrink on schedule; returns fields for the log."""
        if not self.config.enabled:
            return {}
        terms = self.terms(supernet)
        fields: dict[str, Any] = {
            "angle_modes": [round(float(a), 6) for a in terms.angles(core.modes())]}
        if done not in self.config.shrink_epochs(self.epochs):
            return fields
        removed = self.shrink(terms, core)
        self.n_shrinks += 1
        self.removed.extend([done, *r] for r in removed)
        fields.update(angle_removed=removed,
                      angle_active=[int(v) for v in core.stack.mask.sum(axis=(1, 2))],
                      angle_freed=len(freed_options(core)))
        return fields

    def shrink(self, terms: AngleTerms, core: MultiASNG) -> list[list[int]]:
        """Score every (k, d, j) and remove the worst per the rule; returns [k, d, j] removed."""
        cfg = self.config
        mask = np.array(core.stack.mask)
        scores, counts = self.score(terms, mask)
        self.last_scores = scores
        removed = []
        for k in range(self.K):
            protected = np.zeros(mask.shape[1:], dtype=bool)
            if self.price is not None:
                cheapest = _cheapest(mask[k], self.price)
                protected[np.arange(len(cheapest)), cheapest] = True
            ok = (mask[k] & ~protected & (counts[k] >= cfg.min_count)
                  & (mask[k].sum(axis=-1, keepdims=True) > cfg.min_options))
            order = np.argsort(np.where(ok, scores[k], np.inf), axis=None, kind="stable")
            used: set[int] = set()
            for flat in order[:int(ok.sum())]:
                d, j = np.unravel_index(flat, ok.shape)
                if d in used:
                    continue
                core.stack.remove_option(k, int(d), int(j))
                used.add(int(d))
                removed.append([k, int(d), int(j)])
                if len(used) == cfg.drops:
                    break
        return removed

    def score(self, terms: AngleTerms, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean angle (nan where none) and count of counted children per (k, d, j), each
        (K, D, Kmax), from ``samples`` uniform children of every distribution's ``mask``."""
        n = int(self.config.samples)
        n_max = mask.shape[-1]
        scores = np.full(mask.shape, np.nan)
        counts = np.zeros(mask.shape, dtype=np.int64)
        for k in range(mask.shape[0]):
            archs = _uniform(mask[k], n, self.rng)
            angles = terms.angles(archs)
            if self.budgets is not None and self.price is not None:
                keep = np.asarray(self.price(archs), dtype=np.float64) <= self.budgets[k]
                archs, angles = archs[keep], angles[keep]
            onehot = np.zeros((len(archs), mask.shape[1], n_max))
            onehot[np.arange(len(archs))[:, None], np.arange(mask.shape[1])[None, :], archs] = 1
            counts[k] = onehot.sum(axis=0).astype(np.int64)
            total = np.einsum("m,mdj->dj", angles, onehot)
            scores[k] = np.where(counts[k] > 0, total / np.maximum(counts[k], 1), np.nan)
        return scores, counts

    # ------------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """V0, the last scores, the removals and the sampling rng (numpy and python values)."""
        return {
            "v0": None if self._v0 is None else {n: v.copy() for n, v in self._v0.items()},
            "scores": None if self.last_scores is None else self.last_scores.copy(),
            "removed": [list(r) for r in self.removed],
            "n_shrinks": self.n_shrinks,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        try:
            v0, scores = state["v0"], state["scores"]
            removed = [[int(v) for v in r] for r in state["removed"]]
            n_shrinks = int(state["n_shrinks"])
            self.rng.bit_generator.state = state["rng"]
        except KeyError as err:
            raise CheckpointError(f"angle state lacks key {err}; save it with "
                                  "AnglePlugin.state_dict()") from err
        self._v0 = None if v0 is None else {n: np.asarray(v, dtype=np.float32)
                                            for n, v in v0.items()}
        self.last_scores = None if scores is None else np.asarray(scores, dtype=np.float64)
        self.removed, self.n_shrinks = removed, n_shrinks


def _uniform(mask_k: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n architectures (n, D) uniform over the options ``mask_k`` (D, Kmax) keeps."""
    active = mask_k.sum(axis=-1)  # (D,)
    # Position among the active options -> option index, per choice.
    index = np.argsort(~mask_k, axis=-1, kind="stable")  # active options first, in order
    pick = (rng.random((n, mask_k.shape[0])) * active[None, :]).astype(np.int64)
    return index[np.arange(mask_k.shape[0])[None, :], np.minimum(pick, active - 1)]


def _cheapest(mask_k: np.ndarray, price: Price, sweeps: int = 2) -> np.ndarray:
    """The cheapest architecture (D,) left in ``mask_k`` by coordinate descent on ``price``
    (exact after one sweep when the cost is additive over choices)."""
    arch = np.argmax(mask_k, axis=-1).astype(np.int64)
    for _ in range(sweeps):
        for d in range(mask_k.shape[0]):
            options = np.flatnonzero(mask_k[d])
            trial = np.repeat(arch[None, :], len(options), axis=0)
            trial[:, d] = options
            arch[d] = options[int(np.argmin(np.asarray(price(trial), dtype=np.float64)))]
    return arch
