"""moonas: multi-budget one-shot neural architecture search."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
