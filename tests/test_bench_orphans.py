"""`moonas bench --workers N` killed: its pool workers die with it, SIGTERM stops it as Ctrl-C."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import NB201_CSV

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="reads /proc; the parent-death signal is Linux's")

#: Seeds of about 2 s each, enough that the job is still running when it is killed.
_SETTINGS = dict(strategies=("optuna-tpe",), evals=(300,), seeds=12)


def _stat(pid: int) -> tuple[str, int] | None:
    """A process's state letter and parent pid, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()  # the command name may hold spaces and ")"
    return fields[0], int(fields[1])


def _live(pid: int) -> bool:
    """Running or sleeping: a zombie has exited, only its parent has not reaped it yet."""
    found = _stat(pid)
    return found is not None and found[0] not in ("Z", "X")


def _descendants(root: int) -> set[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (found := _stat(int(entry))) is not None:
            parents[int(entry)] = found[1]
    out, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - out
        out |= frontier
    return out


def _wait(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {seconds:.0f} s for {what}")
        time.sleep(0.1)


def _partial(out: Path) -> Path:
    from moonas.bench.partial import PARTIAL_NAME

    return out / PARTIAL_NAME


def _run_lines(out: Path) -> int:
    """Finished runs on disk (the partial file's lines after its settings line)."""
    try:
        return max(len(_partial(out).read_text().splitlines()) - 1, 0)
    except OSError:
        return 0


def _start(out: Path, log: Path) -> subprocess.Popen:
    """The job in its own process, two workers; its stderr goes to a file, not a pipe, which
    orphaned workers would hold open. Started outside the repo, so that the moonas imported
    is the installed one (or PYTHONPATH's)."""
    command = [sys.executable, "-m", "moonas", "bench", "nb201", "--table", str(NB201_CSV),
               "--strategies", ",".join(_SETTINGS["strategies"]),
               "--evals", ",".join(map(str, _SETTINGS["evals"])), "--seeds",
               str(_SETTINGS["seeds"]), "--workers", "2", "--out", str(out), "-q"]
    with log.open("w") as handle:
        return subprocess.Popen(command, cwd=log.parent, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=handle)


def _started(job: subprocess.Popen, out: Path, runs: int) -> set[int]:
    """Once the pool has started (and `runs` runs are on disk): the job's processes but its
    own."""
    _wait(lambda: job.poll() is not None or (
        len(_descendants(job.pid)) >= 2 and _run_lines(out) >= runs), 30, "the workers")
    assert job.poll() is None, f"the job ended early ({job.returncode})"
    workers = _descendants(job.pid)
    assert len(workers) >= 2, f"expected two pool workers, found {sorted(workers)}"
    return workers


def _cleanup(job: subprocess.Popen, workers: set[int]) -> None:
    """Whatever a failed test left: the job and the workers it started, by pid."""
    if job.poll() is None:
        job.kill()
    job.wait()
    for pid in workers:
        if _live(pid):
            os.kill(pid, signal.SIGKILL)


def test_workers_die_with_a_killed_job(tmp_path: Path) -> None:
    """SIGKILL runs no handler in the job: each worker gets SIGTERM from the kernel when its
    parent dies (prctl PR_SET_PDEATHSIG), instead of living on blocked on its pipe."""
    job = _start(tmp_path / "out", tmp_path / "stderr.txt")
    workers: set[int] = set()
    try:
        workers = _started(job, tmp_path / "out", runs=0)
        time.sleep(1)  # into their runs
        job.kill()
        job.wait()
        _wait(lambda: not any(map(_live, workers)), 5, "the workers to exit")
    finally:
        _cleanup(job, workers)
    assert "Traceback" not in (tmp_path / "stderr.txt").read_text()


def test_sigterm_stops_the_job_as_ctrl_c_keeping_its_finished_runs(tmp_path: Path) -> None:
    """SIGTERM (`kill`, `timeout`, a scheduler): one line, exit 143, the workers stopped and the
    finished runs left on disk, whole, for the same command to continue from."""
    from moonas.bench.harness import BenchJob, job_settings
    from moonas.bench.partial import PartialRuns

    out, log = tmp_path / "out", tmp_path / "stderr.txt"
    job = _start(out, log)
    workers: set[int] = set()
    try:
        workers = _started(job, out, runs=1)
        job.send_signal(signal.SIGTERM)
        code = job.wait(timeout=15)
        _wait(lambda: not any(map(_live, workers)), 5, "the workers to exit")
    finally:
        _cleanup(job, workers)
    text = log.read_text()
    assert code == 128 + signal.SIGTERM, text
    assert "moonas bench: terminated (SIGTERM)" in text and "Traceback" not in text
    assert "the same command continues from them" in text
    kept = PartialRuns(out, job_settings(BenchJob(table=str(NB201_CSV), out=str(out),
                                               **_SETTINGS))).load()
    assert len(kept) == _run_lines(out) >= 1  # every line a whole run of this job
    assert [p.name for p in out.iterdir()] == [_partial(out).name]


def test_a_worker_whose_parent_died_before_its_set_up_stops_itself() -> None:
    """The parent can die between the fork and the prctl call (no signal would ever come): the
    worker then sends itself the signal; with its parent alive it runs on."""
    from moonas.bench.harness import _start_worker

    context = multiprocessing.get_context("fork")
    for parent, code in ((os.getpid(), 0), (-1, -signal.SIGTERM)):
        child = context.Process(target=_start_worker, args=(parent,))
        child.start()
        child.join(10)
        assert child.exitcode == code
