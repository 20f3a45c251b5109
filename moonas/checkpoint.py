"""Checkpoints: atomic `torch.save`, `weights_only=True` loads, numpy arrays carried as tensors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from moonas.atomic import atomic_path
from moonas.errors import CheckpointError

__all__ = ["save_checkpoint", "load_checkpoint", "to_safe", "from_safe"]

_NDARRAY = "__ndarray__"


def to_safe(obj: Any) -> Any:
    """Replace numpy arrays and scalars by tensors/python scalars that `weights_only` accepts."""
    if isinstance(obj, np.ndarray):
        return {_NDARRAY: torch.from_numpy(np.ascontiguousarray(obj).copy())}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: to_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_safe(v) for v in obj)
    return obj


def from_safe(obj: Any) -> Any:
    """Inverse of `to_safe`."""
    if isinstance(obj, dict):
        if set(obj) == {_NDARRAY}:
            return obj[_NDARRAY].numpy()
        return {k: from_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [from_safe(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(from_safe(v) for v in obj)
    return obj


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write `state` atomically: a kill mid-write leaves the previous checkpoint intact."""
    with atomic_path(path) as tmp:
        torch.save(to_safe(state), tmp)


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint written by `save_checkpoint`, or fail with one line saying what to do."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found: start the run again without --resume")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - arbitrary bytes fail the unpickler in many ways
        # (KeyError, IndexError, struct.error, ... besides the usual RuntimeError,
        # UnpicklingError, BadZipFile, EOFError): each means the file is no checkpoint.
        text = str(err).strip()
        first = type(err).__name__ + (f": {text.splitlines()[0]}" if text else "")
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({first[:120]}): delete it and start "
            "again, or restore it from a copy"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} does not hold a moonas state")
    return from_safe(state)
