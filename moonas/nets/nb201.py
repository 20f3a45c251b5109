"""NAS-Bench-201 networks: the weight-sharing supernet and the standalone network it extracts."""

from __future__ import annotations

import torch
from torch import nn

from moonas.nets._base import OptionCopies, Supernet
from moonas.nets._ops import ReLUConvBN, ResNetBasicBlock, Zero
from moonas.spaces import Arch
from moonas.spaces.nb201 import NB201_EDGES, NB201_OPS, NB201Space

__all__ = ["NB201Supernet", "NB201Net"]


def _make_op(name: str, channels: int) -> nn.Module:
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, 0)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, 1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(name)


def _layout(space: NB201Space) -> list[tuple[int, bool]]:
    """(channels, is_reduction) per cell position of the macro skeleton."""
    c, n = space.channels, space.cells_per_stage
    return (
        [(c, False)] * n + [(2 * c, True)] + [(2 * c, False)] * n + [(4 * c, True)]
        + [(4 * c, False)] * n
    )


def _live_edges(arch: Arch) -> list[bool]:
    """Edges whose result can reach the cell output (node 3); others cannot change it."""
    live_nodes = {3}
    for node in (2, 1):
        if any(to in live_nodes and frm == node and arch[e] != 0
               for e, (to, frm) in enumerate(NB201_EDGES)):
            live_nodes.add(node)
    return [arch[e] != 0 and to in live_nodes for e, (to, _) in enumerate(NB201_EDGES)]


def _run_cell(x: torch.Tensor, edges: list[nn.Module | None]) -> torch.Tensor:
    """Sum into each node the edges given; a node with no input is zeros (defined output)."""
    nodes = [x]
    for node in (1, 2, 3):
        total = None
        for e, (to, frm) in enumerate(NB201_EDGES):
            if to == node and edges[e] is not None:
                out = edges[e](nodes[frm])
                total = out if total is None else total + out
        nodes.append(torch.zeros_like(x) if total is None else total)
    return nodes[3]


class _SearchCell(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(
            nn.ModuleList(_make_op(op, channels) for op in NB201_OPS) for _ in NB201_EDGES
        )

    def forward(self, x: torch.Tensor, arch: Arch, dist: int | None = None) -> torch.Tensor:
        live = _live_edges(arch)
        return _run_cell(x, [self._op(e, arch[e], dist) if live[e] else None for e in range(6)])

    def _op(self, edge: int, option: int, dist: int | None) -> nn.Module:
        op = self.edges[edge][option]
        return op.copies[dist] if isinstance(op, OptionCopies) else op


class _InferCell(nn.Module):
    """One fixed cell; every edge is built and run, as in the benchmark (its cost convention)."""

    def __init__(self, arch: Arch, channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(_make_op(NB201_OPS[op], channels) for op in arch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Written out (not via _run_cell) so the standalone network stays TorchScript-able.
        e = self.edges
        node1 = e[0](x)
        node2 = e[1](x) + e[2](node1)
        return e[3](x) + e[4](node1) + e[5](node2)


class _Skeleton(nn.Module):
    """Stem, cells, last activation, pooling, classifier; `cell(channels)` builds each cell."""

    def __init__(self, space: NB201Space, cell) -> None:
        super().__init__()
        c = space.channels
        self.stem = nn.Sequential(
            nn.Conv2d(space.in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        )
        cells: list[nn.Module] = []
        c_prev = c
        for channels, reduction in _layout(space):
            cells.append(ResNetBasicBlock(c_prev, channels, 2) if reduction else cell(channels))
            c_prev = channels
        self.cells = nn.ModuleList(cells)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(inplace=False))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, space.n_classes)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        x = self.global_pooling(self.lastact(x))
        return self.classifier(torch.flatten(x, 1))


class NB201Net(_Skeleton):
    """The standalone NAS-Bench-201 network of one cell (plain torch, no moonas at run time)."""

    def __init__(self, space: NB201Space, arch: Arch) -> None:
        super().__init__(space, lambda channels: _InferCell(arch, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        return self.head(x)


class NB201Supernet(Supernet):
    """Every cell position holds all 5 operations on each of its 6 edges."""

    def __init__(self, space: NB201Space) -> None:
        super().__init__(space)
        self.net = _Skeleton(space, _SearchCell)

    def _forward(self, x: torch.Tensor, arch: Arch, dist: int | None = None) -> torch.Tensor:
        x = self.net.stem(x)
        for cell in self.net.cells:
            x = cell(x, arch, dist) if isinstance(cell, _SearchCell) else cell(x)
        return self.net.head(x)

    def _split_option(self, choice: int, option: int, n_copies: int) -> list[OptionCopies]:
        out = []
        for cell in self.net.cells:
            if isinstance(cell, _SearchCell):
                out.append(OptionCopies(cell.edges[choice][option], n_copies))
                cell.edges[choice][option] = out[-1]
        return out

    standalone = NB201Net

    def _standalone_key(self, key: str, arch: Arch) -> str | None:
        # "net.cells.3.edges.<edge>.<option>.rest" -> "cells.3.edges.<edge>.rest"
        parts = key.split(".")[1:]
        if len(parts) > 4 and parts[0] == "cells" and parts[2] == "edges":
            if int(parts[4]) != arch[int(parts[3])]:
                return None
            parts = parts[:4] + parts[5:]
        return ".".join(parts)

    def option_parameters(self, choice: int, option: int) -> list[nn.Parameter]:
        return [
            p
            for cell in self.net.cells
            if isinstance(cell, _SearchCell)
            for p in cell.edges[choice][option].parameters()
        ]
