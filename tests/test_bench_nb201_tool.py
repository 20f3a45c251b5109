"""tools/bench_nb201.py: bad input is refused in one line before the benchmark's hours."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[1] / "tools"
sys.path.insert(0, str(TOOLS))
import bench_nb201  # noqa: E402

from moonas.errors import ConfigError  # noqa: E402


def test_settings_must_be_a_json_object() -> None:
    assert bench_nb201.parse_settings('{"delta0": 0.5}') == {"delta0": 0.5}
    for text, message in (("{bad", r"--settings '\{bad' is not valid JSON \(Expecting "),
                          ("[1]", "is not a JSON object")):
        with pytest.raises(ConfigError, match=message):
            bench_nb201.parse_settings(text)


def test_bad_settings_are_one_line_not_a_traceback(tmp_path: Path) -> None:
    """`--settings '{bad'` was a JSONDecodeError traceback."""
    done = subprocess.run([sys.executable, str(TOOLS / "bench_nb201.py"), "--results",
                           str(tmp_path / "r"), "--settings", "{bad"], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench_nb201.py: error: --settings '{bad'")
    assert not (tmp_path / "r").exists()
