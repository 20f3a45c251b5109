"""moonas: multi-budget one-shot neural architecture search."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "search", "load_run", "load_config", "Run", "ParetoFront", "Candidate",
           "MoonasError"]

from moonas.config import load_config  # noqa: E402
from moonas.errors import MoonasError  # noqa: E402
from moonas.run import Candidate, ParetoFront, Run, load_run  # noqa: E402
from moonas.search import search  # noqa: E402
