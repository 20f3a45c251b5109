"""Architecture-to-loss regressors and their encodings, for PVLL's screening and smoothed picks.

Encodings (``features``): one-hot of every choice; one-hot plus one-hot pairs of choices
(``"pairs"``, PVLL's default since 2026-12-02: on NAS-Bench-201 it lowered the regret at every
count on every seed set measured, results/plugins_pairs.md); or ``"gae"``, the embedding of a
graph autoencoder pre-trained without accuracies on every cell of the space
(``moonas.plugins.gae``; NAS-Bench-201 only, other spaces fall back to one-hot with a warning).

Regressors: closed-form ridge (``RidgePredictor``; on the pairs encoding solved in its dual,
``PairsRidgePredictor``, whose cost is set by the memory instead of the pair features) and RBF
kernel ridge (``KernelPredictor``). Targets are standardised; every fit is deterministic.
Measured in results/pvll_tau.md: the GAE embedding with kernel ridge ranks held-out
NAS-Bench-201 cells best by Kendall tau, yet searched worse than the default (regret +0.165
points at 100 evaluations, 240 paired runs); after 50-100 uniform draws the default's
first-ranked cells miss the least.

Smoothed picks. ``smoothed_scores`` shrinks observed scores towards a heavily regularised
pairs ridge fit of them, to choose the best of many noisy measurements (the NAS-Bench-201
harness's ``--pick smoothed``: on c10 it lowered the regret at 1000 evaluations by 0.11-0.15
points for the searching strategies; on c100 and ImageNet16 the effect is small and mixed,
results/picks.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from moonas.errors import ConfigError
from moonas.threads import blas_threads

__all__ = ["FEATURES", "PREDICTORS", "DEFAULT_RIDGE", "Predictor", "RidgePredictor",
           "PairsRidgePredictor", "KernelPredictor", "encode", "resolve_features",
           "smoothed_scores", "SMOOTHING"]

log = logging.getLogger(__name__)

FEATURES = ("onehot", "pairs", "gae")
PREDICTORS = ("ridge", "kernel")
#: Default L2 penalty per regressor (standardised targets); kernel's measured on NB201.
DEFAULT_RIDGE = {"ridge": 1.0, "kernel": 0.1}


def resolve_features(features: str, n_options: tuple[int, ...]) -> str:
    """The encoding that will be used: ``"gae"`` falls back to ``"onehot"`` (with a warning)
    on a space with no cell graph (``moonas.plugins.gae.graph_for``)."""
    if features != "gae":
        return features
    from moonas.plugins.gae import graph_for  # torch: only when the GAE is asked for

    if graph_for(tuple(n_options)) is None:
        log.warning("search.pvll.features='gae': no cell graph is defined for a space with "
                    "options %s (only NAS-Bench-201 has one); using the one-hot encoding",
                    tuple(n_options))
        return "onehot"
    return features


def encode(archs: np.ndarray, n_options: tuple[int, ...], features: str = "onehot") -> np.ndarray:
    """Encoding of architectures (n, D) -> (n, F) float64: one-hot of every choice
    (F = sum n_options), with ``"pairs"`` also the one-hot of every pair of choices, with
    ``"gae"`` the graph-autoencoder embedding (F = its latent size, standardised over the space)."""
    archs = np.asarray(archs, dtype=np.int64)
    if features == "gae":
        return _gae_encoder(tuple(n_options)).embed(archs)
    offsets = np.concatenate([[0], np.cumsum(n_options)[:-1]]).astype(np.int64)
    n = archs.shape[0]
    single = np.zeros((n, int(sum(n_options))))
    single[np.arange(n)[:, None], offsets[None, :] + archs] = 1.0
    if features == "onehot":
        return single
    blocks = [single]
    d = len(n_options)
    for a in range(d):
        for b in range(a + 1, d):
            block = np.zeros((n, n_options[a] * n_options[b]))
            block[np.arange(n), archs[:, a] * n_options[b] + archs[:, b]] = 1.0
            blocks.append(block)
    return np.concatenate(blocks, axis=1)


def _gae_encoder(n_options: tuple[int, ...]):
    """The space's graph autoencoder, trained once per process (~20 s on one thread, seed 0:
    the encoding is a fixed function of the space, not of the search seed)."""
    from moonas.plugins.gae import cached_encoder, graph_for

    graph = graph_for(n_options)
    if graph is None:
        raise ConfigError(f"features='gae' needs a cell graph; none is defined for a space with "
                          f"options {n_options}: use features='onehot'")
    return cached_encoder(graph)


def _partial_dependence(predict: Callable[[np.ndarray], np.ndarray], archs: np.ndarray,
                        n_options: tuple[int, ...]) -> np.ndarray:
    """Mean prediction over archs (n, D) with choice d set to option k, (D, Kmax), 0 past
    n_options: the additive part of any model (its coefficients for a one-hot linear one)."""
    out = np.zeros((len(n_options), max(n_options)))
    for d, n in enumerate(n_options):
        varied = np.repeat(archs[None], n, axis=0)  # (n_d, n, D)
        varied[:, :, d] = np.arange(n)[:, None]
        out[d, :n] = predict(varied.reshape(-1, archs.shape[1])).reshape(n, -1).mean(axis=1)
    return out


def _per_choice(coef: np.ndarray, n_options: tuple[int, ...]) -> np.ndarray:
    """The leading one-hot block of coefficients (F,) laid out per (choice, option), (D, Kmax);
    0 past n_options."""
    out = np.zeros((len(n_options), max(n_options)))
    start = 0
    for d, n in enumerate(n_options):
        out[d, :n] = coef[start:start + n]
        start += n
    return out


class RidgePredictor:
    """Ridge regression on an encoding, targets standardised; closed form, deterministic."""

    def __init__(self, n_options: tuple[int, ...], features: str = "onehot",
                 ridge: float = 1.0) -> None:
        self.n_options = tuple(int(n) for n in n_options)
        self.features = resolve_features(features, self.n_options)
        self.ridge = float(ridge)
        self.coef: np.ndarray | None = None  # (F,)
        self.intercept = 0.0
        self.scale = 1.0
        self._archs: np.ndarray | None = None  # (n, D) fitted on, for the additive part
        self._weights: np.ndarray | None = None

    def encode(self, archs: np.ndarray) -> np.ndarray:
        """The encoding (n, F) of archs (n, D) the model works on."""
        return encode(archs, self.n_options, self.features)

    @property
    def fitted(self) -> bool:
        return self.coef is not None

    def fit(self, archs: np.ndarray, losses: np.ndarray) -> None:
        """Fit on archs (n, D) and losses (n,)."""
        self._archs = np.asarray(archs, dtype=np.int64).copy()
        x = self.encode(self._archs)
        y = np.asarray(losses, dtype=np.float64)
        mean, std = float(y.mean()), float(y.std())
        std = std if std > 0 else 1.0
        xc = x - x.mean(axis=0)
        gram = xc.T @ xc + self.ridge * np.eye(x.shape[1])
        self.coef = np.linalg.solve(gram, xc.T @ ((y - mean) / std))
        self.intercept = mean - std * float(x.mean(axis=0) @ self.coef)
        self.scale = std
        self._weights = None

    def predict(self, archs: np.ndarray) -> np.ndarray:
        """Predicted losses (n,) of archs (n, D)."""
        if self.coef is None:
            raise RuntimeError("predictor is not fitted yet")
        x = self.encode(archs)
        return self.intercept + self.scale * (x @ self.coef)

    def option_weights(self) -> np.ndarray:
        """Additive part of the model per (choice, option), (D, Kmax); 0 past n_options.
        One-hot encodings: the one-hot coefficients; the embedding: the partial dependence
        over the archs fitted on."""
        if self.coef is None:
            raise RuntimeError("predictor is not fitted yet")
        if self._weights is None:
            if self.features == "gae":
                self._weights = _partial_dependence(self.predict, self._archs, self.n_options)
            else:
                self._weights = _per_choice(self.scale * self.coef, self.n_options)
        return self._weights

    def state_dict(self) -> dict[str, Any]:
        return {"coef": None if self.coef is None else self.coef.copy(),
                "intercept": self.intercept, "scale": self.scale,
                "archs": None if self._archs is None else self._archs.copy()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        coef = state["coef"]
        self.coef = None if coef is None else np.asarray(coef, dtype=np.float64)
        self.intercept, self.scale = float(state["intercept"]), float(state["scale"])
        archs = state.get("archs")
        self._archs = (None if archs is None else
                       np.asarray(archs, dtype=np.int64).reshape(-1, len(self.n_options)))
        self._weights = None


def _match_kernel(a: np.ndarray, b: np.ndarray, n_options: tuple[int, ...]) -> np.ndarray:
    """Inner products (m, n) of the one-hot + pairs encodings of archs a (m, D) and b (n, D),
    without building the pairs: with s equal choices (the one-hot inner product), s plus
    s (s - 1) / 2 (the pairs of equal choices)."""
    same = encode(a, n_options) @ encode(b, n_options).T
    return same + same * (same - 1.0) / 2.0


class PairsRidgePredictor:
    """Ridge regression on the one-hot + pairs encoding (``features: pairs``), solved in its
    dual form: the same model as ``RidgePredictor(features="pairs")`` (tested), but the cost is
    set by the memory (n x n) instead of the number of pair features, which grows with the
    square of the options (NAS-Bench-201: 405 features; MobileNet with 20 blocks: ~17,000).

    With centred features, w = Phi_c^T alpha, alpha = (K_c + ridge I)^-1 t, K_c the centred
    kernel matrix (``_match_kernel``) and t the standardised losses.
    """

    features = "pairs"

    def __init__(self, n_options: tuple[int, ...], ridge: float = 1.0) -> None:
        self.n_options = tuple(int(n) for n in n_options)
        self.ridge = float(ridge)
        self.alpha: np.ndarray | None = None  # (n,)
        self.mean = 0.0
        self.scale = 1.0
        self._archs: np.ndarray | None = None  # (n, D) fitted on
        self._col_mean: np.ndarray | None = None  # (n,) mean kernel row
        self._all_mean = 0.0
        self._weights: np.ndarray | None = None

    @property
    def fitted(self) -> bool:
        return self.alpha is not None

    def _centre_stats(self) -> np.ndarray:
        """Kernel matrix of the fitted archs (n, n); sets the column means used to centre."""
        gram = _match_kernel(self._archs, self._archs, self.n_options)
        self._col_mean = gram.mean(axis=0)
        self._all_mean = float(self._col_mean.mean())
        return gram

    def fit(self, archs: np.ndarray, losses: np.ndarray) -> None:
        """Fit on archs (n, D) and losses (n,)."""
        self._archs = np.asarray(archs, dtype=np.int64).copy()
        y = np.asarray(losses, dtype=np.float64)
        self.mean, std = float(y.mean()), float(y.std())
        self.scale = std if std > 0 else 1.0
        gram = self._centre_stats()
        centred = gram - self._col_mean[None, :] - self._col_mean[:, None] + self._all_mean
        centred[np.diag_indices_from(centred)] += self.ridge
        self.alpha = np.linalg.solve(centred, (y - self.mean) / self.scale)
        self._weights = None

    def predict(self, archs: np.ndarray) -> np.ndarray:
        """Predicted losses (n,) of archs (n, D)."""
        if self.alpha is None:
            raise RuntimeError("predictor is not fitted yet")
        k = _match_kernel(np.asarray(archs, dtype=np.int64), self._archs, self.n_options)
        centred = k - k.mean(axis=1, keepdims=True) - self._col_mean[None, :] + self._all_mean
        return self.mean + self.scale * (centred @ self.alpha)

    def option_weights(self) -> np.ndarray:
        """The one-hot part of the model per (choice, option), (D, Kmax), as RidgePredictor's
        with ``features="pairs"``; 0 past n_options."""
        if self.alpha is None:
            raise RuntimeError("predictor is not fitted yet")
        if self._weights is None:
            x = encode(self._archs, self.n_options, "onehot")
            coef = self.scale * ((x - x.mean(axis=0)).T @ self.alpha)
            self._weights = _per_choice(coef, self.n_options)
        return self._weights

    def state_dict(self) -> dict[str, Any]:
        return {"archs": None if self._archs is None else self._archs.copy(),
                "alpha": None if self.alpha is None else self.alpha.copy(),
                "mean": self.mean, "scale": self.scale}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        alpha = state["alpha"]
        if alpha is None:
            self._archs = self.alpha = self._col_mean = None
        else:
            archs = np.asarray(state["archs"], dtype=np.int64)
            self._archs = archs.reshape(-1, len(self.n_options))
            self._centre_stats()
            self.alpha = np.asarray(alpha, dtype=np.float64)
        self.mean, self.scale = float(state["mean"]), float(state["scale"])
        self._weights = None


#: Weight and ridge of `smoothed_scores`' default, chosen on NAS-Bench-201 tuning seeds
#: (c10 params 100-179, macs 100-139; multi-asng, NSGA-II and random alike): weight 0.1-0.15
#: with ridge 30-100 is level; 0.05 gains less at 1000, 0.25 loses at 100 and 300
#: (results/picks_tuning.md).
SMOOTHING = {"weight": 0.1, "ridge": 30.0}


def smoothed_scores(archs: np.ndarray, scores: np.ndarray, n_options: tuple[int, ...],
                    weight: float = SMOOTHING["weight"], ridge: float = SMOOTHING["ridge"]
                    ) -> np.ndarray:
    """Observed scores (n,) of archs (n, D) shrunk towards what their structure predicts:
    ``(1 - weight) * score + weight * fit``, the fit a heavily regularised pairs ridge
    (`PairsRidgePredictor`) on these same (arch, score) pairs.

    What it is for: choosing the best of many noisy measurements. The top observed scores are
    the ones most inflated by noise (the winner's curse); the fit pulls an architecture that
    scores far above what its operations predict back towards the prediction, so among
    near-ties the one whose structure agrees wins. Fewer than 3 distinct archs: scores as given.
    """
    scores = np.asarray(scores, dtype=np.float64)
    archs = np.asarray(archs, dtype=np.int64)
    if not 0.0 <= weight <= 1.0:
        raise ConfigError(f"smoothing weight must be in [0, 1], got {weight}")
    if ridge <= 0:
        raise ConfigError(f"smoothing ridge must be > 0, got {ridge}")
    if weight == 0.0 or len(np.unique(archs, axis=0)) < 3:
        return scores.copy()
    model = PairsRidgePredictor(n_options, ridge=ridge)
    with blas_threads(1):
        model.fit(archs, scores)
        fit = model.predict(archs)
    return (1.0 - weight) * scores + weight * fit


class KernelPredictor:
    """RBF kernel ridge regression on an encoding, targets standardised; the length scale is
    the median distance between the encodings fitted on. Closed form, deterministic."""

    def __init__(self, n_options: tuple[int, ...], features: str = "gae",
                 ridge: float = 0.1) -> None:
        self.n_options = tuple(int(n) for n in n_options)
        self.features = resolve_features(features, self.n_options)
        self.ridge = float(ridge)
        self._archs: np.ndarray | None = None  # (n, D)
        self._x: np.ndarray | None = None  # (n, F)
        self.alpha: np.ndarray | None = None  # (n,)
        self.lengthscale = 1.0
        self.mean = 0.0
        self.scale = 1.0
        self._weights: np.ndarray | None = None

    def encode(self, archs: np.ndarray) -> np.ndarray:
        """The encoding (n, F) of archs (n, D) the model works on."""
        return encode(archs, self.n_options, self.features)

    @property
    def fitted(self) -> bool:
        return self.alpha is not None

    def _sq_dist(self, x: np.ndarray) -> np.ndarray:
        """Squared distances between x (m, F) and the fitted encodings, (m, n)."""
        sq = (x ** 2).sum(1)[:, None] + (self._x ** 2).sum(1)[None, :] - 2.0 * x @ self._x.T
        return np.maximum(sq, 0.0)

    def _kernel(self, x: np.ndarray) -> np.ndarray:
        """RBF kernel between x (m, F) and the fitted encodings, (m, n)."""
        return np.exp(-self._sq_dist(x) / (2.0 * self.lengthscale ** 2))

    def fit(self, archs: np.ndarray, losses: np.ndarray) -> None:
        """Fit on archs (n, D) and losses (n,)."""
        self._archs = np.asarray(archs, dtype=np.int64).copy()
        self._x = self.encode(self._archs)
        y = np.asarray(losses, dtype=np.float64)
        self.mean, std = float(y.mean()), float(y.std())
        self.scale = std if std > 0 else 1.0
        sq = self._sq_dist(self._x)
        positive = sq[np.triu_indices(len(y), 1)]
        positive = positive[positive > 1e-12]
        self.lengthscale = float(np.sqrt(np.median(positive))) if positive.size else 1.0
        gram = np.exp(-sq / (2.0 * self.lengthscale ** 2)) + self.ridge * np.eye(len(y))
        self.alpha = np.linalg.solve(gram, (y - self.mean) / self.scale)
        self._weights = None

    def predict(self, archs: np.ndarray) -> np.ndarray:
        """Predicted losses (n,) of archs (n, D)."""
        if self.alpha is None:
            raise RuntimeError("predictor is not fitted yet")
        x = self.encode(archs)
        return self.mean + self.scale * (self._kernel(x) @ self.alpha)

    def option_weights(self) -> np.ndarray:
        """Additive part of the model per (choice, option), (D, Kmax): the partial dependence
        over the archs fitted on; 0 past n_options."""
        if self.alpha is None:
            raise RuntimeError("predictor is not fitted yet")
        if self._weights is None:
            self._weights = _partial_dependence(self.predict, self._archs, self.n_options)
        return self._weights

    def state_dict(self) -> dict[str, Any]:
        return {"archs": None if self._archs is None else self._archs.copy(),
                "alpha": None if self.alpha is None else self.alpha.copy(),
                "lengthscale": self.lengthscale, "mean": self.mean, "scale": self.scale}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        alpha = state["alpha"]
        if alpha is None:
            self._archs = self._x = self.alpha = None
        else:
            archs = np.asarray(state["archs"], dtype=np.int64)
            self._archs = archs.reshape(-1, len(self.n_options))
            self._x = self.encode(self._archs)
            self.alpha = np.asarray(alpha, dtype=np.float64)
        self.lengthscale = float(state["lengthscale"])
        self.mean, self.scale = float(state["mean"]), float(state["scale"])
        self._weights = None


Predictor = RidgePredictor | PairsRidgePredictor | KernelPredictor
