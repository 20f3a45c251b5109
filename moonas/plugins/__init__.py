"""Plug-ins of the other seed methods into the multi-distribution search (pvll on by default,
the others off; plain `asng` runs none).

A plug-in sees every ask and tell of `MultiASNGStrategy`, in the supernet search and in the
NAS-Bench-201 harness alike: `propose` may replace the architectures asked for evaluation
(screening), `observe` learns from the evaluated ones and may remove options from the
distributions (`core.stack.remove_option`).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from moonas.asng import MultiASNG

__all__ = ["Plugin"]


class Plugin:
    """Base: changes nothing."""

    name: str = ""

    def propose(self, rng: np.random.Generator, core: MultiASNG, archs: np.ndarray) -> np.ndarray:
        """The architectures `(M, D)` to evaluate this step, given those `core.ask` drew."""
        return archs

    def observe(self, archs: np.ndarray, losses: np.ndarray, costs: np.ndarray,
                core: MultiASNG) -> dict[str, Any]:
        """Learn from one evaluated step (after `core.tell`); returns fields for the log."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass
