"""Importance sampling over K distributions: mixture weights, ranking keys, utilities, gradients."""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "mixture_log_prob",
    "importance_weights",
    "effective_sample_size",
    "coefficient_keys",
    "budget_keys",
    "dense_ranks",
    "rank_utilities",
    "weighted_quantile_utilities",
    "utilities",
    "natural_gradients",
]

UTILITY_METHODS = ("weighted-quantile", "rank")


def mixture_log_prob(log_p: np.ndarray) -> np.ndarray:
    """``log q = logsumexp_j log p_j - log K`` of the mixture, (M,) from log_p (K, M).

    Written as ``max + log(mean(exp(log_p - max)))``: the same value, but when all K rows
    are equal the mean is exactly 1, so equal distributions give weights of exactly 1.
    """
    log_p = np.asarray(log_p, dtype=np.float64)
    top = log_p.max(axis=0)
    if np.any(~np.isfinite(top)):
        raise ValueError("an architecture has probability 0 under every distribution (or NaN)")
    return top + np.log(np.mean(np.exp(log_p - top), axis=0))


def importance_weights(log_p: np.ndarray) -> np.ndarray:
    """``w_k(x) = p_k(x) / q(x)``, (K, M) from log_p (K, M); each weight is in [0, K]."""
    log_p = np.asarray(log_p, dtype=np.float64)
    return np.exp(log_p - mixture_log_prob(log_p)[None, :])


def effective_sample_size(weights: np.ndarray) -> np.ndarray:
    """Kish effective sample size ``(sum w)^2 / sum w^2`` along the last axis, e.g. (K,)."""
    weights = np.asarray(weights, dtype=np.float64)
    sq = np.sum(weights**2, axis=-1)
    return np.divide(np.sum(weights, axis=-1) ** 2, sq, out=np.zeros_like(sq), where=sq > 0)


# --------------------------------------------------------------------------- ranking keys
def coefficient_keys(
    losses: np.ndarray, costs: np.ndarray, coefficients: np.ndarray, cost_max: float
) -> np.ndarray:
    """Coefficient mode: ``f_k = loss + eps_k * cost / cost_max``, (K, M); smaller is better."""
    losses = np.asarray(losses, dtype=np.float64)
    costs = np.asarray(costs, dtype=np.float64)
    eps = np.asarray(coefficients, dtype=np.float64)
    if cost_max <= 0:
        raise ValueError(f"cost_max={cost_max} must be > 0")
    return losses[None, :] + eps[:, None] * (costs[None, :] / cost_max)


def budget_keys(losses: np.ndarray, costs: np.ndarray, budgets: np.ndarray) -> np.ndarray:
    """Budget mode (Deb's rule) as lexicographic keys, (K, M, 2); smaller is better.

    Key = (excess, loss-if-feasible): feasible samples (``cost <= b_k``) have excess 0 and
    rank by loss, ahead of every infeasible one; infeasible samples rank by their excess
    ``cost - b_k`` only (their loss is set to 0 so equal excess is a tie).
    """
    losses = np.asarray(losses, dtype=np.float64)
    costs = np.asarray(costs, dtype=np.float64)
    budgets = np.asarray(budgets, dtype=np.float64)
    excess = costs[None, :] - budgets[:, None]  # (K, M)
    feasible = excess <= 0
    primary = np.where(feasible, 0.0, excess)
    secondary = np.where(feasible, losses[None, :], 0.0)
    return np.stack([primary, secondary], axis=-1)


def dense_ranks(keys: np.ndarray) -> np.ndarray:
    """Dense ranks per row, (K, M) int64 from keys (K, M) or lexicographic keys (K, M, L).

    Rank 0 is the best (smallest) key; equal keys get equal ranks, the next distinct key the
    next integer. NaN keys are refused.
    """
    keys = np.asarray(keys, dtype=np.float64)
    if keys.ndim == 2:
        keys = keys[..., None]
    if keys.ndim != 3:
        raise ValueError(f"keys has shape {keys.shape}, expected (K, M) or (K, M, L)")
    if np.any(np.isnan(keys)):
        raise ValueError("ranking keys contain NaN; give finite (or inf) losses and costs")
    n_dist, m, n_lex = keys.shape
    ranks = np.empty((n_dist, m), dtype=np.int64)
    for k in range(n_dist):
        # lexsort sorts by the last key first, so the primary key goes last.
        order = np.lexsort(tuple(keys[k, :, j] for j in range(n_lex - 1, -1, -1)))
        sorted_keys = keys[k, order]
        new_group = np.any(sorted_keys[1:] != sorted_keys[:-1], axis=-1)
        group = np.concatenate([[0], np.cumsum(new_group)])
        ranks[k, order] = group
    return ranks


# ------------------------------------------------------------------------------ utilities
#: Below this a utility is rounding noise of a tie that cancels (e.g. every sample tied): it
#: is set to exactly 0, so "no spread, no step" holds whatever order the sums ran in.
UTILITY_NOISE = 1e-12


def _exact_zeros(u: np.ndarray) -> np.ndarray:
    return np.where(np.abs(u) < UTILITY_NOISE, 0.0, u)


def rank_utilities(ranks: np.ndarray) -> np.ndarray:
    """Plain ASNG utilities of M samples from dense ranks (M,), returns (M,).

    ``mu = ceil(M / 4)``: the best mu positions get ``+1/mu``, the worst mu ``-1/mu``, the rest
    0 (M = 2: +1 / -1). Tied samples share the mean utility of the positions they occupy, so
    a tie at M = 2 gives 0 to both. Fewer than 2 samples give 0.
    """
    ranks = np.asarray(ranks, dtype=np.int64)
    m = ranks.shape[0]
    if m < 2:
        return np.zeros(m)
    mu = math.ceil(m / 4)
    base = np.zeros(m)
    base[:mu] = 1.0 / mu
    base[m - mu :] = -1.0 / mu
    order = np.argsort(ranks, kind="stable")
    # Position p in the sorted order carries base[p]; a group of tied ranks averages them.
    group_sum = np.bincount(ranks[order], weights=base)
    group_size = np.bincount(ranks)
    group_mean = np.divide(
        group_sum, group_size, out=np.zeros_like(group_sum), where=group_size > 0
    )
    return _exact_zeros(group_mean[ranks])



def weighted_quantile_utilities(
    ranks: np.ndarray, weights: np.ndarray, rho: float = 0.25
) -> np.ndarray:
    """Weighted-quantile utilities of M samples, (M,) from dense ranks (M,) and weights (M,).

    Samples are laid along [0, 1] in rank order, each taking its share ``w_i / sum w`` of
    the mass. A sample's utility is the fraction of its interval inside the best ``rho``
    (counted +1) minus the fraction inside the worst ``rho`` (counted -1); a sample that
    straddles a boundary gets the fractional share. Tied samples are one interval and share
    one utility. ``sum_i w_i u_i = 0``. With equal weights and M = 2 the utilities are
    +-0.5, a positive multiple of ASNG's +-1, hence the same normalised step.
    """
    if not 0.0 < rho <= 0.5:
        raise ValueError(f"rho={rho} must be in (0, 0.5]")
    ranks = np.asarray(ranks, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.float64)
    total = weights.sum()
    if ranks.shape[0] == 0 or not total > 0:
        return np.zeros(ranks.shape[0])
    group_mass = np.bincount(ranks, weights=weights) / total  # (G,) in rank order
    end = np.cumsum(group_mass)
    start = end - group_mass
    top = np.clip(np.minimum(end, rho) - start, 0.0, None)
    bottom = np.clip(end - np.maximum(start, 1.0 - rho), 0.0, None)
    u_group = np.divide(
        top - bottom, group_mass, out=np.zeros_like(group_mass), where=group_mass > 0
    )
    return _exact_zeros(u_group[ranks])


def utilities(
    ranks: np.ndarray, weights: np.ndarray, method: str = "weighted-quantile", rho: float = 0.25
) -> np.ndarray:
    """Utilities of M samples for each of K distributions, (K, M).

    ranks: (K, M) dense ranks under each distribution's objective; weights: (K, M).
    ``method='rank'`` ignores the weights (plain ASNG ranking of all samples);
    ``'weighted-quantile'`` uses them.
    """
    ranks = np.asarray(ranks, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.float64)
    if method == "rank":
        return np.stack([rank_utilities(r) for r in ranks])
    if method == "weighted-quantile":
        return np.stack([weighted_quantile_utilities(r, w, rho) for r, w in zip(ranks, weights)])
    raise ValueError(f"utility method {method!r} is not one of {UTILITY_METHODS}")


def natural_gradients(
    onehot: np.ndarray, theta: np.ndarray, weights: np.ndarray, utils: np.ndarray
) -> np.ndarray:
    """``G_k = (1/M) sum_i w_k(x_i) u_k(x_i) (T(x_i) - theta_k)``, (K, D, Kmax).

    onehot: (M, D, Kmax) T(x_i); theta: (K, D, Kmax); weights, utils: (K, M).
    """
    onehot = np.asarray(onehot, dtype=np.float64)
    theta = np.asarray(theta, dtype=np.float64)
    coef = np.asarray(weights, dtype=np.float64) * np.asarray(utils, dtype=np.float64)  # (K, M)
    m = onehot.shape[0]
    diff = onehot[None, :, :, :] - theta[:, None, :, :]  # (K, M, D, Kmax)
    return np.einsum("km,kmdj->kdj", coef, diff) / m
