"""optuna's multi-objective samplers (TPE, NSGA-II) over categorical archs: optuna's one home."""

from __future__ import annotations

import logging
import warnings
from typing import Callable, Sequence

import numpy as np
import optuna

from moonas.errors import ConfigError

__all__ = ["SAMPLERS", "run_optuna", "make_sampler", "Evaluate"]

log = logging.getLogger(__name__)

#: Evaluates architectures `(n, D)` -> minimised objectives `(n, m)`.
Evaluate = Callable[[np.ndarray], np.ndarray]

SAMPLERS = ("tpe", "nsga2")

#: Trials in a row that only repeat archs already evaluated after which the run stops; and a
#: cap on all trials as a multiple of the evaluation budget. Repeats are answered from the cache
#: (free), but each trial still costs the sampler time, which for TPE grows with the history.
STALL_TRIALS = 500
MAX_TRIALS_PER_EVAL = 4


def make_sampler(name: str, seed: int, population_size: int = 20) -> optuna.samplers.BaseSampler:
    """optuna's sampler `name`, seeded: TPE with its joint (multivariate) model, NSGA-II with
    `population_size`; other settings are optuna's defaults.

    The default independent TPE was tried first on NAS-Bench-201: it kept proposing archs it had
    seen (241 distinct in 1,500 trials) and its per-parameter sampling cost grew to ~60 ms a
    trial; the multivariate model reaches 1,000 distinct archs in ~3,000 trials.
    """
    if name == "tpe":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=int(seed), multivariate=True)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=population_size, seed=int(seed))
    raise ConfigError(f"unknown optuna sampler {name!r}; valid: {', '.join(SAMPLERS)}")


def run_optuna(sampler: str, n_options: Sequence[int], evaluate: Evaluate, n_evals: int,
               seed: int, *, n_obj: int = 2, population_size: int = 20,
               canonical: Callable[[np.ndarray], np.ndarray] | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Run an optuna study (ask/tell, all objectives minimised) until `n_evals` distinct archs.

    Each choice is a categorical parameter over option indices. `evaluate` gets each new
    architecture once, `(1, D)` -> `(1, m)`; a repeated suggestion is told its cached values
    and costs nothing. Stops early after `STALL_TRIALS` repeats in a row or
    `MAX_TRIALS_PER_EVAL * n_evals` trials. `canonical` maps archs `(n, D)` to what is
    evaluated and counted (e.g. the space's pruned cells); default: the archs themselves.
    Returns the evaluated (canonical) archs `(n, D)` int64 in evaluation order and their
    objectives `(n, m)`.
    """
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if n_evals < 1:
        raise ValueError(f"n_evals={n_evals} must be >= 1")
    study = optuna.create_study(directions=["minimize"] * int(n_obj),
                                sampler=make_sampler(sampler, seed, population_size))
    choices = [list(range(int(k))) for k in n_options]
    cache: dict[tuple[int, ...], np.ndarray] = {}
    archs: list[tuple[int, ...]] = []
    objectives: list[np.ndarray] = []
    stall = 0
    trials = 0
    while len(archs) < n_evals and stall < STALL_TRIALS and trials < MAX_TRIALS_PER_EVAL * n_evals:
        trial = study.ask()
        key = tuple(int(trial.suggest_categorical(f"x{d}", c)) for d, c in enumerate(choices))
        if canonical is not None:
            key = tuple(int(v) for v in canonical(np.asarray([key], dtype=np.int64))[0])
        trials += 1
        if key in cache:
            stall += 1
        else:
            stall = 0
            values = np.asarray(evaluate(np.asarray([key], dtype=np.int64)), dtype=np.float64)
            cache[key] = values.reshape(-1)
            archs.append(key)
            objectives.append(cache[key])
        # A repeat is told its cached values (optuna's FAQ way of skipping duplicates). Marking
        # it failed instead keeps TPE's model unchanged, and TPE then stalls on its repeats.
        study.tell(trial, cache[key].tolist())
    if len(archs) < n_evals:
        log.debug("optuna %s stopped at %d distinct archs after %d trials", sampler,
                  len(archs), trials)
    if not archs:
        return np.zeros((0, len(choices)), dtype=np.int64), np.zeros((0, int(n_obj)))
    return np.asarray(archs, dtype=np.int64), np.stack(objectives)
