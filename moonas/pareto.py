"""Pareto maths on minimised objectives: non-dominated filtering, normalisation, hypervolume.

pymoo's `HV` indicator computes every hypervolume that is reported. `improvements_2d`, a 2-D
candidate's exclusive contribution for ranking many candidates inside a search step, is numpy
(vectorised over the candidates; its tests check it against pymoo's HV).
"""

from __future__ import annotations

import numpy as np

__all__ = ["non_dominated", "front_2d", "normalise", "hypervolume", "improvements_2d"]


def non_dominated(points: np.ndarray) -> np.ndarray:
    """Boolean mask `(n,)` of the points `(n, m)` (all minimised) that no other point dominates.

    Duplicates of a non-dominated point are all kept (none dominates the other).
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2:
        raise ValueError(f"points must be (n, m), got shape {points.shape}")
    n = len(points)
    keep = np.ones(n, dtype=bool)
    # Sorting lexicographically means only earlier points can dominate later ones.
    order = np.lexsort(points.T[::-1])
    sorted_points = points[order]
    front: list[int] = []
    for i in range(n):
        p = sorted_points[i]
        if front:
            f = sorted_points[front]
            dominated = np.all(f <= p, axis=1) & np.any(f < p, axis=1)
            if dominated.any():
                keep[order[i]] = False
                continue
        front.append(i)
    return keep


def front_2d(error: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Rows (sorted by cost) of the non-dominated points of (error, cost), both minimised.

    The vectorised 2-objective case of `non_dominated` (same set, duplicates of a front point
    kept); used on the 15,625 rows of the NAS-Bench-201 table, on each snapshot, and on PVLL's
    memory at every screened step.
    """
    error = np.asarray(error, dtype=np.float64)
    cost = np.asarray(cost, dtype=np.float64)
    if error.size == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((error, cost))  # by cost, then error
    e = error[order]
    c = cost[order]
    best_before = np.concatenate([[np.inf], np.minimum.accumulate(e)[:-1]])
    # Strictly better error than everything cheaper-or-equal before it, or an exact duplicate
    # of the point that set the running minimum at the same cost.
    prev_e = np.concatenate([[np.nan], e[:-1]])
    prev_c = np.concatenate([[np.nan], c[:-1]])
    keep = e < best_before
    dup = (e == prev_e) & (c == prev_c)
    # A duplicate is kept when the point it repeats was kept (chains of duplicates too).
    for i in np.flatnonzero(dup & ~keep):
        keep[i] = keep[i - 1]
    return order[keep]


def normalise(points: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Map each objective from `[low, high]` to `[0, 1]` (constant objectives map to 0)."""
    low = np.asarray(low, dtype=np.float64)
    span = np.asarray(high, dtype=np.float64) - low
    return (np.asarray(points, dtype=np.float64) - low) / np.where(span > 0, span, 1.0)


def hypervolume(points: np.ndarray, reference: np.ndarray | float) -> float:
    """Hypervolume dominated by `points` `(n, m)` (minimised) up to `reference` `(m,)`.

    Points not strictly better than the reference in every objective add nothing.
    """
    from pymoo.indicators.hv import HV

    points = np.asarray(points, dtype=np.float64)
    if points.ndim == 1:
        points = points[None, :]
    reference = np.broadcast_to(np.asarray(reference, dtype=np.float64), (points.shape[1],))
    inside = np.all(points < reference, axis=1)
    if not inside.any():
        return 0.0
    return float(HV(ref_point=reference.copy())(points[inside]))


def improvements_2d(front: np.ndarray, candidates: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """For two minimised objectives: what each candidate `(n, 2)` alone would add to the
    hypervolume of `front` `(f, 2)` up to `reference` `(2,)` (its exclusive contribution),
    and, for a candidate that adds nothing, minus how far it falls short: the amount its first
    objective must drop for it to add something (the gap to the front's staircase at its second
    objective). So one ordering, largest first, puts gains before near misses before far misses.
    """
    front = np.asarray(front, dtype=np.float64).reshape(-1, 2)
    cand = np.asarray(candidates, dtype=np.float64).reshape(-1, 2)
    ref = np.asarray(reference, dtype=np.float64).reshape(2)
    front = front[np.all(front < ref, axis=1)]
    # The staircase: by the second objective ascending, the running best of the first.
    order = np.argsort(front[:, 1], kind="stable")
    steps_at = front[order, 1]
    best = np.minimum.accumulate(front[order, 0]) if len(front) else np.zeros(0)
    # Segments [start, end) of the second objective with the best first objective there.
    starts = np.concatenate([[-np.inf], steps_at])
    ends = np.concatenate([steps_at, [ref[1]]])
    level = np.concatenate([[ref[0]], best])
    lo = np.maximum(starts[None, :], cand[:, 1:2])
    width = np.clip(np.minimum(ends[None, :], ref[1]) - lo, 0.0, None)
    height = np.clip(level[None, :] - cand[:, 0:1], 0.0, None)
    gain = (width * height).sum(axis=1)
    # Shortfall: the staircase's level where the candidate sits, minus its first objective.
    at = np.searchsorted(steps_at, cand[:, 1], side="right")
    shortfall = cand[:, 0] - level[at]
    return np.where(gain > 0, gain, -np.clip(shortfall, 0.0, None))
