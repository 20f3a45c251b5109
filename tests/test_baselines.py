"""The baselines' drivers: pymoo NSGA-II with categorical operators, optuna's samplers."""

from __future__ import annotations

import numpy as np
import pytest

from moonas.baselines.nsga2 import CategoricalCrossover, CategoricalMutation, run_nsga2
from moonas.baselines.optuna_search import run_optuna
from moonas.errors import ConfigError

N_OPTIONS = (5, 5, 3, 4, 5, 2)


def _evaluate(calls: list[np.ndarray]):
    """Two objectives on a toy space: a weighted sum and its complement."""
    weights = np.array([1.0, 0.5, 2.0, 0.3, 1.5, 0.7])

    def evaluate(archs: np.ndarray) -> np.ndarray:
        calls.append(np.asarray(archs).copy())
        f1 = archs @ weights
        f2 = (np.asarray(N_OPTIONS) - 1 - archs) @ weights[::-1]
        return np.stack([f1, f2 + 0.01 * (archs[:, 0] == archs[:, 1])], axis=1)

    return evaluate


@pytest.mark.parametrize("runner", ["nsga2", "optuna-nsga2", "optuna-tpe"])
def test_distinct_budget_cache_and_seed(runner: str) -> None:
    def run(seed: int, calls: list) -> tuple[np.ndarray, np.ndarray]:
        if runner == "nsga2":
            return run_nsga2(N_OPTIONS, _evaluate(calls), 57, seed)
        return run_optuna(runner.split("-")[1], N_OPTIONS, _evaluate(calls), 57, seed)

    calls: list[np.ndarray] = []
    archs, objectives = run(7, calls)
    assert archs.shape == (57, 6) and objectives.shape == (57, 2)
    assert len({tuple(a) for a in archs}) == 57  # exactly the budget, all distinct
    assert np.all(archs >= 0) and np.all(archs < np.asarray(N_OPTIONS))
    evaluated = np.concatenate(calls)
    assert len(evaluated) == 57  # the callback never sees a repeat
    again, objectives_again = run(7, [])
    assert np.array_equal(archs, again) and np.array_equal(objectives, objectives_again)
    other, _ = run(8, [])
    assert not np.array_equal(archs, other)


@pytest.mark.parametrize("runner", ["nsga2", "optuna-nsga2"])
def test_canonical_forms_are_what_is_counted_and_evaluated(runner: str) -> None:
    # Choice 0 collapses to option 0 whenever choice 5 is 0 (as pruning zeroes dead edges).
    def canonical(archs: np.ndarray) -> np.ndarray:
        out = np.array(archs, copy=True)
        out[out[:, 5] == 0, 0] = 0
        return out

    calls: list[np.ndarray] = []
    if runner == "nsga2":
        archs, _ = run_nsga2(N_OPTIONS, _evaluate(calls), 40, 3, canonical=canonical)
    else:
        archs, _ = run_optuna("nsga2", N_OPTIONS, _evaluate(calls), 40, 3, canonical=canonical)
    evaluated = np.concatenate(calls)
    assert len(archs) == 40 and len({tuple(a) for a in archs}) == 40
    assert (canonical(archs) == archs).all() and (canonical(evaluated) == evaluated).all()
    assert len({tuple(a) for a in evaluated}) == len(evaluated) == 40


def test_categorical_operators_keep_labels() -> None:
    from pymoo.core.problem import Problem

    problem = Problem(n_var=6, n_obj=2, xl=np.zeros(6), xu=np.asarray(N_OPTIONS) - 1.0, vtype=int)
    rng = np.random.default_rng(0)
    X = rng.integers(0, np.asarray(N_OPTIONS), size=(200, 6))
    mutated = CategoricalMutation(prob_var=0.5)._do(problem, X, random_state=rng)
    assert (mutated != X).any() and np.all(mutated < np.asarray(N_OPTIONS)) and np.all(mutated >= 0)
    parents = rng.integers(0, np.asarray(N_OPTIONS), size=(2, 50, 6))
    children = CategoricalCrossover()._do(problem, parents, random_state=rng)
    assert children.shape == (2, 50, 6)
    from_a = children[0] == parents[0]
    assert np.all(from_a | (children[0] == parents[1]))
    # The second child takes each gene from the other parent.
    assert np.array_equal(np.where(from_a, parents[1], parents[0]), children[1])


def test_unknown_sampler_is_one_line() -> None:
    with pytest.raises(ConfigError, match="unknown optuna sampler 'cmaes'; valid: tpe, nsga2"):
        run_optuna("cmaes", N_OPTIONS, _evaluate([]), 5, 0)
