"""Search baselines from other libraries: pymoo's NSGA-II and optuna's multi-objective samplers."""

from __future__ import annotations

from typing import Any

__all__ = ["run_nsga2", "run_optuna"]


def __getattr__(name: str) -> Any:
    # pymoo and optuna are heavy imports: load each only when its baseline is used.
    if name == "run_nsga2":
        from moonas.baselines.nsga2 import run_nsga2

        return run_nsga2
    if name == "run_optuna":
        from moonas.baselines.optuna_search import run_optuna

        return run_optuna
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
