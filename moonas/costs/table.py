"""Additive cost tables: `cost(x) = c0 + sum_d c[d, x_d]`, built once per space, priced in numpy."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np

from moonas.errors import ConfigError
from moonas.registry import closest
from moonas.spaces import Arch, SearchSpace

__all__ = ["CostTable", "build_cost_table", "COST_UNITS", "cost_label", "flops_hint"]

log = logging.getLogger(__name__)

#: Unit and counting convention of every built-in cost, written into run manifests.
COST_UNITS: dict[str, str] = {
    "params": "count of parameters of the standalone network (exact)",
    "macs": "multiply-accumulates of conv and linear layers for one input, bias included "
    "(NAS-Bench-201's 'FLOPs'); norm, pooling and activations count zero",
}


def cost_index(names: tuple[str, ...], name: str) -> int:
    """Position of cost `name` among `names`, or one line listing the valid ones."""
    if name not in names:
        hint = flops_hint(name) or closest(name, names)
        raise ConfigError(f"unknown cost {name!r}{hint}; valid: {', '.join(names)}")
    return names.index(name)


def flops_hint(name: str) -> str:
    """What to say to a cost named `flops`: moonas counts the same thing as `macs`."""
    if name.lower() not in ("flops", "flop", "mflops", "gflops"):
        return ""
    return " (what NAS papers call FLOPs is multiply-accumulates: macs)"


def cost_label(cost: str) -> str:
    """Axis/column label with units: `params (count)`, `MACs (multiply-accumulates)`,
    `latency on DEVICE (ms)`."""
    if cost == "params":
        return "params (count)"
    if cost == "macs":
        return "MACs (multiply-accumulates)"
    if cost.startswith("latency:"):
        return f"latency on {cost.split(':', 1)[1]} (ms)"
    return cost


@dataclass(frozen=True, eq=False)
class CostTable:
    """Per-(choice, option) costs of one space.

    `base`: `(C,)` cost of what every architecture has; `table`: `(C, D, Kmax)` extra cost of
    option k at choice d; `valid`: `(D, Kmax)` True where option k exists at choice d;
    `names`: the C cost names.
    """

    names: tuple[str, ...]
    base: np.ndarray
    table: np.ndarray
    valid: np.ndarray

    def index(self, name: str) -> int:
        return cost_index(self.names, name)

    def price(self, archs: np.ndarray) -> np.ndarray:
        """Costs of architectures `(n, D)` -> `(n, C)` (float64, exact integers for counts)."""
        archs = np.asarray(archs, dtype=np.int64)
        if archs.ndim == 1:
            archs = archs[None, :]
        d = np.arange(archs.shape[1])
        # table[:, d, archs] -> (C, n, D); summing over D is one vectorised gather.
        return (self.base[:, None] + self.table[:, d[None, :], archs].sum(axis=2)).T

    def cost(self, name: str, archs: np.ndarray) -> np.ndarray:
        """One cost of architectures `(n, D)` -> `(n,)`."""
        return self.price(archs)[:, self.index(name)]

    def extreme(self, name: str, cheapest: bool = True) -> tuple[float, Arch]:
        """Cost and architecture of the cheapest (or dearest) member of the space."""
        i = self.index(name)
        fill = np.inf if cheapest else -np.inf
        per_choice = np.where(self.valid, self.table[i], fill)
        pick = per_choice.argmin(axis=1) if cheapest else per_choice.argmax(axis=1)
        arch = tuple(int(k) for k in pick)
        return float(self.price(np.asarray(arch))[0, i]), arch


@functools.lru_cache(maxsize=16)
def build_cost_table(space: SearchSpace) -> CostTable:
    """Count params and MACs of the standalone networks of `space` into an additive table.

    Costs are additive over choices in every built-in space, so option k of choice d costs
    `cost(ref with x_d = k) - cost(ref)`; tests check the sum against counts of random
    extracted networks.
    """
    from moonas.costs.counting import count_macs, count_params
    from moonas.nets import SUPERNETS

    standalone = SUPERNETS.get(space.name).standalone
    shape = (space.in_channels, space.input_size, space.input_size)

    def counts(arch: Arch) -> np.ndarray:
        net = standalone(space, arch)
        return np.array([count_params(net), count_macs(net, shape)], dtype=np.float64)

    n_options = space.n_options
    ref = tuple(0 for _ in n_options)
    ref_cost = counts(ref)
    table = np.zeros((2, len(n_options), max(n_options)))
    for d, k_d in enumerate(n_options):
        for k in range(1, k_d):
            arch = ref[:d] + (k,) + ref[d + 1:]
            table[:, d, k] = counts(arch) - ref_cost
    valid = np.arange(table.shape[2])[None, :] < np.asarray(n_options)[:, None]
    log.debug("built cost table of %s", space)
    return CostTable(("params", "macs"), ref_cost, table, valid)
