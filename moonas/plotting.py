"""Figures (the one home of matplotlib): Pareto fronts of runs, benchmark curves.

Every plot function returns the data it drew, so tests check plots through their data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

__all__ = ["FrontSeries", "save_figure", "plot_anytime", "plot_front_overlay",
           "plot_theta_heatmaps", "plot_search_curves"]


@dataclass(frozen=True)
class FrontSeries:
    """One run's points: cost `(n,)`, accuracy `(n,)` in [0, 1], which are front members and
    which are the modes of the distributions (`mode_of`, None for others)."""

    label: str
    cost: np.ndarray
    accuracy: np.ndarray
    on_front: np.ndarray
    mode_of: tuple[int | None, ...]


def _figure(**kwargs):
    """A bare `matplotlib.figure.Figure`, without pyplot: drawing changes no global state (the
    caller's backend, `rcParams`), and `savefig` picks the canvas the file's format needs."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def _colors() -> list:
    import matplotlib

    return matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]


def save_figure(fig, path: str | Path) -> None:
    """Write `fig` atomically in the format its suffix names (png, svg, pdf)."""
    from moonas.atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=150, bbox_inches="tight")


def plot_anytime(curves: Mapping[str, Mapping[str, Sequence[float]]], path: str | Path, *,
                 title: str = "", ylabel: str = "HV ratio",
                 reference: Mapping[str, float] | None = None) -> dict:
    """A metric against evaluations (log x), one line per strategy: the median with a shaded
    25th-75th percentile band; `reference` values as horizontal dashed lines.

    `curves[label]` holds equally long `evals`, `median`, `p25`, `p75`. Returns what was drawn.
    """
    fig = _figure(figsize=(7.5, 4.8))
    ax = fig.subplots()
    drawn: dict = {"lines": [], "reference": dict(reference or {})}
    colors = _colors()
    lows: list[float] = []
    highs: list[float] = []
    for i, (label, curve) in enumerate(curves.items()):
        color = colors[i % len(colors)]
        order = np.argsort(np.asarray(curve["evals"], dtype=float))
        x = np.asarray(curve["evals"], dtype=float)[order]
        med, p25, p75 = (np.asarray(curve[k], dtype=float)[order] for k in ("median", "p25", "p75"))
        ax.plot(x, med, marker="o", ms=3, color=color, label=label)
        ax.fill_between(x, p25, p75, color=color, alpha=0.15, lw=0)
        lows.extend(p25.tolist())
        highs.extend(p75.tolist())
        drawn["lines"].append({"label": label, "evals": x.tolist(), "median": med.tolist(),
                               "p25": p25.tolist(), "p75": p75.tolist()})
    for j, (label, value) in enumerate((reference or {}).items()):
        ax.axhline(value, color="black", ls="--", lw=0.9, label=label)
        lows.append(value)
        highs.append(value)
    if lows:
        # Ratios sit just below 1 and what matters is the gap 1 - ratio: the y axis is
        # logarithmic in the gap (labels still read as ratios), from a little below the lowest
        # drawn quartile.
        gap_top = max(1.0 - float(np.percentile(lows, 5)), 1e-4) * 1.3
        ax.set_yscale("function", functions=(_gap_forward, _gap_inverse))
        gap_bottom = max(1.0 - max(highs), 1e-6) * 0.6
        ax.set_ylim(1.0 - gap_top, 1.0 - gap_bottom)
        ticks = [t for t in (0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9995)
                 if 1.0 - gap_top <= t <= 1.0 - gap_bottom]
        ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
    ax.set_xscale("log")
    ax.set_xlabel("distinct architectures evaluated")
    ax.set_ylabel(f"{ylabel} (axis: log of 1 - {ylabel})" if lows else ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, path)
    drawn["ylim"] = list(ax.get_ylim())
    return drawn


def _gap_forward(y: np.ndarray) -> np.ndarray:
    return -np.log10(np.clip(1.0 - np.asarray(y, dtype=float), 1e-9, None))


def _gap_inverse(t: np.ndarray) -> np.ndarray:
    return 1.0 - 10.0 ** (-np.asarray(t, dtype=float))


# -- deploy: fronts of several runs, distribution heatmaps, search curves --------------------
def plot_front_overlay(series: Sequence[FrontSeries], path: str | Path, *, xlabel: str,
                       budgets: Sequence[Sequence[float]] = (),
                       trained: Sequence[Sequence[tuple[float, float, float]]] = (),
                       log_x: bool = False, title: str = "") -> dict:
    """Fronts of several runs on one cost axis: candidates faint, each front a step line, the
    distributions' modes as stars, each run's budgets as dashed lines in its colour, and
    retrained networks as hollow diamonds joined to their supernet estimate.

    `budgets[i]` and `trained[i]` belong to `series[i]`; a trained entry is
    `(cost, supernet accuracy, retrained test accuracy)`, accuracies in [0, 1].
    Returns what was drawn (per series: front x, y in %, modes, budgets, trained points).
    """
    fig = _figure(figsize=(7.5, 4.8))
    ax = fig.subplots()
    colors = _colors()
    ylabel = "validation accuracy, shared weights (%)"
    drawn: dict = {"series": [], "xlabel": xlabel, "ylabel": ylabel, "log_x": log_x}
    for i, s in enumerate(series):
        color = colors[i % len(colors)]
        ax.scatter(s.cost, s.accuracy * 100, s=8, alpha=0.25, color=color)
        order = np.argsort(s.cost[s.on_front], kind="stable")
        fx, fy = s.cost[s.on_front][order], s.accuracy[s.on_front][order] * 100
        ax.step(fx, fy, where="post", color=color, marker="o", ms=4, label=f"{s.label} front")
        modes = [j for j, m in enumerate(s.mode_of) if m is not None]
        if modes:
            ax.scatter(s.cost[modes], s.accuracy[modes] * 100, marker="*", s=150, color=color,
                       edgecolor="black", zorder=5, label=f"{s.label} modes")
        lines = list(budgets[i]) if i < len(budgets) else []
        for j, b in enumerate(lines):
            ax.axvline(b, color=color, ls="--", lw=0.8, alpha=0.8,
                       label=f"{s.label} budgets" if j == 0 else None)
        points = list(trained[i]) if i < len(trained) else []
        for j, (x, before, after) in enumerate(points):
            ax.annotate("", xy=(x, after * 100), xytext=(x, before * 100),
                        arrowprops={"arrowstyle": "->", "color": color, "lw": 0.8})
            ax.scatter([x], [after * 100], marker="D", s=45, facecolor="none", edgecolor=color,
                       zorder=6, label=f"{s.label} retrained (test)" if j == 0 else None)
        drawn["series"].append({
            "label": s.label, "front_x": fx.tolist(), "front_y": fy.tolist(),
            "modes": [(float(s.cost[j]), float(s.accuracy[j])) for j in modes],
            "budgets": [float(b) for b in lines],
            "trained": [(float(x), float(b), float(a)) for x, b, a in points],
        })
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, path)
    return drawn


def plot_theta_heatmaps(steps: np.ndarray, theta: np.ndarray, path: str | Path, *,
                        choices: Sequence[tuple[str, Sequence[str]]],
                        budget_labels: Sequence[str], title: str = "") -> dict:
    """How each distribution settled: per distribution a heatmap of the probability of every
    (choice, option) over the search steps.

    `steps` `(T,)`; `theta` `(T, K, D, Kmax)`; `choices[d] = (name, options)` (options beyond
    `len(options)` are padding and left out). Returns the drawn matrices `(rows, T)` per
    distribution and the row labels.
    """
    steps = np.asarray(steps)
    theta = np.asarray(theta, dtype=np.float64)
    n_dists = theta.shape[1]
    rows = [(d, k) for d, (_, options) in enumerate(choices) for k in range(len(options))]
    labels = [f"{choices[d][0]}: {choices[d][1][k]}" for d, k in rows]
    height = 0.6 + n_dists * (0.9 + 0.11 * len(rows))
    fig = _figure(figsize=(8, height), layout="constrained")
    axes = fig.subplots(n_dists, 1, sharex=True, squeeze=False)
    drawn: dict = {"steps": steps.tolist(), "rows": labels, "budget_labels": list(budget_labels),
                   "matrices": []}
    image = None
    for k in range(n_dists):
        ax = axes[k, 0]
        matrix = np.stack([theta[:, k, d, o] for d, o in rows])  # (rows, T)
        extent = (-0.5, len(steps) - 0.5, len(rows) - 0.5, -0.5)
        image = ax.imshow(matrix, aspect="auto", vmin=0.0, vmax=1.0, cmap="viridis",
                          interpolation="nearest", extent=extent)
        boundary = 0
        for _, options in choices[:-1]:
            boundary += len(options)
            ax.axhline(boundary - 0.5, color="white", lw=0.8)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels(labels, fontsize=5 if len(rows) > 30 else 6)
        ax.set_ylabel(budget_labels[k] if k < len(budget_labels) else f"distribution {k}",
                      fontsize=8)
        drawn["matrices"].append(matrix.tolist())
    ticks = np.unique(np.linspace(0, len(steps) - 1, min(len(steps), 8)).round().astype(int))
    axes[-1, 0].set_xticks(ticks)
    axes[-1, 0].set_xticklabels([str(int(steps[t])) for t in ticks])
    axes[-1, 0].set_xlabel("search step (end of epoch)")
    if image is not None:
        fig.colorbar(image, ax=axes[:, 0].tolist(), label="probability", shrink=0.6)
    fig.suptitle(title or "option probabilities per distribution", fontsize=10)
    save_figure(fig, path)
    return drawn


def _moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over up to `window` values (NaNs skipped), same length as `values`."""
    values = np.asarray(values, dtype=np.float64)
    out = np.empty_like(values)
    for i in range(len(values)):
        chunk = values[max(0, i - window + 1):i + 1]
        chunk = chunk[np.isfinite(chunk)]
        out[i] = chunk.mean() if len(chunk) else np.nan
    return out


def plot_search_curves(steps: np.ndarray, train_loss: np.ndarray, path: str | Path, *,
                       dist_steps: np.ndarray, val_loss: np.ndarray, entropy: np.ndarray | None,
                       budget_labels: Sequence[str], window: int = 1, title: str = "") -> dict:
    """Losses and distribution entropies over the search: the supernet's training loss and
    each distribution's validation loss (trailing mean over `window` steps, raw values faint),
    and below each distribution's entropy (nats, summed over choices).

    `steps`, `train_loss` `(T,)`; `dist_steps` `(S,)`; `val_loss`, `entropy` `(S, K)`. A search
    without distributions (`S = 0`, `entropy` None) gets the training loss alone.
    Returns the drawn (smoothed) curves.
    """
    if not len(dist_steps):
        entropy = None
    rows = 2 if entropy is not None else 1
    fig = _figure(figsize=(7.5, 3.0 * rows + 0.6))
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)
    colors = _colors()
    ax = axes[0, 0]
    train = _moving_average(train_loss, window)
    ax.plot(steps, train_loss, color="black", alpha=0.15, lw=0.8)
    ax.plot(steps, train, color="black", lw=1.4, label="supernet train loss")
    drawn: dict = {"steps": np.asarray(steps).tolist(), "train_loss": train.tolist(),
                   "dist_steps": np.asarray(dist_steps).tolist(), "val_loss": [],
                   "entropy": [], "budget_labels": list(budget_labels), "window": window}
    val_loss = np.asarray(val_loss, dtype=np.float64)
    # (S, K); no distribution steps (searches without distributions) draw no columns.
    val_loss = (val_loss.reshape(len(dist_steps), -1) if len(dist_steps)
                else np.zeros((0, 0)))
    for k in range(val_loss.shape[1]):
        color = colors[k % len(colors)]
        label = budget_labels[k] if k < len(budget_labels) else f"distribution {k}"
        smooth = _moving_average(val_loss[:, k], window)
        ax.plot(dist_steps, val_loss[:, k], color=color, alpha=0.15, lw=0.8)
        ax.plot(dist_steps, smooth, color=color, lw=1.2, label=f"val loss, {label}",
                marker="o" if len(dist_steps) < 20 else None, ms=3)
        drawn["val_loss"].append(smooth.tolist())
    ax.set_ylabel("cross-entropy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    if entropy is not None:
        entropy = np.asarray(entropy, dtype=np.float64).reshape(len(dist_steps), -1)
        ax = axes[1, 0]
        for k in range(entropy.shape[1]):
            label = budget_labels[k] if k < len(budget_labels) else f"distribution {k}"
            ax.plot(dist_steps, entropy[:, k], color=colors[k % len(colors)], lw=1.2,
                    label=label, marker="o" if len(dist_steps) < 20 else None, ms=3)
            drawn["entropy"].append(entropy[:, k].tolist())
        ax.set_ylabel("entropy (nats)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("search step")
    fig.suptitle(title or "search curves", fontsize=10)
    save_figure(fig, path)
    return drawn
