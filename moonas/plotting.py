"""Figures (the one home of matplotlib): Pareto fronts of runs, benchmark curves.

Every plot function returns the data it drew, so tests check plots through their data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

__all__ = ["FrontSeries", "plot_fronts", "save_figure", "plot_anytime"]


@dataclass(frozen=True)
class FrontSeries:
    """One run's points: cost `(n,)`, accuracy `(n,)` in [0, 1], which are front members and
    which are the modes of the distributions (`mode_of`, None for others)."""

    label: str
    cost: np.ndarray
    accuracy: np.ndarray
    on_front: np.ndarray
    mode_of: tuple[int | None, ...]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> None:
    """Write `fig` atomically in the format its suffix names (png, svg, pdf)."""
    from moonas.atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=150, bbox_inches="tight")


def plot_fronts(series: Sequence[FrontSeries], path: str | Path, *, xlabel: str,
                budgets: Sequence[float] = (), log_x: bool = False) -> dict:
    """Accuracy against cost: all candidates faint, each front as a step line, modes as stars,
    budgets as vertical dashed lines. Returns what was drawn (per series: front x, y; modes)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn: dict = {"series": [], "budgets": list(budgets)}
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, s in enumerate(series):
        color = colors[i % len(colors)]
        ax.scatter(s.cost, s.accuracy * 100, s=8, alpha=0.25, color=color)
        order = np.argsort(s.cost[s.on_front])
        fx, fy = s.cost[s.on_front][order], s.accuracy[s.on_front][order] * 100
        ax.step(fx, fy, where="post", color=color, marker="o", ms=4, label=f"{s.label} front")
        modes = [j for j, m in enumerate(s.mode_of) if m is not None]
        if modes:
            ax.scatter(s.cost[modes], s.accuracy[modes] * 100, marker="*", s=140, color=color,
                       edgecolor="black", zorder=5, label=f"{s.label} modes")
        drawn["series"].append({"label": s.label, "front_x": fx.tolist(), "front_y": fy.tolist(),
                                "modes": [(float(s.cost[j]), float(s.accuracy[j])) for j in modes]})
    for b in budgets:
        ax.axvline(b, color="grey", ls="--", lw=0.8)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("validation accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, path)
    plt.close(fig)
    return drawn


def plot_anytime(curves: Mapping[str, Mapping[str, Sequence[float]]], path: str | Path, *,
                 title: str = "", ylabel: str = "HV ratio",
                 reference: Mapping[str, float] | None = None) -> dict:
    """A metric against evaluations (log x), one line per strategy: the median with a shaded
    25th-75th percentile band; `reference` values as horizontal dashed lines.

    `curves[label]` holds equally long `evals`, `median`, `p25`, `p75`. Returns what was drawn.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    drawn: dict = {"lines": [], "reference": dict(reference or {})}
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    lows: list[float] = []
    for i, (label, curve) in enumerate(curves.items()):
        color = colors[i % len(colors)]
        order = np.argsort(np.asarray(curve["evals"], dtype=float))
        x = np.asarray(curve["evals"], dtype=float)[order]
        med, p25, p75 = (np.asarray(curve[k], dtype=float)[order] for k in ("median", "p25", "p75"))
        ax.plot(x, med, marker="o", ms=3, color=color, label=label)
        ax.fill_between(x, p25, p75, color=color, alpha=0.15, lw=0)
        lows.extend(p25.tolist())
        drawn["lines"].append({"label": label, "evals": x.tolist(), "median": med.tolist(),
                               "p25": p25.tolist(), "p75": p75.tolist()})
    for j, (label, value) in enumerate((reference or {}).items()):
        ax.axhline(value, color="black", ls="--", lw=0.9, label=label)
        lows.append(value)
    if lows:
        # The interesting range is narrow (ratios near 1): start the axis a little below the
        # lowest drawn quartile, not at 0.
        low = float(np.percentile(lows, 5))
        ax.set_ylim(low - 0.1 * (1.0 - low), 1.0 + 0.02 * (1.0 - low))
    ax.set_xscale("log")
    ax.set_xlabel("distinct architectures evaluated")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, path)
    plt.close(fig)
    drawn["ylim"] = list(ax.get_ylim())
    return drawn
