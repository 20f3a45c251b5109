"""moonas: multi-budget one-shot neural architecture search."""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "search", "load_run", "load_config", "Run", "ParetoFront", "Candidate",
           "MoonasError"]

# The public names load on first use (PEP 562): `import moonas` (and so `python -m moonas`)
# does not import torch, so the command line answers Ctrl-C from its first moment.
_HOMES = {"load_config": "moonas.config", "MoonasError": "moonas.errors",
          "Candidate": "moonas.run", "ParetoFront": "moonas.run", "Run": "moonas.run",
          "load_run": "moonas.run"}

if TYPE_CHECKING:
    from moonas.config import load_config
    from moonas.errors import MoonasError
    from moonas.run import Candidate, ParetoFront, Run, load_run
    from moonas.search import search


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'moonas' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _Package(types.ModuleType):
    """`moonas.search` is the function, also after the `moonas.search` subpackage is imported
    (the import system sets the subpackage as the attribute; that assignment is ignored)."""

    @property
    def search(self):
        return importlib.import_module("moonas.search").search

    @search.setter
    def search(self, value: Any) -> None:
        if not isinstance(value, types.ModuleType):
            raise AttributeError("moonas.search is the search function; it cannot be replaced")


sys.modules[__name__].__class__ = _Package
