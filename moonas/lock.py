"""One writer per folder: a lock file naming the process that writes a run (or a retraining)
there, refused to a second writer while that process lives.

The lock is `.moonas-lock` (JSON: pid, host, process start time, since). A lock left by a
process that is gone, or whose pid was reused (the start time differs), is taken over; so is
one from another host, whose liveness cannot be checked from here.

`acquire` takes a lock in one atomic step (the complete file hard-linked into place, which
fails when a lock is there), so of two writers started at once exactly one gets the folder.
`check_free` only looks; `hold` overwrites whatever lock is there (for a writer that checked
first and whose folder no other command takes by `acquire`).
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from moonas.atomic import write_json
from moonas.errors import MoonasError

try:  # POSIX: serialises the removal of a stale lock among the writers that found it
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["LOCK", "acquire", "check_free", "holder", "hold", "release"]

LOCK = ".moonas-lock"


def holder(root: str | Path) -> dict | None:
    """The record (pid, host, start, since) of the live process on this machine, other than
    this one, that holds `root`; None when no such process does."""
    owner = _read(Path(root) / LOCK)
    return owner if owner and not _mine(owner) and _live(owner) else None


def check_free(root: str | Path, what: str = "written") -> None:
    """One line when a live process on this machine holds `root` (`what` it does there, for
    the message: "written", "trained"); a dead writer's lock is removed."""
    lock = Path(root) / LOCK
    owner = _read(lock)
    if not owner or _mine(owner):
        return
    if _live(owner):
        raise _refusal(root, what, owner)
    if owner.get("host") == socket.gethostname():  # its writer is gone: nothing holds the folder
        _remove_stale(lock, owner)


def acquire(root: str | Path, what: str = "written") -> None:
    """Take `root` (an existing folder) for this process in one atomic step, until `release`;
    one line naming the live process that holds it instead. A stale lock (its writer gone, or
    on another host) is removed and the lock taken."""
    root = Path(root)
    lock = root / LOCK
    for _ in range(3):  # a stale lock removed, then one more try (and one if it vanished)
        if _link_new(root, lock):
            return
        owner = _read(lock)
        if owner == {}:  # perhaps a lock being filled (see `_create_new`): look once more
            time.sleep(0.1)
            owner = _read(lock)
        if owner is None:  # released between the two steps
            continue
        if _mine(owner):
            return
        if _live(owner):
            raise _refusal(root, what, owner)
        _remove_stale(lock, owner)
    raise MoonasError(f"{root}: another process keeps taking its lock ({lock}); try again")


def hold(root: str | Path) -> None:
    """Mark `root` (an existing folder) as held by this process, until `release`; one line
    when the folder cannot be written (a resume of a run in a read-only folder)."""
    try:
        write_json(Path(root) / LOCK, _record())
    except OSError as err:
        raise _unwritable(root, err) from None


def release(root: str | Path) -> None:
    """Drop this process's lock on `root` (nothing when another process took it over)."""
    lock = Path(root) / LOCK
    owner = _read(lock)
    if owner and owner.get("pid") == os.getpid():
        lock.unlink(missing_ok=True)


def _record() -> dict:
    """What a lock of this process says."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "start": _start_time(os.getpid()),
            "since": datetime.datetime.now().isoformat(timespec="seconds")}


def _read(lock: Path) -> dict | None:
    """The lock's record; None when there is no lock, {} when it cannot be read (stale)."""
    try:
        owner = json.loads(lock.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _mine(owner: dict) -> bool:
    """Whether `owner` is this process (same pid and start on this host)."""
    return (owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname()
            and owner.get("start") == _start_time(os.getpid()))


def _live(owner: dict) -> bool:
    """Whether `owner` is a process that still runs on this machine (not a reused pid)."""
    pid = owner.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool):
        return False
    if owner.get("host") != socket.gethostname():
        return False
    return _alive(pid) and owner.get("start") == _start_time(pid)


def _refusal(root: str | Path, what: str, owner: dict) -> MoonasError:
    """The one line refusing `root` to a second writer."""
    return MoonasError(f"{root} is being {what} by process {owner.get('pid')} (since "
                       f"{owner.get('since', '?')}): wait for it to end, or stop it first")


def _unwritable(root: str | Path, err: OSError) -> MoonasError:
    """The one line for a folder whose lock cannot be written or removed."""
    return MoonasError(f"cannot write to {root} ({err.strerror or err}): make the folder "
                       "writable")


def _link_new(root: Path, lock: Path) -> bool:
    """Put this process's complete lock file in place unless a lock is there (then False):
    written beside it first, so no reader ever sees a half-written lock."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{LOCK}.", suffix=".tmp", dir=root)
    except OSError as err:
        raise _unwritable(root, err) from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # readable by others, who check whether it is live
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(_record()) + "\n")
        try:
            os.link(tmp, lock)
        except FileExistsError:
            return False
        except OSError:  # a filesystem without hard links: an exclusive create instead
            return _create_new(lock)
        return True
    finally:
        os.unlink(tmp)


def _create_new(lock: Path) -> bool:
    """`_link_new` where hard links are unsupported: create the lock exclusively, then fill
    it (a reader in between finds it empty, and `acquire` looks again)."""
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(_record()) + "\n")
    return True


def _remove_stale(lock: Path, seen: dict) -> None:
    """Remove `lock` if it still holds `seen` (a stale record): of the writers that found it
    stale, each removes it at most once, never a fresh lock another one put in its place."""
    with _guard(lock.parent):
        if _read(lock) == seen:
            try:
                lock.unlink(missing_ok=True)
            except OSError as err:  # a read-only folder: the stale lock cannot go
                raise _unwritable(lock.parent, err) from None


@contextmanager
def _guard(root: Path) -> Iterator[None]:
    """An exclusive flock on the folder `root` while in the block (none where unsupported)."""
    try:
        fd = os.open(root, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:
                pass
        yield
    finally:
        os.close(fd)  # drops the flock


def _start_time(pid: int) -> str | None:
    """When process `pid` started (Linux: its start tick in /proc), None where unknown: tells a
    live writer from a process that reused a dead writer's pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22 of the line, counted after the name


def _alive(pid: int) -> bool:
    """Whether a process `pid` exists (someone else's included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
