"""Search spaces (choices only, no torch) and their registry."""

from __future__ import annotations

from moonas.registry import Registry
from moonas.spaces._base import (PRUNE_LEVELS, Arch, ArchError, Choice, SearchSpace,
                                 check_prune_level)
from moonas.spaces.mobilenet import MobileNetSpace
from moonas.spaces.nb201 import NB201Space

__all__ = [
    "Arch",
    "ArchError",
    "Choice",
    "PRUNE_LEVELS",
    "SearchSpace",
    "SPACES",
    "NB201Space",
    "MobileNetSpace",
    "build_space",
    "check_prune_level",
]

SPACES: Registry[type[SearchSpace]] = Registry("search space")
SPACES.register("nb201")(NB201Space)
SPACES.register("mobilenet")(MobileNetSpace)


def build_space(name: str, **settings: object) -> SearchSpace:
    """The space `name` with its settings (already type-checked by the config layer)."""
    return SPACES.get(name)(**settings)
