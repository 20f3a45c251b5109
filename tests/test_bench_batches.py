"""tools/bench_batches.py: items against whole batches, run small."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import bench_batches  # noqa: E402


def test_both_paths_are_timed_and_tabled(tmp_path):
    threads = torch.get_num_threads()
    out = tmp_path / "batches.md"
    try:
        bench_batches.main(["--items", "600", "--batch-sizes", "16", "--batches", "5",
                            "--repeats", "1", "--folder-images", "160", "--max-workers", "1",
                            "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    rows = [line.split(" | ") for line in out.read_text().splitlines() if line.startswith("| 16 |")]
    assert [r[1] for r in rows] == list(bench_batches.PATHS)
    assert rows[0][4] == "1.00x |" and all(float(r[2]) > 0 for r in rows)
    workers = [line.split(" | ") for line in out.read_text().splitlines()
               if line.startswith("| 0 |") or line.startswith("| 1 |")]
    assert [w[0] for w in workers] == ["| 0", "| 1"] and workers[0][3] == "1.00x |"


def test_the_stand_in_is_the_shipped_fast_path():
    view = bench_batches.stand_in(40)
    assert view.batchable() and view.augment is not None


def test_a_tool_given_bad_input_prints_one_line(tmp_path) -> None:
    import subprocess

    tool = Path(__file__).resolve().parents[1] / "tools" / "bench_batches.py"
    result = subprocess.run([sys.executable, str(tool), "--batch-sizes", "0", "--out",
                             str(tmp_path / "b.md")], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "bench_batches.py: error: batch_size=0 must be a positive integer, e.g. 64"]
    assert not (tmp_path / "b.md").exists()
