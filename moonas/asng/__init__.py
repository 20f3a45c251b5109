"""Pure-numpy search distributions: categorical stack, ASNG step, importance-sampled MultiASNG."""

from __future__ import annotations

from moonas.asng.categorical import CategoricalStack, one_hot
from moonas.asng.importance import (
    budget_keys,
    coefficient_keys,
    dense_ranks,
    effective_sample_size,
    importance_weights,
    mixture_log_prob,
    natural_gradients,
    rank_utilities,
    utilities,
    weighted_quantile_utilities,
)
from moonas.asng.multi import MultiASNG, TellDiagnostics
from moonas.asng.step import (
    StepResult,
    StepState,
    asng_step,
    clip_to_margin,
    fisher_whiten,
    initial_state,
    probability_floor,
)

__all__ = [
    "CategoricalStack",
    "MultiASNG",
    "StepResult",
    "StepState",
    "TellDiagnostics",
    "asng_step",
    "budget_keys",
    "clip_to_margin",
    "coefficient_keys",
    "dense_ranks",
    "effective_sample_size",
    "fisher_whiten",
    "importance_weights",
    "initial_state",
    "mixture_log_prob",
    "natural_gradients",
    "one_hot",
    "probability_floor",
    "rank_utilities",
    "utilities",
    "weighted_quantile_utilities",
]
