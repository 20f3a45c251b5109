"""tools/bench_processes.py: processes against threads, run small."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import bench_processes  # noqa: E402


def test_every_variant_runs_and_lands_in_the_table(tmp_path):
    out = tmp_path / "processes.md"
    bench_processes.main(["--processes", "2", "--image-size", "8", "--channels", "4",
                          "--batch-size", "32", "--epochs", "2", "--front-samples", "4",
                          "--train-epochs", "1", "--repeats", "1", "--out", str(out)])
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| 4 | 32 |")]
    assert [r.split(" | ")[2] for r in rows] == [
        "1 process, 1 thread", "1 process, 2 threads", "2 processes, 1 thread each"]
    assert rows[0].split(" | ")[5] == "1.00x"
    assert "| 2 processes, 1 thread each | 2 |" in text  # the retraining ran in two processes
    assert "| 1 process, 2 threads | 1 |" in text
