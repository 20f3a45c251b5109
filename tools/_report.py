"""Shared header for benchmark reports: the command, the machine and the date."""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import sys


def header(title: str) -> str:
    """Markdown lines naming the command that ran, the machine and the date."""
    import torch

    command = " ".join(shlex.quote(a) for a in [os.path.relpath(sys.executable), *sys.argv])
    machine = (f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} "
               f"{platform.release()}, Python {platform.python_version()}, torch {torch.__version__}, "
               f"{torch.get_num_threads()} torch threads")
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"# {title}\n\n- command: `{command}`\n- machine: {machine}\n- date: {now}\n"
