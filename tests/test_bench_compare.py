"""tools/bench_compare.py: intervals over seeds, and differences marked only when they hold."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import bench_compare  # noqa: E402


def _folder(path: Path, strategies: dict[str, tuple[float, float]], seeds: int = 12,
            signal: bool = False, found: bool = False, counts: tuple[int, ...] = (100, 300),
            first: int = 0) -> Path:
    """A bench folder whose strategies have per-seed HV ~ N(hv, 1e-4), regret ~ N(r, 0.02);
    with `signal`, a signal regret of half the regret (as the harness writes since it kept it);
    with `found`, a found regret of a quarter of it."""
    rng = np.random.default_rng(1)
    path.mkdir()
    summary = {"dataset": "c10", "cost": "params", "prune": "dead",
               "strategies": {name: "" for name in strategies}}
    (path / "summary.json").write_text(json.dumps(summary))
    lines = []
    for name, (hv, regret) in strategies.items():
        for count in counts:
            for seed in range(first, first + seeds):
                line = {"strategy": name, "evals": count, "seed": seed,
                        "hv_ratio": hv + rng.normal(0, 1e-4),
                        "regret": [regret + rng.normal(0, 0.02)] * 5}
                if signal:
                    line["signal_regret"] = [v / 2 for v in line["regret"]]
                if found:
                    line["found_regret"] = [v / 4 for v in line["regret"]]
                lines.append(json.dumps(line))
    (path / "fronts.jsonl").write_text("\n".join(lines) + "\n")
    return path


def test_differences_are_marked_only_when_the_interval_excludes_zero(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "runs", {"a": (0.995, 0.50), "b": (0.995, 0.20),
                                         "c": (0.995, 0.50)})
    entries = [bench_compare.load(f"A={folder}:a"), bench_compare.load(f"B={folder}:b"),
               bench_compare.load(f"C={folder}:c")]
    assert len(entries[0][2][100]["regret"]) == 12
    text = bench_compare.page([("one", entries), ("two", entries[:1])], "test")
    assert "## one" in text and "## two" in text
    regret_diffs = text.split("Mean regret (points), row minus A:")[1].split("## two")[0]
    row_b = next(line for line in regret_diffs.splitlines() if line.startswith("| B |"))
    row_c = next(line for line in regret_diffs.splitlines() if line.startswith("| C |"))
    assert row_b.count("**") == 4  # -0.30 at both counts, intervals well below 0
    assert "**" not in row_c  # same distribution: no difference claimed
    lo, hi = bench_compare.interval(entries[0][2][100]["regret"], np.mean)
    assert lo < entries[0][2][100]["regret"].mean() < hi


def test_signal_regret_is_compared_only_when_every_folder_kept_it(tmp_path: Path) -> None:
    new = _folder(tmp_path / "new", {"a": (0.995, 0.50), "b": (0.995, 0.20)}, signal=True)
    old = _folder(tmp_path / "old", {"c": (0.995, 0.50)})
    both_new = [bench_compare.load(f"A={new}:a"), bench_compare.load(f"B={new}:b")]
    assert np.allclose(both_new[0][2][300]["signal"], both_new[0][2][300]["regret"] / 2)
    text = bench_compare.page([("new", both_new)], "test")
    diffs = text.split("Mean signal regret (12-epoch points the search missed), row minus A:")[1]
    row_b = next(line for line in diffs.splitlines() if line.startswith("| B |"))
    assert row_b.count("**") == 4  # -0.15 at both counts
    mixed = both_new + [bench_compare.load(f"C={old}")]
    assert "signal" not in mixed[2][2][100]
    assert "Mean signal regret" not in bench_compare.page([("mixed", mixed)], "test")


def test_found_regret_is_compared_only_when_every_folder_has_it(tmp_path: Path) -> None:
    new = _folder(tmp_path / "new", {"a": (0.995, 0.50), "b": (0.995, 0.20)}, found=True)
    old = _folder(tmp_path / "old", {"c": (0.995, 0.50)})
    both = [bench_compare.load(f"A={new}:a"), bench_compare.load(f"B={new}:b")]
    assert np.allclose(both[0][2][100]["found"], both[0][2][100]["regret"] / 4)
    text = bench_compare.page([("new", both)], "test")
    diffs = text.split("Mean found regret")[2]  # the differences' table
    row_b = next(line for line in diffs.splitlines() if line.startswith("| B |"))
    assert row_b.count("**") == 4  # (0.20 - 0.50) / 4 at both counts
    assert all(-0.08 < float(cell.split("**")[1].split()[0]) < -0.07
               for cell in row_b.split("|")[2:4])
    mixed = both + [bench_compare.load(f"C={old}")]
    assert "Mean found regret" not in bench_compare.page([("mixed", mixed)], "test")


def test_an_older_folder_gets_its_signal_regret_from_its_picks_and_table(tmp_path: Path) -> None:
    from conftest import NB201_CSV

    from moonas.bench.scoring import budget_percentiles, signal_regret
    from moonas.bench.table import load_problem

    problem = load_problem(NB201_CSV, "c10", "params")
    budgets = budget_percentiles(problem.cost)
    rows = np.random.default_rng(0).integers(0, problem.size, size=(3, len(budgets)))
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps({
        "dataset": "c10", "cost": "params", "table": str(NB201_CSV), "budgets": list(budgets),
        "strategies": {"a": ""}}))
    (folder / "fronts.jsonl").write_text("".join(
        json.dumps({"strategy": "a", "evals": 100, "seed": seed, "hv_ratio": 0.99,
                    "regret": [0.5] * len(budgets),
                    "picks": [problem.arch_strs[i] for i in picked]}) + "\n"
        for seed, picked in enumerate(rows)))
    data = bench_compare.load(f"A={folder}").data
    want = [signal_regret(picked, problem.signal, problem.cost, budgets).mean() for picked in rows]
    assert np.allclose(data[100]["signal"], want) and min(want) > 0


def test_bad_entries_exit_with_one_line(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "runs", {"a": (0.99, 0.5), "b": (0.99, 0.4)})
    for spec, message in ((f"{folder}", "expected LABEL=DIR"),
                          (f"x={tmp_path / 'none'}", "not found"),
                          (f"x={folder}", "name one as"),
                          (f"x={folder}:zz", "has no 'zz'")):
        with pytest.raises(SystemExit, match=message):
            bench_compare.load(spec)


def _seeded(path: Path, strategy: str, regrets: np.ndarray) -> Path:
    """A bench folder with one strategy whose seed i has mean regret regrets[i] at 100."""
    path.mkdir()
    (path / "summary.json").write_text(json.dumps({"dataset": "c10", "cost": "params",
                                                   "strategies": {strategy: ""}}))
    (path / "fronts.jsonl").write_text("".join(
        json.dumps({"strategy": strategy, "evals": 100, "seed": seed, "hv_ratio": 0.99,
                    "regret": [float(r)] * 5}) + "\n" for seed, r in enumerate(regrets)))
    return path


def test_two_settings_of_one_strategy_pair_over_seeds(tmp_path: Path) -> None:
    # Seeds differ a lot (sd 0.1), the second setting is 0.03 better on each seed: only the
    # paired difference can tell, and only the same strategy on the same seeds pairs.
    rng = np.random.default_rng(0)
    base = rng.normal(0.5, 0.1, size=12)
    better = base - 0.03 + rng.normal(0, 0.005, size=12)
    first = bench_compare.load(f"A={_seeded(tmp_path / 'a', 's', base)}")
    same = bench_compare.load(f"B={_seeded(tmp_path / 'b', 's', better)}")
    other = bench_compare.load(f"C={_seeded(tmp_path / 'c', 't', better)}")
    short = bench_compare.load(f"D={_seeded(tmp_path / 'd', 's', better[:10])}")
    assert bench_compare.paired(same, first, [100])
    assert not bench_compare.paired(other, first, [100])
    assert not bench_compare.paired(short, first, [100])
    rows = {}
    for pairing in (True, False):
        text = bench_compare.page([("g", [first, same, other])], "test", pairing=pairing)
        diffs = text.split("Mean regret (points), row minus A:")[1]
        rows[pairing] = [line for line in diffs.splitlines() if line.startswith(("| B", "| C"))]
    assert rows[True][0].startswith("| B (*paired*) |") and rows[True][0].count("**") == 2
    assert "paired" not in rows[True][1] and "**" not in rows[True][1]
    assert "paired" not in rows[False][0] and "**" not in rows[False][0]
    d, low, high = bench_compare.difference(better, base, np.mean, np.random.default_rng(1),
                                            paired=True)
    assert low < d < high < 0 and abs(d - (better.mean() - base.mean())) < 1e-12


def test_folders_pool_their_seeds_and_a_seed_list_keeps_some(tmp_path: Path) -> None:
    a = _folder(tmp_path / "a", {"x": (0.995, 0.50)}, seeds=6)
    b = _folder(tmp_path / "b", {"x": (0.995, 0.50)}, seeds=6)
    only = bench_compare.load(f"A={a}:x@0-1,4")
    assert only.data[100]["seeds"].tolist() == [0, 1, 4]
    np.testing.assert_allclose(only.data[100]["regret"],
                               bench_compare.load(f"A={a}:x").data[100]["regret"][[0, 1, 4]])
    with pytest.raises(SystemExit, match="seed 0 of x is in both"):
        bench_compare.load(f"P={a}+{b}:x")
    # Disjoint seed sets pool: the second folder's seeds shifted past the first's.
    lines = (b / "fronts.jsonl").read_text().splitlines()
    shifted = [json.dumps({**json.loads(x), "seed": json.loads(x)["seed"] + 200}) for x in lines]
    (b / "fronts.jsonl").write_text("\n".join(shifted) + "\n")
    pooled = bench_compare.load(f"P={a}+{b}:x")
    assert pooled.data[100]["seeds"].tolist() == [*range(6), *range(200, 206)]
    text = bench_compare.page([("pooled", [pooled])], "test")
    assert "seeds 0..5, 200..205 (12)" in text


def test_a_count_only_part_of_a_pooled_entry_reached_is_left_out(tmp_path: Path) -> None:
    full = _folder(tmp_path / "full", {"a": (0.995, 0.5)})
    short = _folder(tmp_path / "short", {"a": (0.995, 0.5)}, counts=(100,), first=100)
    other = _folder(tmp_path / "other", {"b": (0.995, 0.4)}, seeds=24)
    entries = [bench_compare.load(f"A={full}+{short}:a"), bench_compare.load(f"B={other}:b")]
    assert len(entries[0][2][100]["seeds"]) == 24 and len(entries[0][2][300]["seeds"]) == 12
    text = bench_compare.page([("pooled", entries)], "test")
    assert "| @100 |" in text and "@300 |" not in text
    assert "left out: @300, which some entry holds for only part of its seeds" in text
    # Each folder alone reaches both counts for all of its seeds: both stay.
    text = bench_compare.page([("one", [bench_compare.load(f"A={full}:a"), entries[1]])], "t")
    assert "| @100 | @300 |" in text and "left out" not in text


def test_entries_sharing_no_count_exit_with_one_line_naming_each_entrys_counts(
        tmp_path: Path) -> None:
    """Two folders run at different --evals made a page of empty tables and exit 0."""
    a = bench_compare.load(f"A={_folder(tmp_path / 'a', {'x': (0.99, 0.5)}, counts=(20, 50))}")
    b = bench_compare.load(f"B={_folder(tmp_path / 'b', {'y': (0.99, 0.4)}, counts=(100,))}")
    with pytest.raises(SystemExit, match=r"^error: the entries of a group share no evaluation "
                                         r"count \(A has @20, @50; B has @100\): compare "
                                         "folders run at a common --evals count$"):
        bench_compare.page([("g", [a, b])], "test")


def test_a_truncated_summary_or_fronts_file_exits_with_one_line_naming_it(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "runs", {"a": (0.99, 0.5)})
    fronts = folder / "fronts.jsonl"
    lines = fronts.read_text().splitlines()
    fronts.write_text("\n".join(lines[:3] + [lines[3][:40]]) + "\n")
    with pytest.raises(SystemExit, match=rf"^error: {fronts} line 4 is not valid JSON \(.*cut "
                                         "short\\?\\): run the bench job again"):
        bench_compare.load(f"A={folder}")
    summary = folder / "summary.json"
    summary.write_text(summary.read_text()[:25])
    with pytest.raises(SystemExit, match=rf"^error: {summary} is not valid JSON"):
        bench_compare.load(f"A={folder}")
    summary.write_text("[]")
    with pytest.raises(SystemExit, match="is not a moonas bench summary"):
        bench_compare.load(f"A={folder}")
