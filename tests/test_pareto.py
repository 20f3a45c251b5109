"""Pareto maths: non-dominated filtering on hand cases, hypervolume against closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from moonas.pareto import hypervolume, non_dominated, normalise


def test_non_dominated_hand_cases() -> None:
    points = np.array([[0, 3], [1, 1], [3, 0], [2, 2], [1, 1], [0.5, 3], [4, 4]])
    np.testing.assert_array_equal(non_dominated(points),
                                  [True, True, True, False, True, False, False])


def test_non_dominated_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    points = rng.integers(0, 6, size=(300, 3)).astype(float)
    brute = [not any(np.all(q <= p) and np.any(q < p) for q in points) for p in points]
    np.testing.assert_array_equal(non_dominated(points), brute)


def test_hypervolume_closed_forms() -> None:
    assert hypervolume(np.array([[0.0, 0.0]]), 1.0) == pytest.approx(1.0)
    # Staircase of (0,1), (0.5,0.5), (1,0) under reference (2,2): 3 + 0.25 = 3.25.
    assert hypervolume(np.array([[0, 1], [0.5, 0.5], [1, 0]]), 2.0) == pytest.approx(3.25)
    # A dominated point adds nothing; a point beyond the reference adds nothing.
    assert hypervolume(np.array([[0, 1], [1, 0], [1, 1], [3, -1]]), 2.0) == pytest.approx(3.0)
    # Cube in 3-D.
    assert hypervolume(np.array([[0.5, 0.5, 0.5]]), 1.0) == pytest.approx(0.125)
    assert hypervolume(np.array([[2.0, 2.0]]), 1.0) == 0.0


def test_normalise_maps_bounds_to_unit_interval() -> None:
    points = np.array([[10.0, 5.0], [20.0, 5.0]])
    out = normalise(points, [10.0, 5.0], [20.0, 5.0])
    np.testing.assert_allclose(out, [[0.0, 0.0], [1.0, 0.0]])
