"""Shared pieces of the benchmark tools: the report header (the command, the machine and the
date), the defaults older reports pinned, `run_tool`, which turns bad input into one line, the
checks that raise it before any work, and `scratch`, a run folder removed on every exit."""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence


def run_tool(main: Callable[[], object]) -> int:
    """Run a tool's `main`: bad input (a `MoonasError`: the checks below, or the package's own
    refusals) prints one line naming the tool, exit code 1, instead of a traceback. Any other
    exception is a defect and keeps its traceback (argparse already turns a `type=`
    converter's ValueError into a usage line)."""
    from moonas.errors import MoonasError

    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "tool"
    try:
        result = main()
    except MoonasError as err:
        print(f"{name}: error: {str(err).strip().splitlines()[0]}", file=sys.stderr)
        return 1
    return int(result or 0)


def at_least(flag: str, value: int | Sequence[int], least: int, why: str = "") -> None:
    """Refuse `value` (or any of several) below `least` before any work: a `ConfigError`,
    which `run_tool` prints as one line. `why` says what needs that many."""
    from moonas.errors import ConfigError

    for v in value if isinstance(value, (list, tuple)) else (value,):
        if v < least:
            raise ConfigError(f"{flag} must be >= {least}{f' ({why})' if why else ''}, got {v}")


def known(flag: str, names: Iterable[str], valid: Sequence[str]) -> None:
    """Refuse a name of `names` that is not in `valid`, with the valid ones (a `ConfigError`)."""
    from moonas.errors import ConfigError
    from moonas.registry import closest

    for name in names:
        if name not in valid:
            raise ConfigError(f"{flag} {name!r} is unknown{closest(name, tuple(valid))}; "
                              f"valid: {', '.join(valid)}")


def check_out_file(path: str | Path, flag: str = "--out") -> Path:
    """`path` if the tool's page can be written there at the end, else one line (a
    `MoonasError`, which `run_tool` prints); creates nothing."""
    from moonas.atomic import check_out_file as check

    return check(path, flag, "report.md")


@contextlib.contextmanager
def scratch(prefix: str, keep: str | None = None) -> Iterator[Path]:
    """A folder for a tool's run directories: `keep` if given (made, and left in place), else
    a temporary one removed on every exit (success, error, Ctrl-C)."""
    if keep is not None:
        from moonas.atomic import check_out_folder

        path = check_out_folder(keep, "--work")
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix=prefix, ignore_cleanup_errors=True) as tmp:
        yield Path(tmp)


def header(title: str) -> str:
    """Markdown lines naming the command that ran, the machine and the date."""
    import torch

    command = " ".join(shlex.quote(a) for a in [os.path.relpath(sys.executable), *sys.argv])
    machine = (f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} "
               f"{platform.release()}, Python {platform.python_version()}, "
               f"torch {torch.__version__}, "
               f"{torch.get_num_threads()} torch threads")
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"# {title}\n\n- command: `{command}`\n- machine: {machine}\n- date: {now}\n"


#: The search defaults before `search.prune` (dead) and `search.pvll` (on) became defaults
#: (2026-11-25, session 3; `search.pvll.neighbours` followed in session 4, `features: pairs` in
#: session 5, `crossover` in session 14). The digits plug-in benchmarks recorded before then
#: (angle, split, plugins_digits) put these first in their overrides, so their results files
#: reproduce.
PRE_PRUNE_DEFAULTS = ("search.prune=keep", "search.pvll.enabled=false",
                      "search.pvll.neighbours=false", "search.pvll.features=onehot",
                      "search.pvll.crossover=0")
#: The current search defaults on top of `PRE_PRUNE_DEFAULTS` (those benchmarks' `--set`), for
#: re-running them as a user would run the search today.
CURRENT_DEFAULTS = ("search.prune=dead", "search.pvll.neighbours=true",
                    "search.pvll.features=pairs", "search.pvll.crossover=32")

#: `search.pvll.neighbours` became a default on 2026-11-25 (session 4), `search.pvll.features:
#: pairs` on 2026-12-02 (session 5), `search.pvll.pruned` on 2026-12-07 (session 12),
#: `search.pvll.crossover` (32) on 2026-12-07 (session 14); results recorded before with PVLL
#: on pin all four back with these (moonas.search overrides / harness search settings).
NO_NEIGHBOURS = ("search.pvll.neighbours=false", "search.pvll.features=onehot",
                 "search.pvll.pruned=false", "search.pvll.crossover=0")
NO_NEIGHBOURS_BENCH = (("pvll.neighbours", False), ("pvll.features", "onehot"),
                       ("pvll.pruned", False), ("pvll.crossover", 0))
