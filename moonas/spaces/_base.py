"""The search-space contract: named categorical choices, sampling, parsing, validation (no torch)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from typing import ClassVar, Sequence

import numpy as np

from moonas.errors import MoonasError

__all__ = ["Arch", "Choice", "SearchSpace", "ArchError"]

#: An architecture: one option index per choice. Hashable, so it keys caches and sets.
Arch = tuple[int, ...]


class ArchError(MoonasError):
    """An architecture that does not belong to the space."""


#: What `SearchSpace.prune` may remove, weakest first.
PRUNE_LEVELS: tuple[str, ...] = ("keep", "unreachable", "dead")


def check_prune_level(level: str) -> None:
    if level not in PRUNE_LEVELS:
        raise ArchError(f"unknown prune level {level!r}; valid: {', '.join(PRUNE_LEVELS)}")


@dataclass(frozen=True)
class Choice:
    """One categorical decision of the space."""

    name: str
    options: tuple[str, ...]


@dataclass(frozen=True)
class SearchSpace:
    """Base of every space: a frozen record of its settings plus the choices they imply.

    Subclasses are frozen dataclasses whose fields are the user-facing options (the config's
    `space:` section) and implement `_choices()`. `input_size`, `in_channels` and `n_classes`
    describe the data the networks take.
    """

    name: ClassVar[str] = ""

    input_size: int = 32
    in_channels: int = 3
    n_classes: int = 10

    def __post_init__(self) -> None:
        for key in ("input_size", "in_channels", "n_classes"):
            if getattr(self, key) < 1:
                raise ArchError(f"space.{key} must be >= 1, got {getattr(self, key)}")

    # -- choices -------------------------------------------------------------------------
    def _choices(self) -> tuple[Choice, ...]:
        raise NotImplementedError

    @property
    def choices(self) -> tuple[Choice, ...]:
        cached = self.__dict__.get("_choices_cache")
        if cached is None:
            cached = self._choices()
            object.__setattr__(self, "_choices_cache", cached)
        return cached

    @property
    def n_options(self) -> tuple[int, ...]:
        """Options per choice, `(K_1, ..., K_D)`."""
        return tuple(len(c.options) for c in self.choices)

    @property
    def n_choices(self) -> int:
        return len(self.choices)

    @property
    def size(self) -> int:
        """Number of architectures in the space."""
        return math.prod(self.n_options)

    def settings(self) -> dict:
        """The space's options as plain data (what the config's `space:` section holds)."""
        out = {"name": self.name}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = _plain(value)
        return out

    # -- architectures -------------------------------------------------------------------
    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """`n` uniform architectures, int64 array `(n, D)`."""
        high = np.asarray(self.n_options)
        return rng.integers(0, high, size=(n, len(high)), dtype=np.int64)

    def prune(self, archs: np.ndarray, level: str = "dead") -> np.ndarray:
        """Each architecture `(n, D)` with its useless operations set to their zero option:
        what a search evaluates, returns and deploys (`search.prune`). `level` is one of
        `PRUNE_LEVELS`: `unreachable` removes operations whose result cannot reach the output
        (the output is unchanged); `dead` also those whose input is always zero; `keep` nothing.
        Idempotent; never more params or MACs. Spaces without such operations return a copy."""
        check_prune_level(level)
        return np.atleast_2d(np.array(archs, dtype=np.int64, copy=True))

    def validate(self, arch: Sequence[int]) -> Arch:
        """Return `arch` as an `Arch`, or raise `ArchError` naming the bad position (an option
        index that is not a whole number, e.g. 1.9, true or "3", included)."""
        values = tuple(_index(v, d) for d, v in enumerate(arch))
        if len(values) != self.n_choices:
            raise ArchError(
                f"architecture has {len(values)} choices, space {self.name!r} has {self.n_choices}"
            )
        for d, (v, k) in enumerate(zip(values, self.n_options)):
            if not 0 <= v < k:
                raise ArchError(
                    f"choice {d} ({self.choices[d].name}) is {v}, valid options are 0..{k - 1}"
                )
        return values

    def to_str(self, arch: Sequence[int]) -> str:
        """Human-readable form; `from_str` reverses it."""
        arch = self.validate(arch)
        return "-".join(self.choices[d].options[v] for d, v in enumerate(arch))

    def from_str(self, text: str) -> Arch:
        parts = text.strip().split("-")
        if len(parts) != self.n_choices:
            raise ArchError(f"{text!r}: expected {self.n_choices} '-'-separated options")
        out = []
        for d, part in enumerate(parts):
            options = self.choices[d].options
            if part not in options:
                raise ArchError(f"{text!r}: option {part!r} of choice {d} not in {options}")
            out.append(options.index(part))
        return tuple(out)

    def parse(self, text: str) -> Arch:
        """An architecture from a string form, a JSON list of ints, or comma/space separated ints."""
        text = text.strip()
        if text.startswith("["):
            try:
                return self.validate(json.loads(text))
            except (json.JSONDecodeError, TypeError, ValueError):
                raise ArchError(f"{text!r} is not a JSON list of ints") from None
        tokens = text.replace(",", " ").split()
        if tokens and all(t.lstrip("-").isdigit() for t in tokens):
            return self.validate([int(t) for t in tokens])
        return self.from_str(text)


def _index(value: object, d: int) -> int:
    """An option index given as any whole number (int, numpy integer, 2.0); else ArchError."""
    try:
        index = int(value)  # type: ignore[arg-type]
        whole = not isinstance(value, (bool, str, bytes)) and index == value
    except (TypeError, ValueError, OverflowError):
        whole = False
    if not whole:
        raise ArchError(f"choice {d} is {value!r}: an option index must be a whole number")
    return index


def _plain(value: object) -> object:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value
