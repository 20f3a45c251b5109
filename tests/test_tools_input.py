"""tools/*.py given bad input: one line naming the problem, a non-zero exit, before any work,
and no temporary run folder left behind on any exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import NB201_CSV as TABLE

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / "tools"
#: Every refusal comes within seconds; the old code ran on for minutes (or hung) on some.
TIMEOUT_S = 60

#: (tool, bad arguments with every output under {tmp}, what the one line must say).
CASES = [
    ("bench_latency", ["--spaces", "bogus", "--out", "{tmp}/latency.md"],
     "--spaces 'bogus' matches no space; known spaces (select by any part of the name): nb201 on "
     "digits (C=8, N=1, 8x8x1); nb201, the benchmark's (C=16, N=5, 32x32x3); mobilenet, "
     "defaults on 8x8x1 digits; mobilenet, defaults on 32x32x3"),
    ("bench_search_digits", ["--seeds", "0", "--out", "{tmp}/digits.md"],
     "--seeds must be >= 1, got 0"),
    ("bench_split", ["--archs", "0", "--work", "{tmp}/work", "--out", "{tmp}/split.md"],
     "--archs must be >= 2 (Kendall tau"),
    ("bench_angle", ["--archs", "0", "--work", "{tmp}/work", "--cache", "{tmp}/cache.json",
                     "--out", "{tmp}/angle.md"], "--archs must be >= 2 (Kendall tau"),
    ("bench_processes", ["--processes", "0", "--out", "{tmp}/processes.md"],
     "--processes must be >= 1 (the data-parallel processes compared), got 0"),
    ("bench_costs", ["--n", "0", "--out", "{tmp}/costs.md"], "--n must be >= 1, got 0"),
    ("bench_batches", ["--items", "10", "--out", "{tmp}/batches.md"],
     "--items must be >= 256 (one batch of each --batch-sizes), got 10"),
    ("bench_harness_threads", ["--repeats", "0", "--out", "{tmp}/threads.md"],
     "--repeats must be >= 1, got 0"),
    ("bench_search_threads", ["--repeats", "0", "--out", "{tmp}/threads.md"],
     "--repeats must be >= 1, got 0"),
    ("bench_plugins_digits", ["--seeds", "0", "--out", "{tmp}/plugins.md"],
     "--seeds must be >= 1, got 0"),
    ("bench_plugins", ["--replicate", "-2", "--results", "{tmp}/results"],
     "--replicate must be >= 0"),
    ("bench_nb201", ["--costs", "params,flops", "--seeds", "1", "--results", "{tmp}/results"],
     "unknown cost 'flops' (what NAS papers call FLOPs is multiply-accumulates: macs); valid: "
     "params, macs"),
    ("bench_eoi", ["--baselines-from", "{tmp}/absent", "--seeds", "1", "--out", "{tmp}/eoi",
                   "--report", "{tmp}/eoi.md"], "--baselines-from {tmp}/absent: no fronts.jsonl"),
    ("bench_pvll", ["--table", str(TABLE), "--held-out", "1", "--out", "{tmp}/pvll.md"],
     "--held-out must be >= 2 (Kendall tau"),
    ("tune_picks", ["--seeds", "0", "--out", "{tmp}/picks.md"], "--seeds must be >= 1, got 0"),
    ("gpu_check", ["--epochs", "0", "--out", "{tmp}/gpu"], "--epochs must be >= 1, got 0"),
    ("bench_image_check", ["--images", "2", "--out", "{tmp}/image_check.md"],
     "--images must be >= 10, got 2"),
    ("bench_startup", ["--baseline", "{tmp}", "--out", "{tmp}/startup.md"],
     "--baseline {tmp} holds no moonas package: give a checkout"),
]
#: What a tool's refusal must not say: bench_processes blamed threads, not processes.
NOT_SAID = {"bench_processes": "thread"}


def _run_tool(tool: str, args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    """The tool as a user runs it, its temporary folders under `tmp` (TMPDIR); a hang fails
    (and the tool's whole process group, workers included, is killed)."""
    command = [sys.executable, str(TOOLS / f"{tool}.py"), *args]
    with subprocess.Popen(command, cwd=REPO, env={**os.environ, "TMPDIR": str(tmp)},
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as proc:
        try:
            out, err = proc.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            pytest.fail(f"{tool} {' '.join(args)} ran past {TIMEOUT_S} s instead of refusing")
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


@pytest.mark.parametrize("tool, args, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_in_one_line_before_any_work(tool, args, message, tmp_path):
    if tool in ("bench_pvll", "bench_nb201"):  # always there where tests run: never a skip
        assert TABLE.is_file(), f"NAS-Bench-201 table expected at {TABLE}"
    args = [a.format(tmp=tmp_path) for a in args]
    done = _run_tool(tool, args, tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode != 0, done.stdout[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith(f"{tool}.py: error: "), done.stderr
    assert message.format(tmp=tmp_path) in lines[0]
    if tool in NOT_SAID:
        assert NOT_SAID[tool] not in done.stderr, done.stderr
    # Refused before any work: nothing written, no run folder (temporary or --work) made.
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_bench_processes_removes_its_folder_when_a_search_fails(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.syspath_prepend(str(TOOLS))
    import bench_processes

    from moonas.errors import MoonasError

    def failing(args):
        assert list(tmp_path.glob("moonas-processes-*")), "the search runs in the temp folder"
        raise MoonasError("moonas search failed (exit 1): stand-in")

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(bench_processes, "run", failing)
    with pytest.raises(MoonasError, match="stand-in"):
        bench_processes.main(["--processes", "1", "--channels", "4", "--batch-size", "32",
                              "--out", str(tmp_path / "p.md")])
    assert not list(tmp_path.glob("moonas-processes-*"))


def test_bench_processes_removes_its_folder_on_ctrl_c(tmp_path):
    args = ["--processes", "1", "--image-size", "8", "--channels", "4", "--batch-size", "32",
            "--epochs", "2", "--front-samples", "2", "--train-epochs", "1", "--repeats", "1",
            "--out", str(tmp_path / "p.md")]
    proc = subprocess.Popen([sys.executable, str(TOOLS / "bench_processes.py"), *args],
                            cwd=REPO, env={**os.environ, "TMPDIR": str(tmp_path)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        # Wait until the first search has made its run folder inside the temporary one.
        while not any(p.is_dir() for p in tmp_path.glob("moonas-processes-*/*")):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "no search started"
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group
        proc.communicate(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode != 0
    assert not list(tmp_path.glob("moonas-processes-*"))
    assert not (tmp_path / "p.md").exists()
