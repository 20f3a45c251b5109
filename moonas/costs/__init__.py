"""Costs of architectures: exact counts of built networks and additive per-choice tables."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from moonas.costs.table import COST_UNITS, CostTable, build_cost_table, cost_label

if TYPE_CHECKING:
    from moonas.costs.counting import count_macs, count_params

__all__ = ["COST_UNITS", "CostTable", "build_cost_table", "cost_label", "count_macs",
           "count_params"]


def __getattr__(name: str) -> Any:
    """The counters load torch and thop on first use (PEP 562): reading a run's costs back
    (`moonas pick`, `moonas plot`) needs neither."""
    if name in ("count_macs", "count_params"):
        value = getattr(importlib.import_module("moonas.costs.counting"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'moonas.costs' has no attribute {name!r}")
