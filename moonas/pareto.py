"""Pareto maths on minimised objectives: non-dominated filtering, normalisation, hypervolume.

pymoo's `HV` indicator is the one hypervolume implementation; everything else is numpy.
"""

from __future__ import annotations

import numpy as np

__all__ = ["non_dominated", "normalise", "hypervolume"]


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
