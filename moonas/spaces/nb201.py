"""The NAS-Bench-201 cell space: 5 operations on the 6 edges of a 4-node cell (15,625 cells)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Sequence

import numpy as np

from moonas.spaces._base import Arch, ArchError, Choice, SearchSpace, check_prune_level

__all__ = ["NB201Space", "NB201_OPS", "NB201_EDGES"]

NB201_OPS: tuple[str, ...] = (
    "none",
    "skip_connect",
    "nor_conv_1x1",
    "nor_conv_3x3",
    "avg_pool_3x3",
)
#: (to_node, from_node) per edge, in the benchmark's order.
NB201_EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))

_TOKEN = re.compile(r"^([a-z0-9_]+)~(\d+)$")


@dataclass(frozen=True)
class NB201Space(SearchSpace):
    """NAS-Bench-201: stem, 3 stages of `cells_per_stage` cells (width C, 2C, 4C), residual
    reduction blocks between stages, global pool, linear. One cell shared by all positions."""

    name: ClassVar[str] = "nb201"

    channels: int = 16
    cells_per_stage: int = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("channels", "cells_per_stage"):
            if getattr(self, key) < 1:
                raise ArchError(f"space.{key} must be >= 1, got {getattr(self, key)}")
        if self.input_size % 4:  # a reduction's conv and its shortcut's pool must agree
            raise ArchError(f"image side {self.input_size} (data.image_size, or space."
                            "input_size where set): the nb201 network halves the image twice, "
                            "each time from an even side, so use a multiple of 4 (e.g. 32)")

    def _choices(self) -> tuple[Choice, ...]:
        return tuple(Choice(f"edge{to}<-{frm}", NB201_OPS) for to, frm in NB201_EDGES)

    def prune(self, archs: np.ndarray, level: str = "dead") -> np.ndarray:
        """Useless operations set to `none`, `(n, 6)` from `(n, 6)`.

        `unreachable`: edges whose target node cannot reach the cell output. Their result is
        never used, so the network's output is unchanged, and the pruned cell stays in the
        same NAS-Bench-201 isomorphism class (checked on all 15,625 cells).
        `dead`: also edges whose source node only ever holds zeros (every path to it from the
        cell input passes a `none`). Pooling and identity there add zeros; a convolution adds
        its BatchNorm shift, a constant per channel that carries nothing of the input (zero at
        initialisation), which NAS-Bench-201 counts as a different cell.
        Pruning never raises params or MACs (tested on every cell); a measured per-cell latency
        table (NAS-Bench-201's devices) is not additive, so there it usually, not always, drops.
        """
        check_prune_level(level)
        archs = np.array(archs, dtype=np.int64, copy=True)
        if archs.ndim == 1:
            archs = archs[None, :]
        if level == "keep":
            return archs
        on = archs != 0
        n = len(archs)
        fed = np.ones((n, 4), dtype=bool)  # node may hold something non-zero
        if level == "dead":
            fed[:, 1:] = False
            for node in (1, 2, 3):
                for e, (to, frm) in enumerate(NB201_EDGES):
                    if to == node:
                        fed[:, node] |= on[:, e] & fed[:, frm]
        used = np.zeros((n, 4), dtype=bool)  # node's value can reach the cell output
        used[:, 3] = True
        for node in (2, 1, 0):
            for e, (to, frm) in enumerate(NB201_EDGES):
                if frm == node:
                    used[:, node] |= on[:, e] & used[:, to]
        for e, (to, frm) in enumerate(NB201_EDGES):
            archs[~(fed[:, frm] & used[:, to]), e] = 0
        return archs

    def to_str(self, arch: Sequence[int]) -> str:
        """The benchmark's `arch_str`, e.g. `|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|`."""
        arch = self.validate(arch)
        nodes = []
        for node in (1, 2, 3):
            tokens = [
                f"{NB201_OPS[arch[e]]}~{frm}"
                for e, (to, frm) in enumerate(NB201_EDGES)
                if to == node
            ]
            nodes.append("|" + "|".join(tokens) + "|")
        return "+".join(nodes)

    def from_str(self, text: str) -> Arch:
        nodes = text.strip().split("+")
        if len(nodes) != 3:
            raise ArchError(f"{text!r} is not an nb201 arch_str (expected 3 '+'-separated nodes)")
        out: list[int] = []
        for node_index, node in enumerate(nodes, start=1):
            tokens = [t for t in node.split("|") if t]
            if len(tokens) != node_index:
                raise ArchError(f"{text!r}: node {node_index} needs {node_index} inputs")
            for frm, token in enumerate(tokens):
                match = _TOKEN.match(token)
                if not match or match.group(1) not in NB201_OPS or int(match.group(2)) != frm:
                    raise ArchError(
                        f"{text!r}: bad token {token!r} (expected OP~{frm}, OP in {NB201_OPS})"
                    )
                out.append(NB201_OPS.index(match.group(1)))
        return tuple(out)
