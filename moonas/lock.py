"""One writer per folder: a lock file naming the process that writes a run (or a retraining)
there, refused to a second writer while that process lives.

The lock is `.moonas-lock` (JSON: pid, host, process start time, since). A lock left by a
process that is gone, or whose pid was reused (the start time differs), is taken over; so is
one from another host, whose liveness cannot be checked from here.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
from pathlib import Path

from moonas.atomic import write_json
from moonas.errors import MoonasError

__all__ = ["LOCK", "check_free", "hold", "release"]

LOCK = ".moonas-lock"


def check_free(root: str | Path, what: str = "written") -> None:
    """One line when a live process on this machine holds `root` (`what` it does there, for
    the message: "written", "trained")."""
    lock = Path(root) / LOCK
    try:
        owner = json.loads(lock.read_text())
    except (OSError, ValueError):
        return
    pid = owner.get("pid") if isinstance(owner, dict) else None
    if not isinstance(pid, int) or pid == os.getpid() or owner.get("host") != socket.gethostname():
        return
    if _alive(pid) and owner.get("start") == _start_time(pid):
        raise MoonasError(f"{root} is being {what} by process {pid} (since "
                          f"{owner.get('since', '?')}): wait for it to end, or stop it first")
    lock.unlink(missing_ok=True)  # its writer is gone: nothing holds the folder


def hold(root: str | Path) -> None:
    """Mark `root` (an existing folder) as held by this process, until `release`."""
    write_json(Path(root) / LOCK, {"pid": os.getpid(), "host": socket.gethostname(),
                                   "start": _start_time(os.getpid()),
                                   "since": datetime.datetime.now().isoformat(timespec="seconds")})


def release(root: str | Path) -> None:
    """Drop this process's lock on `root` (nothing when another process took it over)."""
    lock = Path(root) / LOCK
    try:
        owner = json.loads(lock.read_text())
    except (OSError, ValueError):
        return
    if isinstance(owner, dict) and owner.get("pid") == os.getpid():
        lock.unlink(missing_ok=True)


def _start_time(pid: int) -> str | None:
    """When process `pid` started (Linux: its start tick in /proc), None where unknown: tells a
    live writer from a process that reused a dead writer's pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22 of the line, counted after the name


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
