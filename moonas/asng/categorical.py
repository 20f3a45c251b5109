"""K categorical distributions over one architecture space of D choices (pure numpy)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from moonas.asng.step import clip_to_margin, probability_floor
from moonas.errors import CheckpointError, ConfigError

__all__ = ["CategoricalStack", "one_hot"]


def one_hot(archs: np.ndarray, n_max: int) -> np.ndarray:
    """One-hot encoding T(x) of architectures.

    archs: (M, D) int option indices. Returns (M, D, n_max) float64 with one 1 per (m, d).
    """
    archs = np.asarray(archs, dtype=np.int64)
    m, d = archs.shape
    out = np.zeros((m, d, n_max), dtype=np.float64)
    out[np.arange(m)[:, None], np.arange(d)[None, :], archs] = 1.0
    return out


class CategoricalStack:
    """K independent products of D categorical distributions sharing one space.

    ``theta`` has shape (K, D, Kmax) with ``Kmax = max(n_options)``; entries of options that
    do not exist (``j >= n_options[d]``) or were removed from a distribution's space are
    exactly 0, and ``mask`` (K, D, Kmax) bool says which options are active. Every row
    ``theta[k, d]`` sums to 1 over its active options, and at least one option per choice
    stays active.
    """

    def __init__(self, n_options: Sequence[int], K: int) -> None:
        n_options = tuple(int(n) for n in n_options)
        if len(n_options) == 0:
            raise ConfigError("n_options is empty: give at least one choice, e.g. n_options=(5, 5)")
        if min(n_options) < 1:
            raise ConfigError(
                f"n_options={n_options} has a choice with fewer than 1 option: "
                "every entry must be >= 1"
            )
        if int(K) < 1:
            raise ConfigError(f"K={K} distributions: use K >= 1")
        self._n_options = n_options
        self._K = int(K)
        n_max = max(n_options)
        exists = np.arange(n_max)[None, :] < np.asarray(n_options)[:, None]  # (D, Kmax)
        self._mask = np.broadcast_to(exists, (self._K, len(n_options), n_max)).copy()
        self._theta = self._mask / self._mask.sum(axis=-1, keepdims=True)

    # ----------------------------------------------------------------------------- shapes
    @property
    def n_options(self) -> tuple[int, ...]:
        """Number of options K_d of each choice, length D."""
        return self._n_options

    @property
    def K(self) -> int:
        """Number of distributions."""
        return self._K

    @property
    def D(self) -> int:
        """Number of choices."""
        return len(self._n_options)

    @property
    def n_max(self) -> int:
        """Largest number of options over the choices (last axis of ``theta``)."""
        return max(self._n_options)

    @property
    def theta(self) -> np.ndarray:
        """Probabilities, (K, D, Kmax); a read-only view (use ``set_theta`` to change)."""
        view = self._theta.view()
        view.flags.writeable = False
        return view

    @property
    def mask(self) -> np.ndarray:
        """Active options, (K, D, Kmax) bool; a read-only view."""
        view = self._mask.view()
        view.flags.writeable = False
        return view

    # ------------------------------------------------------------------------- mutation
    def set_theta(self, k: int, theta_k: np.ndarray) -> None:
        """Replace the probabilities of distribution k with ``theta_k`` (D, Kmax).

        Removed options must have probability 0 and each row must sum to 1.
        """
        theta_k = np.asarray(theta_k, dtype=np.float64)
        if theta_k.shape != self._theta.shape[1:]:
            raise ValueError(f"theta_k has shape {theta_k.shape}, expected {self._theta.shape[1:]}")
        _check_simplex(theta_k, self._mask[k])
        self._theta[k] = theta_k

    def remove_option(self, k: int, d: int, option: int) -> None:
        """Remove ``option`` of choice d from distribution k's space and renormalise."""
        mask = self._mask.copy()
        mask[k, d, option] = False
        self.set_mask(mask)

    def set_mask(self, mask: np.ndarray) -> None:
        """Restrict the active options to ``mask`` (K, D, Kmax) bool, a subset of the current one.

        Probabilities of removed options are moved to the remaining ones in proportion to
        their probabilities (renormalisation), so the relative preferences are kept. A
        distribution whose space shrank then has every active probability raised to the
        margin of its new space (`moonas.asng.step.probability_floor`: fewer options or
        choices mean a higher floor), as its next step would: not only from that step on.
        """
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != self._mask.shape:
            raise ValueError(f"mask has shape {mask.shape}, expected {self._mask.shape}")
        if np.any(mask & ~self._mask):
            # A re-enabled option would start at probability 0, below the margin; the search
            # only ever shrinks spaces, so re-enabling is refused rather than guessed.
            raise ValueError("mask re-enables a removed or non-existent option; masks only shrink")
        if np.any(mask.sum(axis=-1) == 0):
            raise ValueError("mask removes every option of a choice; keep at least one per choice")
        theta = np.where(mask, self._theta, 0.0)
        sums = theta.sum(axis=-1, keepdims=True)
        # A row whose remaining options all had probability 0 cannot be renormalised
        # proportionally; it falls back to uniform over what is left.
        uniform = mask / mask.sum(axis=-1, keepdims=True)
        safe = np.where(sums > 0, sums, 1.0)
        theta = np.where(sums > 0, theta / safe, uniform)
        for k in np.flatnonzero(np.any(mask != self._mask, axis=(1, 2))):
            floor = probability_floor(mask[k])[:, None]
            if np.any(mask[k] & (theta[k] < floor)):  # rows at or above it stay bit for bit
                theta[k] = clip_to_margin(theta[k], mask[k])
        self._theta = theta
        self._mask = mask.copy()

    # ------------------------------------------------------------------------- sampling
    def sample(self, rng: np.random.Generator, n_per_dist: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n_per_dist`` architectures from every distribution.

        Returns ``(archs, source)``: archs (M, D) int64 with ``M = K * n_per_dist``, grouped by
        distribution (the first n from distribution 0, ...), and source (M,) int64, the index
        of the distribution each sample came from.
        """
        n = int(n_per_dist)
        if n < 1:
            raise ValueError(f"n_per_dist={n_per_dist}; use n_per_dist >= 1")
        cum = np.cumsum(self._theta, axis=-1)  # (K, D, Kmax)
        # Rounding can leave the total a hair below 1; everything from the last active option
        # on is set to +inf so a draw can never land past it (or on a trailing removed option).
        last_active = self.n_max - 1 - np.argmax(self._mask[..., ::-1], axis=-1)  # (K, D)
        cum = np.where(np.arange(self.n_max) >= last_active[..., None], np.inf, cum)
        u = rng.random((self._K, n, self.D))
        # Index = number of cumulative values <= u; a removed option repeats the previous
        # cumulative value, so no u can select it.
        archs = (u[..., None] >= cum[:, None, :, :]).sum(axis=-1)  # (K, n, D)
        source = np.repeat(np.arange(self._K, dtype=np.int64), n)
        return archs.reshape(self._K * n, self.D).astype(np.int64), source

    def log_prob(self, archs: np.ndarray) -> np.ndarray:
        """Log-probability of each architecture under each distribution.

        archs: (M, D) ints. Returns (K, M); -inf where an architecture uses a removed option.
        """
        archs = self.check_archs(archs)
        picked = self._theta[:, np.arange(self.D)[None, :], archs]  # (K, M, D)
        with np.errstate(divide="ignore"):
            return np.log(picked).sum(axis=-1)

    def check_archs(self, archs: np.ndarray) -> np.ndarray:
        """Validate architectures (M, D) against the space; return them as int64."""
        archs = np.asarray(archs)
        if archs.ndim != 2 or archs.shape[1] != self.D:
            raise ValueError(f"archs has shape {archs.shape}, expected (M, {self.D})")
        if not np.issubdtype(archs.dtype, np.integer):
            raise ValueError(f"archs has dtype {archs.dtype}, expected integers")
        archs = archs.astype(np.int64)
        if np.any(archs < 0) or np.any(archs >= np.asarray(self._n_options)[None, :]):
            raise ValueError(f"archs has an option index outside n_options={self._n_options}")
        return archs

    # ---------------------------------------------------------------------------- summary
    def mode(self) -> np.ndarray:
        """Most likely option of every choice, (K, D) int64 (ties: lowest index)."""
        return np.argmax(self._theta, axis=-1).astype(np.int64)

    def entropy(self) -> np.ndarray:
        """Entropy in nats of each distribution, (K,)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(self._theta > 0, self._theta * np.log(self._theta), 0.0)
        return -terms.sum(axis=(1, 2))

    # ------------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """Plain numpy arrays and python scalars (torch.save weights_only / json friendly)."""
        return {
            "n_options": list(self._n_options),
            "K": self._K,
            "theta": self._theta.copy(),
            "mask": self._mask.copy(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from ``state_dict()``; arrays may come back as nested lists (json)."""
        try:
            n_options = tuple(int(n) for n in state["n_options"])
            K = int(state["K"])
            theta = np.asarray(state["theta"], dtype=np.float64)
            mask = np.asarray(state["mask"], dtype=bool)
        except KeyError as err:
            raise CheckpointError(
                f"distribution state lacks key {err}; save it with state_dict()"
            ) from err
        if n_options != self._n_options or K != self._K:
            raise CheckpointError(
                f"distribution state is for n_options={n_options}, K={K}, not "
                f"n_options={self._n_options}, K={self._K}: load it into a matching search"
            )
        if theta.shape != self._theta.shape or mask.shape != self._mask.shape:
            raise CheckpointError("distribution state has arrays of the wrong shape; it is corrupt")
        if np.any(mask & ~(self._mask_of_space())):
            raise CheckpointError(
                "distribution state activates options outside the space; it is corrupt"
            )
        try:
            for k in range(K):
                _check_simplex(theta[k], mask[k])
        except ValueError as err:
            raise CheckpointError(f"distribution state is corrupt: {err}") from err
        self._theta = theta.copy()
        self._mask = mask.copy()

    def _mask_of_space(self) -> np.ndarray:
        exists = np.arange(self.n_max)[None, :] < np.asarray(self._n_options)[:, None]
        return np.broadcast_to(exists, self._mask.shape)


def _check_simplex(theta_k: np.ndarray, mask_k: np.ndarray, atol: float = 1e-9) -> None:
    """Raise ValueError unless theta_k (D, Kmax) is a distribution over mask_k's options."""
    if not np.all(np.isfinite(theta_k)):
        raise ValueError("theta has non-finite entries")
    if np.any(theta_k[~mask_k] != 0.0):
        raise ValueError("theta gives probability to a removed option")
    if np.any(theta_k < 0.0):
        raise ValueError("theta has negative entries")
    if np.any(np.abs(theta_k.sum(axis=-1) - 1.0) > atol):
        raise ValueError("a row of theta does not sum to 1")
