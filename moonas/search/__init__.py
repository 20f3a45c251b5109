"""The architecture search: strategies, the supernet loop, the dense front, run directories."""

from __future__ import annotations

from moonas.search.runner import search
from moonas.search.strategies import STRATEGIES

__all__ = ["search", "STRATEGIES"]
