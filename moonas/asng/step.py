"""The ASNG update of one categorical distribution: Fisher step, adaptive step size, margin."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

__all__ = [
    "StepState",
    "StepResult",
    "initial_state",
    "free_positions",
    "n_free",
    "probability_floor",
    "fisher_whiten",
    "clip_to_margin",
    "gradient_is_zero",
    "asng_step",
]

# Relative size below which a gradient counts as zero: a gradient that cancels to rounding
# noise (e.g. all samples equal) must not be normalised into a full-size step.
ZERO_GRAD_RTOL = 1e-12


@dataclass(frozen=True)
class StepState:
    """Adaptive step-size state of one distribution (DESIGN 3).

    ``Delta`` is the divisor of the step size (``delta = delta0 / Delta``), ``gamma`` the
    normaliser of the evolution path, ``s`` (D, Kmax) the evolution path in the whitened
    coordinates, stored at the free positions of the mask (0 elsewhere).
    """

    delta0: float
    alpha: float
    Delta: float
    gamma: float
    s: np.ndarray

    @property
    def delta(self) -> float:
        """Current step size ``delta0 / Delta``."""
        return self.delta0 / self.Delta

    def to_dict(self) -> dict[str, Any]:
        """Plain scalars and one array."""
        return {
            "delta0": self.delta0,
            "alpha": self.alpha,
            "Delta": self.Delta,
            "gamma": self.gamma,
            "s": self.s.copy(),
        }


@dataclass(frozen=True)
class StepResult:
    """Outcome of ``asng_step``: new theta (D, Kmax), new state, and whether it stepped."""

    theta: np.ndarray
    state: StepState
    stepped: bool


def initial_state(shape: tuple[int, int], delta0: float = 1.0, alpha: float = 1.5) -> StepState:
    """Fresh state for a distribution with theta of shape (D, Kmax): Delta=1, gamma=0, s=0."""
    return StepState(
        delta0=float(delta0), alpha=float(alpha), Delta=1.0, gamma=0.0, s=np.zeros(shape)
    )


def free_positions(mask: np.ndarray) -> np.ndarray:
    """Active options except the last active one of each choice, (D, Kmax) bool.

    These are the ``K_d - 1`` free parameters ``a`` of each block; the last active option is
    ``b = 1 - sum(a)``.
    """
    mask = np.asarray(mask, dtype=bool)
    n_max = mask.shape[-1]
    last = n_max - 1 - np.argmax(mask[..., ::-1], axis=-1)
    return mask & (np.arange(n_max) != last[..., None])


def n_free(mask: np.ndarray) -> int:
    """``N = sum_d (K_d - 1)`` over active options."""
    return int(free_positions(mask).sum())


def probability_floor(mask: np.ndarray) -> np.ndarray:
    """Margin per choice, (D,): ``1 / (D_valid (K_d - 1))`` over active options.

    ``D_valid`` counts choices with more than one active option; a choice with one option has
    floor 1. Where that margin would leave no room to move (``K_d * margin >= 1``, which
    happens only for D_valid = 1, or D_valid = 2 with binary choices) it is capped at
    ``1 / (K_d + 1)``; everywhere else the cap is inactive.
    """
    k_active = np.asarray(mask, dtype=bool).sum(axis=-1)  # (D,)
    d_valid = int((k_active > 1).sum())
    floor = np.ones(k_active.shape, dtype=np.float64)
    multi = k_active > 1
    if d_valid > 0:
        design = 1.0 / (d_valid * (k_active[multi] - 1))
        floor[multi] = np.minimum(design, 1.0 / (k_active[multi] + 1))
    return floor


def fisher_whiten(grad: np.ndarray, theta: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fisher-whitened gradient, (D, Kmax), nonzero only at ``free_positions(mask)``.

    Per block d, with ``a = theta[d, free]``, ``b = theta[d, last active]`` and ``g`` the
    gradient at the free positions: ``g / sqrt(a) + sqrt(a) * sum(g) / (b + sqrt(b))``. Its
    Euclidean norm is the Fisher norm of the gradient.
    """
    grad = np.asarray(grad, dtype=np.float64)
    theta = np.asarray(theta, dtype=np.float64)
    free = free_positions(mask)
    last = mask.shape[-1] - 1 - np.argmax(np.asarray(mask, dtype=bool)[..., ::-1], axis=-1)
    b = np.take_along_axis(theta, last[:, None], axis=-1)  # (D, 1)
    g = np.where(free, grad, 0.0)
    g_sum = g.sum(axis=-1, keepdims=True)
    # Removed options have theta 0; the where keeps them (and the last option) out of the sums.
    sqrt_a = np.sqrt(np.where(free, theta, 1.0))
    whitened = g / sqrt_a + sqrt_a * g_sum / (b + np.sqrt(b))
    return np.where(free, whitened, 0.0)


def clip_to_margin(theta: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Raise every active probability to ``probability_floor`` and renormalise, (D, Kmax).

    The renormalisation takes the excess mass only from entries above the floor, in
    proportion to how far above it they are, so the result sums to 1 and every active entry
    stays ``>= floor`` (a plain division by the sum could push a clipped entry below it).
    """
    mask = np.asarray(mask, dtype=bool)
    floor = probability_floor(mask)[:, None]  # (D, 1)
    k_active = mask.sum(axis=-1, keepdims=True)
    clipped = np.where(mask, np.maximum(theta, floor), 0.0)
    above = np.where(mask, clipped - floor, 0.0)
    room = 1.0 - k_active * floor  # mass that is free to distribute above the floors
    above_sum = above.sum(axis=-1, keepdims=True)
    scale = np.divide(room, above_sum, out=np.zeros_like(room), where=above_sum > 0)
    out = np.where(mask, floor + above * scale, 0.0)
    # Single-option choices: floor 1, room 0 -> exactly 1 already.
    return out


def gradient_is_zero(grad: np.ndarray, scale: float = 1.0) -> bool:
    """True when ``max |grad| <= ZERO_GRAD_RTOL * scale`` (no information: skip the step).

    ``scale`` is the magnitude the gradient would have without cancellation, e.g.
    ``mean_i w_i |u_i|``; 0 means every utility was zero.
    """
    if scale <= 0.0:
        return True
    return bool(np.max(np.abs(grad)) <= ZERO_GRAD_RTOL * scale)


def asng_step(
    theta: np.ndarray,
    mask: np.ndarray,
    grad: np.ndarray,
    state: StepState,
    grad_scale: float = 1.0,
    delta_max: float = np.inf,
) -> StepResult:
    """One ASNG step of one distribution (DESIGN 3).

    theta, grad: (D, Kmax); mask: (D, Kmax) bool active options. The step is skipped (theta
    and state unchanged, ``stepped=False``) when the gradient is zero relative to
    ``grad_scale`` or no choice has two active options. ``delta_max`` caps the step size the
    adaptation may reach (unbounded by default; moonas's own ceiling, not the bound of the
    ASNG reference code, which caps its ``Delta`` and so puts a floor under the step size):
    once a distribution sits at the margin, steps clipped there keep pointing the same way,
    the evolution path reads that as "step too small" and the step grows past ``delta0``,
    until one noisy ranking can move a converged choice.
    """
    mask = np.asarray(mask, dtype=bool)
    theta = np.asarray(theta, dtype=np.float64)
    grad = np.where(mask, np.asarray(grad, dtype=np.float64), 0.0)
    n = n_free(mask)
    if n == 0 or gradient_is_zero(grad, grad_scale):
        return StepResult(theta=theta.copy(), state=state, stepped=False)
    whitened = fisher_whiten(grad, theta, mask)
    norm = float(np.sqrt(np.sum(whitened**2)))
    if not norm > 0.0:
        return StepResult(theta=theta.copy(), state=state, stepped=False)

    delta = state.delta
    # beta > 1 would make sqrt(beta (2 - beta)) shrink and, past 2, NaN: with a small alpha,
    # Delta can collapse that far. Capping beta at 1 leaves every ordinary step unchanged.
    beta = min(delta / np.sqrt(n), 1.0)
    new_theta = clip_to_margin(theta + delta * grad / norm, mask)

    # The evolution path lives on the free positions of the current mask; entries left over
    # from options removed since the last step (or a new "last" option) are dropped.
    s_prev = np.where(free_positions(mask), state.s, 0.0)
    s = (1.0 - beta) * s_prev + np.sqrt(beta * (2.0 - beta)) * whitened / norm
    gamma = (1.0 - beta) ** 2 * state.gamma + beta * (2.0 - beta)
    Delta = state.Delta * float(np.exp(beta * (gamma - np.sum(s**2) / state.alpha)))
    Delta = max(Delta, state.delta0 / np.sqrt(n))  # keeps the next beta <= 1
    Delta = max(Delta, state.delta0 / delta_max)  # keeps the next delta <= delta_max
    new_state = replace(state, Delta=Delta, gamma=float(gamma), s=s)
    return StepResult(theta=new_theta, state=new_state, stepped=True)
