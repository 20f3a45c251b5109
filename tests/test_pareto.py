"""Pareto maths: non-dominated filtering on hand cases, hypervolume against closed forms, the
2-D hypervolume gain of a candidate against pymoo's hypervolume."""

from __future__ import annotations

import numpy as np
import pytest

from moonas.pareto import hypervolume, improvements_2d, non_dominated, normalise


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


def test_improvements_2d_is_the_hypervolume_gain_and_ranks_misses_by_their_shortfall() -> None:
    rng = np.random.default_rng(2)
    reference = np.array([1.1, 1.2])
    for _ in range(100):
        front = rng.random((int(rng.integers(1, 8)), 2))
        candidates = rng.random((6, 2))
        gains = improvements_2d(front, candidates, reference)
        for candidate, gain in zip(candidates, gains):
            true = (
                hypervolume(np.vstack([front, candidate]), reference)
                - hypervolume(front, reference)
            )
            assert max(gain, 0.0) == pytest.approx(true, abs=1e-12)
            assert (gain > 0) == (true > 1e-15)
    # Hand case: front (0.5, 0.5) under reference (1, 1). (0.4, 0.6) adds 0.1 x 0.4; (0.7, 0.6)
    # adds nothing and must drop 0.2 to reach the front's level there; (0.6, 0.6) only 0.1.
    front = np.array([[0.5, 0.5]])
    gains = improvements_2d(front, np.array([[0.4, 0.6], [0.7, 0.6], [0.6, 0.6]]), np.ones(2))
    np.testing.assert_allclose(gains, [0.04, -0.2, -0.1])
    assert np.argsort(-gains).tolist() == [0, 2, 1]
    # An empty front: the gain is the candidate's own box.
    assert improvements_2d(np.zeros((0, 2)), np.array([[0.5, 0.5]]), np.ones(2))[0] == \
        pytest.approx(0.25)
