"""Reduced weight sharing after the space has narrowed (PWSNAS's idea; its rule is not given):
the surviving options of the most contested choices get one copy of their weights per
distribution (``search.split``, supernet search only, off by default).

Rule (defined here):

- When: after ``round(at * search.epochs)`` completed epochs (at least 1; no split when that
  is the last epoch), once.
- Contested choice: the mean pairwise total-variation distance between the K distributions'
  probability vectors of the choice, ``mean_{k<l} 0.5 * sum_j |theta_k[d, j] - theta_l[d, j]|``
  over the options still active in some distribution: the choices where the budgets disagree
  most, hence where one set of shared weights serves conflicting sub-populations. The
  ``choices`` highest (ties: lowest index) among the choices with a surviving option that has
  parameters are split.
- Surviving options: those active in at least one distribution (shrinking plug-ins remove
  options) that own parameters (a parameter-free option has nothing to copy).
- The copies start from the shared weights; their optimizer momentum starts from the shared
  option's buffer (the optimizer's group is rebuilt in ``supernet.parameters()`` order, so a
  restored checkpoint maps its state onto the same parameters).

After the split, ``supernet(x, arch, dist=k)`` runs copy k: a training path runs the copy of the
distribution it was drawn from; in the distribution step each sample runs the copy of the
distribution that drew it, one forward per sample as before. That loss then informs every
distribution through its importance weight, as without the split: evaluating a sample with all
K copies would multiply the step's cost by up to K and ``tell`` takes one loss per sample.
Front candidates are de-duplicated across distributions, so they lose who drew them: each is
evaluated with its *home* copy, its own distribution's for a mode, else the distribution most
likely to draw its options at the split choices (``home_copy``); export uses the same rule
(so the exported network is the one the front measured). Does not combine with
``search.angle`` (its vector is keyed by the unsplit parameter names).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from moonas.errors import CheckpointError, ConfigError

if TYPE_CHECKING:  # the config's SplitConfig lives here: reading a config loads no torch
    import torch

__all__ = ["SplitConfig", "contested", "split_options", "apply_split", "maybe_split",
           "home_copy", "restore_split"]


@dataclass(frozen=True)
class SplitConfig:
    """Settings of per-distribution weights for contested choices (``search.split``)."""

    enabled: bool = False
    at: float = 0.5  # share of search.epochs after which the split happens
    choices: int = 1  # how many of the most contested choices get per-distribution weights

    def __post_init__(self) -> None:
        if not 0.0 < self.at < 1.0:
            raise ConfigError(f"search.split.at={self.at}: use 0 < at < 1, a share of "
                              "search.epochs (default 0.5)")
        if int(self.choices) < 1:
            raise ConfigError(f"search.split.choices={self.choices}: use choices >= 1 (default 1)")

    def split_epoch(self, epochs: int) -> int:
        """Completed-epoch count after which the split happens (== epochs: never)."""
        return min(epochs, max(1, int(round(self.at * epochs))))


def contested(thetas: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean pairwise total-variation distance per choice, (D,), of thetas (K, D, Kmax) over the
    options active in some distribution (``mask`` (K, D, Kmax)); 0 with one distribution."""
    thetas = np.where(mask.any(axis=0)[None], np.asarray(thetas, dtype=np.float64), 0.0)
    pairs = list(itertools.combinations(range(thetas.shape[0]), 2))
    if not pairs:
        return np.zeros(thetas.shape[1])
    return np.mean([0.5 * np.abs(thetas[k] - thetas[l]).sum(axis=-1) for k, l in pairs], axis=0)


def split_options(supernet, thetas: np.ndarray, mask: np.ndarray, n_choices: int
                  ) -> tuple[dict[int, tuple[int, ...]], np.ndarray]:
    """(choice -> surviving options with parameters, for the ``n_choices`` most contested
    choices; the contest score (D,))."""
    score = contested(thetas, mask)
    alive = mask.any(axis=0)
    candidates = {}
    for d, n in enumerate(supernet.space.n_options):
        owned = tuple(j for j in range(n) if alive[d, j] and supernet.option_parameters(d, j))
        if owned:
            candidates[d] = owned
    order = sorted(candidates, key=lambda d: (-score[d], d))[:n_choices]
    return {d: candidates[d] for d in sorted(order)}, score


def apply_split(supernet, optimizer: torch.optim.Optimizer,
                options: Mapping[int, Sequence[int]], n_copies: int) -> None:
    """Split `supernet` and hand the copies to `optimizer` (one group, same hyper-parameters;
    each copy's momentum buffer a clone of the shared parameter's)."""
    import torch

    if len(optimizer.param_groups) != 1:
        raise ValueError("apply_split expects an optimizer with one parameter group")
    replaced = supernet.split(options, n_copies)
    for old, copies in replaced.items():
        state = optimizer.state.pop(old, None)
        if not state:
            continue
        for new in copies:
            optimizer.state[new] = {k: v.clone() if torch.is_tensor(v) else v
                                    for k, v in state.items()}
    # supernet.parameters() order: a fresh split of a restored run gives the same order, so
    # the optimizer state dict maps onto the same parameters.
    optimizer.param_groups[0]["params"] = list(supernet.parameters())


def maybe_split(config: SplitConfig, epochs: int, supernet, optimizer, core,
                done: int) -> dict[str, Any]:
    """After `done` completed epochs: split on schedule; returns fields for the log."""
    if (not config.enabled or supernet.split_options or done >= epochs
            or done != config.split_epoch(epochs)):
        return {}  # split_epoch == epochs: never (copies no epoch would train)
    options, score = split_options(supernet, core.thetas, np.asarray(core.stack.mask),
                                   int(config.choices))
    if not options:
        return {"split_choices": []}
    apply_split(supernet, optimizer, options, core.K)
    return {"split_choices": sorted(options),
            "split_options": [list(options[d]) for d in sorted(options)],
            "split_tv": [round(float(v), 5) for v in score]}


def restore_split(supernet, optimizer: torch.optim.Optimizer, state: Mapping[str, Any] | None
                  ) -> None:
    """Re-apply a saved ``supernet.split_state()`` to a freshly built supernet/optimizer
    (before their state dicts are loaded)."""
    if not state:
        return
    try:
        options = {int(d): [int(j) for j in js]
                   for d, js in zip(state["choices"], state["options"])}
        apply_split(supernet, optimizer, options, int(state["n_copies"]))
    except KeyError as err:
        raise CheckpointError(f"the checkpoint's split state lacks key {err}") from None


def home_copy(supernet, arch: Sequence[int], thetas: np.ndarray,
              mode_of: int | None = None) -> int | None:
    """The copy a front candidate is evaluated and exported with (None: it uses no split
    option): its own distribution for a mode, else the distribution with the highest
    probability of its options at the split choices (ties: lowest index)."""
    if not supernet.uses_split(arch):
        return None
    if mode_of is not None:
        return int(mode_of)
    thetas = np.asarray(thetas, dtype=np.float64)
    logp = sum(np.log(np.maximum(thetas[:, d, int(arch[d])], 1e-300))
               for d in supernet.split_options)
    return int(np.argmax(logp))
