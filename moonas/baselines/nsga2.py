"""pymoo's NSGA-II over categorical architectures, ask/tell, with a budget of distinct archs."""

from __future__ import annotations

import logging
from typing import Callable, Sequence

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.crossover import Crossover
from pymoo.core.mutation import Mutation
from pymoo.core.problem import Problem
from pymoo.core.sampling import Sampling
from pymoo.core.termination import NoTermination
from pymoo.problems.static import StaticProblem

__all__ = ["run_nsga2", "CategoricalSampling", "CategoricalCrossover", "CategoricalMutation",
           "Evaluate"]

log = logging.getLogger(__name__)

#: Evaluates architectures `(n, D)` -> minimised objectives `(n, m)`.
Evaluate = Callable[[np.ndarray], np.ndarray]

#: Generations in a row without a new architecture after which the run stops (it has converged
#: onto archs it has already seen; cached repeats are free, so it would otherwise never end).
STALL_GENERATIONS = 200


class CategoricalSampling(Sampling):
    """Uniform categorical sampling: each gene uniform over its options."""

    def _do(self, problem, n_samples, *args, random_state=None, **kwargs):
        high = np.asarray(problem.xu, dtype=np.int64) + 1
        return random_state.integers(0, high, size=(n_samples, problem.n_var))


class CategoricalCrossover(Crossover):
    """Uniform crossover: each gene of the two children comes from either parent (p = 1/2).

    Genes are labels, not numbers, so nothing is blended or rounded.
    """

    def __init__(self, prob: float = 0.9) -> None:
        super().__init__(2, 2, prob=prob)

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        _, n_matings, n_var = X.shape
        swap = random_state.random((n_matings, n_var)) < 0.5
        child_a = np.where(swap, X[1], X[0])
        child_b = np.where(swap, X[0], X[1])
        return np.stack([child_a, child_b]).astype(X.dtype)


class CategoricalMutation(Mutation):
    """Random resetting: each gene, with probability `prob_var` (default 1/D), takes one of the
    other options of its choice, uniformly (never the label it had)."""

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        X = np.asarray(X, dtype=np.int64).copy()
        n_opts = np.asarray(problem.xu, dtype=np.int64) + 1
        prob = np.asarray(self.get_prob_var(problem, size=len(X)), dtype=np.float64)
        prob = np.broadcast_to(prob.reshape(-1, 1), X.shape)
        flip = (random_state.random(X.shape) < prob) & (n_opts[None, :] > 1)
        # A shift of 1..K-1 (mod K) lands uniformly on the other options.
        shift = random_state.integers(1, np.maximum(n_opts, 2)[None, :], size=X.shape)
        X[flip] = ((X + shift) % n_opts[None, :])[flip]
        return X


def run_nsga2(n_options: Sequence[int], evaluate: Evaluate, n_evals: int, seed: int, *,
              n_obj: int = 2, pop_size: int = 20,
              canonical: Callable[[np.ndarray], np.ndarray] | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Run pymoo's NSGA-II until `n_evals` distinct architectures have been evaluated.

    `evaluate` gets only architectures not evaluated before, `(n, D)` -> objectives `(n, m)`
    (all minimised); repeats proposed by the algorithm are answered from a cache and cost
    nothing. The last generation is cut so exactly `n_evals` distinct archs are evaluated
    (fewer if the run stalls: `STALL_GENERATIONS` generations without a new arch). `seed`
    seeds pymoo's own `np.random.Generator`; no global state is touched. `canonical` maps
    archs `(n, D)` to what is evaluated and counted (e.g. the space's pruned cells: two archs
    with one pruned cell are one evaluation); default: the archs themselves. Returns the
    evaluated (canonical) archs `(n, D)` int64 in evaluation order and their objectives `(n, m)`.
    """
    n_options = np.asarray(n_options, dtype=np.int64)
    if n_evals < 1:
        raise ValueError(f"n_evals={n_evals} must be >= 1")
    cache: dict[tuple[int, ...], np.ndarray] = {}
    archs: list[np.ndarray] = []
    objectives: list[np.ndarray] = []
    problem = Problem(n_var=len(n_options), n_obj=int(n_obj), xl=np.zeros(len(n_options)),
                      xu=(n_options - 1).astype(float), vtype=int)
    algorithm = NSGA2(pop_size=pop_size, sampling=CategoricalSampling(),
                      crossover=CategoricalCrossover(), mutation=CategoricalMutation(),
                      eliminate_duplicates=True)
    algorithm.setup(problem, termination=NoTermination(), seed=int(seed), verbose=False)
    stall = 0
    while len(archs) < n_evals and stall < STALL_GENERATIONS:
        pop = algorithm.ask()
        if pop is None or len(pop) == 0:
            log.debug("NSGA-II could not produce new offspring; stopping")
            break
        X = np.asarray(pop.get("X"), dtype=np.int64)
        X_eval = X if canonical is None else np.asarray(canonical(X), dtype=np.int64)
        keys = [tuple(int(v) for v in row) for row in X_eval]
        new: list[int] = []
        pending: set[tuple[int, ...]] = set()
        for i, key in enumerate(keys):
            if key not in cache and key not in pending:
                pending.add(key)
                new.append(i)
        room = n_evals - len(archs)
        if len(new) > room:
            new = new[:room]
        if new:
            F_new = np.asarray(evaluate(X_eval[new]), dtype=np.float64).reshape(len(new), -1)
            for i, f in zip(new, F_new):
                cache[keys[i]] = f
                archs.append(X_eval[i])
                objectives.append(f)
            stall = 0
        else:
            stall += 1
        if len(archs) >= n_evals:
            break
        F = np.stack([cache[key] for key in keys])
        algorithm.evaluator.eval(StaticProblem(problem, F=F), pop)
        algorithm.tell(infills=pop)
    if not archs:
        return np.zeros((0, len(n_options)), dtype=np.int64), np.zeros((0, int(n_obj)))
    return np.stack(archs).astype(np.int64), np.stack(objectives)
