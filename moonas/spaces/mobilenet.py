"""The MobileNetV2-style chain: per block an inverted residual of kernel x expansion, or a skip."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import ClassVar

from moonas.spaces._base import ArchError, Choice, SearchSpace

__all__ = ["MobileNetSpace", "BlockLayout", "SKIP"]

#: The option that removes a block (only offered where the block keeps shape).
SKIP = "skip"

log = logging.getLogger(__name__)

_OPTION = re.compile(r"^k(\d+)e(\d+)$")


@dataclass(frozen=True)
class BlockLayout:
    """The fixed shape of one searchable block: what every option of it maps from and to."""

    stage: int
    index: int
    c_in: int
    c_out: int
    stride: int

    @property
    def can_skip(self) -> bool:
        return self.stride == 1 and self.c_in == self.c_out


@dataclass(frozen=True)
class MobileNetSpace(SearchSpace):
    """Stem conv, stages of inverted-residual blocks, 1x1 head conv, global pool, linear.

    `stages` lists `(out_channels, n_blocks, stride of the first block)`. Every block is one
    choice among `k{kernel}e{expansion}` for all `kernels` x `expansions`, plus `skip` where
    the block has stride 1 and keeps its width. Options are separate weights, so params and
    MACs are exactly additive over choices.
    """

    name: ClassVar[str] = "mobilenet"

    stem_channels: int = 16
    stem_stride: int = 1
    stages: tuple[tuple[int, int, int], ...] = ((24, 2, 1), (40, 2, 2), (80, 2, 2))
    kernels: tuple[int, ...] = (3, 5, 7)
    expansions: tuple[int, ...] = (3, 4, 6)
    head_channels: int = 128

    def __post_init__(self) -> None:
        super().__post_init__()
        # YAML gives lists; tuples keep the record hashable (it keys the cost-table cache).
        object.__setattr__(self, "stages", _stages(self.stages))
        object.__setattr__(self, "kernels", _int_tuple("kernels", self.kernels))
        object.__setattr__(self, "expansions", _int_tuple("expansions", self.expansions))
        for key in ("stem_channels", "head_channels"):
            _positive(key, getattr(self, key))
        _stride("stem_stride", self.stem_stride)
        for k in self.kernels:
            if k < 1 or k % 2 == 0:
                raise ArchError(f"space.kernels must be odd sizes >= 1 (same padding), got {k}")
        for e in self.expansions:
            _positive("expansions", e)
        _warn_wide_kernels(self.kernels, -(-self.input_size // self.stem_stride))

    # -- layout ----------------------------------------------------------------------------
    @property
    def layout(self) -> tuple[BlockLayout, ...]:
        """One `BlockLayout` per searchable block (= per choice), in network order."""
        blocks = []
        c_in = self.stem_channels
        for s, (c_out, n_blocks, stride) in enumerate(self.stages):
            for b in range(n_blocks):
                blocks.append(BlockLayout(s, b, c_in, c_out, stride if b == 0 else 1))
                c_in = c_out
        return tuple(blocks)

    @property
    def last_channels(self) -> int:
        """Width entering the head conv."""
        return self.stages[-1][0]

    def feature_size(self) -> int:
        """Spatial side entering the head (each stride 2 with same padding gives ceil(n/2))."""
        size = self.input_size
        for stride in (self.stem_stride, *(s for _, _, s in self.stages)):
            size = -(-size // stride)
        return size

    @staticmethod
    def option_spec(option: str) -> tuple[int, int] | None:
        """`(kernel, expansion)` of an option name, or None for `skip`."""
        if option == SKIP:
            return None
        match = _OPTION.match(option)
        if match is None:
            raise ArchError(f"{option!r} is not a mobilenet option (k<kernel>e<expansion> or skip)")
        return int(match.group(1)), int(match.group(2))

    def _choices(self) -> tuple[Choice, ...]:
        convs = tuple(f"k{k}e{e}" for k in self.kernels for e in self.expansions)
        return tuple(
            Choice(f"s{blk.stage}b{blk.index}", convs + ((SKIP,) if blk.can_skip else ()))
            for blk in self.layout
        )


_WARNED: set[tuple[tuple[int, ...], int]] = set()


def _warn_wide_kernels(kernels: tuple[int, ...], side: int) -> None:
    """Once per (kernels, side): a depthwise kernel wider than 2 x side - 1 on the largest
    feature map a block sees (`side`) multiplies padding only beyond that width, yet its
    weights count in params (and the search may rank them)."""
    wide = [k for k in kernels if k > 2 * side - 1]
    if not wide or (kernels, side) in _WARNED:
        return
    _WARNED.add((kernels, side))
    log.warning("space.kernels %s exceed %d, the widest kernel a %dx%d feature map can use (the "
                "largest the blocks see): their outer weights only ever multiply padding; use "
                "kernels up to %d", wide, 2 * side - 1, side, side, 2 * side - 1)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive(key: str, value: object) -> None:
    if not _is_int(value) or value < 1:
        raise ArchError(f"space.{key} must be an integer >= 1, got {value!r}")


def _stride(key: str, value: object) -> None:
    if not _is_int(value) or value not in (1, 2):
        raise ArchError(f"space.{key} must be 1 or 2, got {value!r}")


def _int_tuple(key: str, values: object) -> tuple[int, ...]:
    if not isinstance(values, (list, tuple)) or not values:
        shown = list(values) if isinstance(values, tuple) else values  # as typed: a list
        raise ArchError(f"space.{key} must be a non-empty list of integers, got {shown!r}")
    if not all(_is_int(v) for v in values):
        raise ArchError(f"space.{key} must hold integers only, got {list(values)!r}")
    if len(set(values)) != len(values):
        raise ArchError(f"space.{key} has duplicates: {list(values)!r}")
    return tuple(values)


def _stages(stages: object) -> tuple[tuple[int, int, int], ...]:
    if not isinstance(stages, (list, tuple)) or not stages:
        raise ArchError(
            "space.stages must list at least one [out_channels, n_blocks, stride] stage"
        )
    out = []
    for i, stage in enumerate(stages):
        if not isinstance(stage, (list, tuple)) or len(stage) != 3:
            raise ArchError(
                f"space.stages[{i}] must be [out_channels, n_blocks, stride], got {stage!r}"
            )
        c_out, n_blocks, stride = stage
        _positive(f"stages[{i}] out_channels", c_out)
        _positive(f"stages[{i}] n_blocks", n_blocks)
        _stride(f"stages[{i}] stride", stride)
        out.append((c_out, n_blocks, stride))
    return tuple(out)
