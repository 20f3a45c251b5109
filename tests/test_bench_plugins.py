"""tools/bench_plugins.py: the shipped search minus each baseline, seed by seed."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import bench_plugins  # noqa: E402


def _records(regret: dict[int, float], hv: dict[int, float], counts=(100, 300, 1000)) -> dict:
    """Per count, per-seed figures as `bench_compare.Entry.data` holds them."""
    seeds = np.array(sorted(regret))
    return {count: {"regret": np.array([regret[s] for s in seeds]),
                    "hv": np.array([hv[s] for s in seeds]), "seeds": seeds} for count in counts}


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip("|").split("|")][1:]


def test_paired_differences_are_seed_by_seed_and_bold_only_when_the_interval_excludes_zero():
    seeds = range(20)
    ours = _records({s: 0.2 + 0.01 * s for s in seeds}, {s: 0.999 for s in seeds})
    # Worse by exactly 0.1 on every seed: the paired difference has no spread at all.
    theirs = _records({s: 0.3 + 0.01 * s for s in seeds}, {s: 0.998 for s in seeds})
    cells = _cells(bench_plugins._paired(ours, theirs, "x"))
    assert cells[0] == "**-0.100 [-0.100, -0.100]**"
    assert cells[3] == "**+0.0010 [+0.0010, +0.0010]**"
    # Level on average with a spread: no bold.
    mixed = _records({s: 0.2 + 0.01 * s + (0.05 if s % 2 else -0.05) for s in seeds},
                     {s: 0.999 for s in seeds})
    cells = _cells(bench_plugins._paired(ours, mixed, "x"))
    assert not cells[0].startswith("**") and "+0.000" in cells[0]


def test_a_single_run_is_compared_with_every_seed():
    """Exhaustive evaluation has one run (seed 0) and one count: every seed of ours and every
    count is compared with it, not seed 0 alone."""
    ours = _records({s: 0.2 + 0.1 * (s % 2) for s in range(10)}, {s: 0.999 for s in range(10)})
    exhaustive = _records({0: 0.2}, {0: 0.999}, counts=(15625,))
    cells = _cells(bench_plugins._paired(ours, exhaustive, "exhaustive"))
    # Half the seeds are 0.1 worse than exhaustive: a mean of +0.05 (seed 0 alone would be 0).
    assert cells[0].startswith("**+0.050") and cells[1].startswith("**+0.050")
