"""Atomic file writes (temp file in the same folder + fsync + rename): no half-written results;
and the check, before any work, that an output folder can take them."""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from moonas.errors import ConfigError, MoonasError

__all__ = ["atomic_path", "write_text", "write_json", "check_out_folder", "check_out_file",
           "check_output_path", "remove_stale_temps"]

log = logging.getLogger(__name__)

#: The temp name `atomic_path` gives: `.NAME.` + mkstemp's 8 random characters + `.tmp`.
_TEMP_NAME = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    # mkstemp makes the file private (0600); results are ordinary files of the user (umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Delete the temp files `atomic_path` left in `folder` when a kill -9 stopped a write
    (they are never the result: the rename had not happened), saying so; returns them. Call
    it only while holding the folder's lock: another writer's temp file is live."""
    folder = Path(folder)
    removed = []
    for path in folder.iterdir() if folder.is_dir() else ():
        # A lock's temp file (`.moonas-lock.*`) may be another process's try to take the folder.
        if (_TEMP_NAME.fullmatch(path.name) and "moonas-lock" not in path.name
                and path.is_file() and not path.is_symlink()):
            path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        log.info("removed %d temp file%s of interrupted writes in %s", len(removed),
                 "s" * (len(removed) > 1), folder)
    return removed


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def check_out_folder(path: str | Path, option: str = "--out") -> Path:
    """`path` if results can be written into it as a folder (it exists as one, or can be made),
    else a one-line MoonasError saying why; creates nothing. For a check before long work,
    so that a typo'd --out does not lose the work at the end."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise MoonasError(f"{option} {path} is a file: choose a folder")
    _check_writable_below(path, path, option)
    return path


def check_out_file(path: str | Path, option: str = "--out", example: str = "out.md") -> Path:
    """`path` if a file can be written there at the end (not a folder, no file in the way of
    its folders, a writable place), else a one-line MoonasError; creates nothing."""
    path = Path(path)
    if path.is_dir():
        raise MoonasError(f"{option} {path} is a folder: give a file, e.g. {path / example}")
    _check_writable_below(path, path.parent, option)
    if path.exists() and not os.access(path, os.W_OK):
        raise MoonasError(f"{option} {path} is not writable; choose another {option}")
    return path


def check_output_path(path: str | Path, suffixes: tuple[str, ...] = ()) -> Path:
    """`path` if a file can be written there, else one line saying why (nothing is created)."""
    path = Path(path)
    if suffixes and path.suffix.lower() not in suffixes:
        raise ConfigError(f"--out {path}: the file name must end in {' or '.join(suffixes)}")
    return check_out_file(path, "--out", f"model{suffixes[0] if suffixes else ''}")


def _check_writable_below(path: Path, start: Path, option: str) -> None:
    """The nearest existing folder at or above `start` must be a writable folder."""
    parent = start
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise MoonasError(f"{option} {path}: {parent} is a file, not a folder; choose another "
                          f"{option}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise MoonasError(f"{option} {path}: {parent} is not writable; choose another {option}")
