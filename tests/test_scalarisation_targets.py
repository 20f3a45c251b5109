"""tools/scalarisation_targets.py: which cells linear cost coefficients can aim at."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import scalarisation_targets as st  # noqa: E402


def test_a_cell_in_a_dent_of_the_front_is_no_coefficients_target():
    # Front (cost, loss): (1, 0.5), (2, 0.45) in a dent, (3, 0.3), (4, 0.28); plus a
    # dominated cell (2.5, 0.6). The straight line from cost 1 to 3 passes below (2, 0.45).
    cost = np.array([1.0, 2.0, 3.0, 4.0, 2.5])
    loss = np.array([0.5, 0.45, 0.3, 0.28, 0.6])
    aimed = set(st.targets(loss, cost, st.SWEEP).tolist())
    assert aimed == {0, 2, 3}
    # c = 0 takes the lowest loss; a large coefficient the cheapest cell.
    assert st.targets(loss, cost, [0.0, 10.0]).tolist() == [3, 0]


def test_ties_go_to_the_cheaper_cell():
    cost = np.array([2.0, 1.0])
    loss = np.array([0.3, 0.3])
    assert st.targets(loss, cost, [0.0]).tolist() == [1]


def test_compare_reads_the_regret_per_budget_and_rejects_bad_entries(tmp_path: Path):
    folder = tmp_path / "run"
    folder.mkdir()
    summary = {"cost": "params", "first_seed": 0, "seeds": 20, "rows": [
        {"strategy": "multi-asng", "evals": 100, "regret_per_budget": [0.1, 0.2, 0.3, 0.4, 0.5],
         "regret_mean": 0.3}]}
    (folder / "summary.json").write_text(json.dumps(summary))
    lines = st.compare_section([f"ours={folder}:multi-asng"])
    assert "| ours | 0-19 | 100 | 0.100 | 0.200 | 0.300 | 0.400 | 0.500 | 0.300 |" in lines
    for bad, message in [(f"ours={folder}", "LABEL=DIR:STRATEGY"),
                         (f"ours={folder}:optuna-tpe", "no strategy 'optuna-tpe'"),
                         (f"ours={tmp_path / 'nope'}:multi-asng", "does not exist")]:
        with pytest.raises(SystemExit, match=message):
            st.compare_section([bad])
