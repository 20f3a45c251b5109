"""How many threads numpy's BLAS (threadpoolctl's one home) and torch may use inside a block.

The PVLL refits are small dense solves (the memory's n x n, n <= 500): one thread does them as
fast as several, and beside torch's threads or other worker processes more threads only contend
(results/harness_threads.md: a 2-worker harness job ran 4.0x slower with the library default).
"""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator

from threadpoolctl import ThreadpoolController

__all__ = ["blas_threads", "torch_threads"]


_found: dict[int, ThreadpoolController] = {}


def _controller() -> ThreadpoolController:
    """The loaded thread pools, found once per set of imported modules: a scan of the loaded
    libraries costs about 1 ms and the PVLL refits ask on every refit, while an import (scipy,
    torch) can load another BLAS that a scan made before it would miss."""
    key = len(sys.modules)
    if key not in _found:
        _found.clear()
        _found[key] = ThreadpoolController()
    return _found[key]


@contextlib.contextmanager
def blas_threads(limit: int | None = 1) -> Iterator[None]:
    """Inside the block BLAS uses at most `limit` threads; None leaves the library's default."""
    if limit is None:
        yield
        return
    with _controller().limit(limits=limit, user_api="blas"):
        yield


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Inside the block torch runs `threads` intra-op threads (None: as it is), restoring the
    previous count after."""
    import torch

    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
