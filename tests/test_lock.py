"""The one-writer lock: taken atomically, refused while its holder lives, taken over when stale."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import subprocess

import pytest

from moonas.errors import MoonasError
from moonas.lock import LOCK, _start_time, acquire, check_free, holder, release


def _write_lock(root, pid: int, host: str | None = None, start: str | None = "same") -> dict:
    """A lock in `root` naming `pid` (its real start time unless given), as a writer leaves it."""
    record = {"pid": pid, "host": host or socket.gethostname(),
              "start": _start_time(pid) if start == "same" else start, "since": "then"}
    (root / LOCK).write_text(json.dumps(record))
    return record


def test_acquire_writes_a_complete_lock_and_release_drops_it(tmp_path) -> None:
    acquire(tmp_path, "trained")
    owner = json.loads((tmp_path / LOCK).read_text())
    assert owner["pid"] == os.getpid() and owner["start"] == _start_time(os.getpid())
    assert [p.name for p in tmp_path.iterdir()] == [LOCK]  # no temporary file left behind
    acquire(tmp_path, "trained")  # this process's own lock: held already
    assert holder(tmp_path) is None  # this process is no other holder
    release(tmp_path)
    assert not (tmp_path / LOCK).exists()


def test_a_live_holder_is_refused_with_one_line_and_keeps_its_lock(tmp_path, live) -> None:
    record = _write_lock(tmp_path, live)
    with pytest.raises(MoonasError, match=f"being trained by process {live} .*stop it first"
                       ) as info:
        acquire(tmp_path, "trained")
    assert "\n" not in str(info.value)
    assert json.loads((tmp_path / LOCK).read_text()) == record
    assert holder(tmp_path) == record
    with pytest.raises(MoonasError, match=f"process {live}"):
        check_free(tmp_path)
    release(tmp_path)  # not this process's: left alone
    assert (tmp_path / LOCK).exists()


@pytest.mark.parametrize("stale", ["dead", "reused pid", "other host", "unreadable"])
def test_a_stale_lock_is_taken_over(tmp_path, stale) -> None:
    if stale == "dead":
        gone = subprocess.Popen(["true"])
        gone.wait()
        _write_lock(tmp_path, gone.pid, start="1")
    elif stale == "reused pid":  # a live pid that started after the lock's writer
        _write_lock(tmp_path, os.getppid(), start="1")
    elif stale == "other host":
        _write_lock(tmp_path, os.getppid(), host="elsewhere")
    else:
        (tmp_path / LOCK).write_text("{not json")
    assert holder(tmp_path) is None
    acquire(tmp_path)
    assert json.loads((tmp_path / LOCK).read_text())["pid"] == os.getpid()
    release(tmp_path)


def test_check_free_never_removes_a_fresh_lock_put_in_a_stale_ones_place(tmp_path, live,
                                                                        monkeypatch) -> None:
    """Between reading a stale lock and removing it, another writer may have replaced it."""
    import moonas.lock as lock

    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = _write_lock(tmp_path, gone.pid, start="1")
    reads = []
    real = lock._read

    def read_then_replace(path):
        got = real(path)
        reads.append(got)
        if len(reads) == 1:  # the other writer takes the folder right after our first look
            _write_lock(tmp_path, live)
        return got

    monkeypatch.setattr(lock, "_read", read_then_replace)
    check_free(tmp_path)
    assert reads[0] == stale
    assert json.loads((tmp_path / LOCK).read_text())["pid"] == live


def _contend(root: str, start, results, leave) -> None:
    start.wait()
    try:
        acquire(root, "trained")
    except MoonasError as err:
        results.put(("refused", str(err)))
    else:
        results.put(("took", os.getpid()))
    leave.wait()  # the holder stays alive while the others try
    release(root)


def test_of_writers_started_at_once_exactly_one_takes_the_folder(tmp_path) -> None:
    context = multiprocessing.get_context("fork")
    n = 6
    start, leave = context.Barrier(n), context.Event()
    results = context.Queue()
    procs = [context.Process(target=_contend, args=(str(tmp_path), start, results, leave))
             for _ in range(n)]
    for p in procs:
        p.start()
    try:
        got = [results.get(timeout=60) for _ in range(n)]
    finally:
        leave.set()
        for p in procs:
            p.join(30)
    took = [value for kind, value in got if kind == "took"]
    assert len(took) == 1, got
    refusals = [value for kind, value in got if kind == "refused"]
    assert all(f"being trained by process {took[0]}" in text for text in refusals)
    assert not (tmp_path / LOCK).exists()  # the holder released it on its way out


def test_a_folder_that_cannot_take_a_lock_is_one_line(tmp_path, monkeypatch) -> None:
    import tempfile

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)  # as in a folder without write access
    with pytest.raises(MoonasError, match="cannot write to .*Permission denied.*make the "
                       "folder writable"):
        acquire(tmp_path)


def test_without_hard_links_the_lock_is_still_exclusive(tmp_path, live, monkeypatch) -> None:
    def no_links(src, dst):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    _write_lock(tmp_path, live)
    with pytest.raises(MoonasError, match=f"process {live}"):
        acquire(tmp_path)
    (tmp_path / LOCK).unlink()
    acquire(tmp_path)
    assert json.loads((tmp_path / LOCK).read_text())["pid"] == os.getpid()
    assert [p.name for p in tmp_path.iterdir()] == [LOCK]


def test_a_folder_that_cannot_be_held_or_freed_is_one_line(tmp_path, monkeypatch) -> None:
    """`hold` (a resume's lock) and the removal of a stale lock in a read-only folder: the
    one line `acquire` gives, not a PermissionError's traceback."""
    import tempfile

    from moonas.lock import hold

    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = _write_lock(tmp_path, gone.pid, start="1")

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(MoonasError, match=f"cannot write to {tmp_path} \\(Permission denied\\): "
                       "make the folder writable") as info:
        hold(tmp_path)
    assert "\n" not in str(info.value)
    monkeypatch.setattr(os, "unlink", read_only)  # Path.unlink: the stale lock stays
    with pytest.raises(MoonasError, match=f"cannot write to {tmp_path} \\(Permission denied\\): "
                       "make the folder writable"):
        check_free(tmp_path)
    assert json.loads((tmp_path / LOCK).read_text()) == stale
