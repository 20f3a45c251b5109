"""Name -> component registries, so names in configs map to code and typos get a suggestion."""

from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

from moonas.errors import ConfigError

__all__ = ["Registry", "closest"]

T = TypeVar("T")


def closest(name: str, valid: list[str] | tuple[str, ...]) -> str:
    """A ' (did you mean X?)' hint for the nearest valid name, or '': compared ignoring case,
    so 'CIFAR10' gets 'cifar10' (the names themselves stay case-sensitive)."""
    by_folded = {str(v).casefold(): v for v in reversed(valid)}  # the first of equals wins
    match = difflib.get_close_matches(str(name).casefold(), list(by_folded), n=1, cutoff=0.5)
    return f" (did you mean {by_folded[match[0]]!r}?)" if match else ""


class Registry(Generic[T]):
    """A named table of components; `get` fails with the list of valid names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = item
            return item

        return add

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise self.unknown(name) from None

    def unknown(self, name: str, also: tuple[str, ...] = ()) -> ConfigError:
        """The one-line error for a name that is not registered; `also`: names valid
        elsewhere (handled outside the registry) that the list should offer too."""
        valid = tuple(sorted((*self._items, *also)))
        return ConfigError(f"unknown {self.kind} {name!r}{closest(name, valid)}; valid: "
                           f"{', '.join(valid)}")

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._items))

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
