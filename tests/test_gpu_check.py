"""tools/gpu_check.py: the device check a session lent a GPU runs, here on the CPU alone."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import gpu_check  # noqa: E402

SMALL = ["--channels", "4", "--cells", "1", "--image-size", "8", "--epochs", "2",
         "--front-samples", "4", "--train-epochs", "1", "--processes", "2"]


def test_every_step_runs_and_is_recorded(tmp_path):
    assert gpu_check.main(["--out", str(tmp_path), "--devices", "cpu", *SMALL]) == 0
    record = json.loads((tmp_path / "gpu_check.json").read_text())
    for name in ("search_cpu", "resume", "train", "export_onnx", "search_cpu_2_processes"):
        assert record[name]["ok"], record[name]
    assert record["search_cpu_2_processes"]["processes"] == 2
    assert record["search_cpu_2_processes"]["steps"] == record["search_cpu"]["steps"]
    assert record["search_cpu"]["device"] == "cpu" and record["search_cpu"]["steps"] > 0
    assert record["resume"]["same_candidates"] is True
    assert record["export_onnx"]["weights"] == "trained"
    assert record["export_onnx"]["max_abs_diff"] < 1e-4
    assert "| train | True |" in (tmp_path / "gpu_check.md").read_text()


def test_a_failing_step_is_recorded_with_its_error_and_the_rest_still_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--out", str(tmp_path), "--devices", "cuda", "cpu", *SMALL]) == 1
    record = json.loads((tmp_path / "gpu_check.json").read_text())
    assert not record["search_cuda"]["ok"]
    assert "no CUDA GPU" in record["search_cuda"]["error"] and record["search_cuda"]["traceback"]
    assert record["search_cpu"]["ok"]
    assert "resume" not in record  # the first device's run is what resumes, trains, exports
