"""Supernets (weights of every option, one path per call) and their registry, keyed by space."""

from __future__ import annotations

from moonas.nets._base import Supernet
from moonas.nets.mobilenet import MobileNetNet, MobileNetSupernet
from moonas.nets.nb201 import NB201Net, NB201Supernet
from moonas.registry import Registry
from moonas.spaces import SearchSpace

__all__ = [
    "Supernet",
    "SUPERNETS",
    "build_supernet",
    "NB201Supernet",
    "NB201Net",
    "MobileNetSupernet",
    "MobileNetNet",
]

SUPERNETS: Registry[type[Supernet]] = Registry("supernet")
SUPERNETS.register("nb201")(NB201Supernet)
SUPERNETS.register("mobilenet")(MobileNetSupernet)


def build_supernet(space: SearchSpace) -> Supernet:
    """The supernet of `space` (freshly initialised; seed torch before calling for determinism)."""
    return SUPERNETS.get(space.name)(space)
