"""Costs of architectures: exact counts of built networks and additive per-choice tables."""

from __future__ import annotations

from moonas.costs.counting import count_macs, count_params
from moonas.costs.table import COST_UNITS, CostTable, build_cost_table, cost_label

__all__ = ["COST_UNITS", "CostTable", "build_cost_table", "cost_label", "count_macs",
           "count_params"]
