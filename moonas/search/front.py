"""The dense front: the strategy's candidates evaluated on the whole validation split with the
shared weights, their non-dominated set, and per budget the best member within it."""

from __future__ import annotations

import numpy as np

from moonas.distributed import sum_values
from moonas.run import Candidate, ParetoFront, front_mask
from moonas.search.context import SearchContext
from moonas.search.loop import Progress
from moonas.search.measure import calibration_batches, split_accuracy

__all__ = ["build_front", "front_from_candidates"]


def _evaluator(ctx: SearchContext, progress: Progress | None):
    search = ctx.config.search
    world = ctx.world
    cache: dict[tuple, np.ndarray] = {}
    # Whole batches (the training split's too, for BN calibration): under torchrun each
    # candidate is measured by one process exactly as one process alone measures it.
    train_batches = ctx.train_batches.whole()
    bound = ctx.strategy.front_evaluations()

    def measure(arch: tuple[int, ...], dist: int | None) -> tuple[float, float]:
        calibration = calibration_batches(train_batches, search.bn_batches)
        return split_accuracy(ctx.supernet, arch, ctx.eval_batches.epoch(0, shuffle=False),
                              bn=search.bn, calibration=calibration, dist=dist)

    def evaluate(archs: np.ndarray, mode_of: list | None = None) -> np.ndarray:
        """(n, D) -> (n, 2): validation accuracy and mean loss of each architecture (each
        architecture is measured once per run; repeats come from a cache). After
        search.split, each runs its home copy (`moonas.plugins.split.home_copy`). Under
        torchrun the new ones are dealt round the processes and the figures gathered."""
        keys, todo = [], {}
        for i, arch in enumerate(archs):
            arch = tuple(int(v) for v in arch)
            dist = None
            if ctx.supernet.split_options:
                from moonas.plugins.split import home_copy

                dist = home_copy(ctx.supernet, arch, ctx.strategy.core.thetas,
                                 None if mode_of is None else mode_of[i])
            key = arch if dist is None else (*arch, "copy", dist)
            keys.append(key)
            if key not in cache:
                todo.setdefault(key, (arch, dist))
        values = np.zeros((len(todo), 2))
        owner = np.zeros(len(todo), dtype=np.int64)
        if world.parallel and todo:
            owner = _deal(ctx.table.cost("macs", np.array([a for a, _ in todo.values()])),
                          world.size)
        # Progress counts every architecture measured in the front phase: out of the
        # strategy's bound while it searches on the supernet, else out of the candidates.
        total = len(cache) + len(todo) if bound is None else max(bound, len(cache) + len(todo))
        for j, (arch, dist) in enumerate(todo.values()):
            if owner[j] == world.rank:
                values[j] = measure(arch, dist)
                if progress is not None:
                    progress(len(cache) + j + 1, total, {"phase": "front"})
        # Each row was measured by one process, the others hold zeros: the sum is exact.
        if todo:
            cache.update(zip(todo, sum_values(values, world)))
            if progress is not None and world.parallel:  # the rows the others measured too
                progress(len(cache), total, {"phase": "front"})
        return np.array([cache[key] for key in keys]).reshape(len(keys), 2)

    return evaluate


def _deal(work: np.ndarray, n: int) -> np.ndarray:
    """The process (n of them) that measures each item of `work` (its MACs): the dearest first,
    each to the least loaded so far; the same on every process."""
    owner = np.zeros(len(work), dtype=np.int64)
    load = np.zeros(n)
    for j in np.argsort(-np.asarray(work, dtype=np.float64), kind="stable"):
        owner[j] = int(np.argmin(load))
        load[owner[j]] += work[j]
    return owner


def build_front(ctx: SearchContext, progress: Progress | None = None
                ) -> tuple[list[Candidate], ParetoFront]:
    """Evaluate the strategy's candidates and keep the non-dominated ones."""
    evaluate = _evaluator(ctx, progress)

    def search_evaluate(archs: np.ndarray) -> np.ndarray:  # for strategies searching here
        archs = ctx.evaluated(archs)
        return _minimised(evaluate(archs), ctx.table.cost(ctx.objective.cost, archs))

    asked, asked_modes = ctx.strategy.candidates(ctx.rng, search_evaluate)
    archs, modes = _distinct(ctx.evaluated(asked), asked_modes)
    measured = evaluate(archs, [m[0] if m else None for m in modes])
    costs = ctx.table.price(archs)
    latency = [name for name in ctx.table.names if name.startswith("latency:")]
    column = ctx.table.index(latency[0]) if latency else None
    candidates = [
        Candidate(id=i, arch=tuple(int(v) for v in arch), arch_str=ctx.space.to_str(arch),
                  accuracy=round(float(acc), 6), loss=round(float(loss), 6),
                  params=int(round(c[0])), macs=int(round(c[1])), mode_of=m[0] if m else None,
                  on_front=False, modes=m,
                  latency_ms=None if column is None else round(float(c[column]), 6))
        for i, (arch, (acc, loss), c, m) in enumerate(zip(archs, measured, costs, modes))
    ]
    return front_from_candidates(ctx.config.space.name, ctx.config.data.name, ctx.objective,
                                 candidates)


def _distinct(archs: np.ndarray, mode_of: list) -> tuple[np.ndarray, list]:
    """Rows of `archs` without repeats (pruning can make two candidates one), in order of first
    appearance; a row is the mode of every distribution any of its repeats was the mode of
    (`mode_of`: per row a tuple of distribution indices; returned sorted)."""
    keep: dict[tuple[int, ...], int] = {}
    modes: list[set[int]] = []
    for arch, mode in zip(archs, mode_of):
        key = tuple(int(v) for v in arch)
        if key not in keep:
            keep[key] = len(modes)
            modes.append(set())
        modes[keep[key]].update(mode)
    rows = np.array(list(keep), dtype=np.int64).reshape(len(keep), archs.shape[1])
    return rows, [tuple(sorted(m)) for m in modes]


def _minimised(measured: np.ndarray, cost: np.ndarray) -> np.ndarray:
    return np.column_stack([1.0 - measured[:, 0], cost])


def front_from_candidates(space: str, dataset: str, objective, candidates: list[Candidate]
                          ) -> tuple[list[Candidate], ParetoFront]:
    """Mark the non-dominated candidates under (accuracy, cost) and build the front record."""
    cost = np.array([c.cost(objective.cost) for c in candidates], dtype=np.float64)
    keep = front_mask(candidates, cost)  # one per tie: e.g. nb201 cells that reduce to a skip
    marked = [Candidate(**{**c.__dict__, "on_front": bool(keep[i])})
              for i, c in enumerate(candidates)]
    members = sorted((c for c in marked if c.on_front),
                     key=lambda c: (c.cost(objective.cost), -c.accuracy, c.id))
    if objective.budgets is not None:
        picks = tuple(_best_within(members, objective.cost, b) for b in objective.budgets)
    else:
        # Coefficient k's pick minimises its own objective, loss + eps_k * cost / cost_max.
        loss = np.array([c.loss for c in members])
        member_cost = np.array([c.cost(objective.cost) for c in members], dtype=np.float64)
        picks = tuple(
            int(members[int(np.argmin(loss + eps * member_cost / objective.cost_max))].id)
            for eps in objective.coefficients
        )
    front = ParetoFront(space=space, dataset=dataset, objectives=("accuracy", objective.cost),
                        cost=objective.cost, budgets=objective.budgets,
                        coefficients=objective.coefficients, architectures=tuple(members),
                        picks=picks)
    return marked, front


def _best_within(members: list[Candidate], cost: str, budget: float) -> int | None:
    fitting = [c for c in members if c.cost(cost) <= budget]
    if not fitting:
        return None
    return max(fitting, key=lambda c: (c.accuracy, -c.cost(cost))).id
