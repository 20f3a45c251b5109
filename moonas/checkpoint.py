"""Checkpoints: atomic `torch.save`, `weights_only=True` loads, numpy arrays carried as tensors,
and a digest of every tensor's bytes checked on load (damage inside a tensor leaves the file
loadable, so the unpickler alone would not notice it)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from moonas.atomic import atomic_path
from moonas.errors import CheckpointError

__all__ = ["save_checkpoint", "load_checkpoint", "to_safe", "from_safe"]

_NDARRAY = "__ndarray__"
_DIGEST = "__tensor_sha256__"


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


def _tensors(obj: Any) -> Iterator[torch.Tensor]:
    """Every tensor of a saved state, in a fixed order (dict keys in insertion order)."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _tensors(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _tensors(value)


def _digest(state: dict) -> str:
    """sha256 over the dtype, shape and bytes of every tensor of `state`."""
    hasher = hashlib.sha256()
    for tensor in _tensors(state):
        hasher.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        # A fresh flat copy: strides of size-1 dimensions may be 0, which a byte view refuses.
        flat = torch.empty(tensor.numel(), dtype=tensor.dtype)
        flat.copy_(tensor.detach().reshape(-1))
        hasher.update(flat.view(torch.uint8).numpy().tobytes())
    return hasher.hexdigest()


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write `state` atomically: a kill mid-write leaves the previous checkpoint intact."""
    safe = to_safe(state)
    safe[_DIGEST] = _digest(safe)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        # Through a file object: given a path, torch names the archive's records after the
        # file, here the random temp name, so two identical states would differ in bytes.
        torch.save(safe, handle)


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
        if len(first) > 120:  # cut at a word, marked
            first = first[:120].rsplit(" ", 1)[0] + " ..."
        problem = f"checkpoint {path} is corrupt or truncated ({first})"
        raise CheckpointError(f"{problem}: delete it and start again, or restore it from a copy",
                              problem) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} does not hold a moonas state")
    digest = state.pop(_DIGEST, None)  # absent in checkpoints written before it was added
    if digest is not None and digest != _digest(state):
        problem = (f"checkpoint {path} is damaged (its tensors do not match the digest saved "
                   "with them)")
        raise CheckpointError(f"{problem}: delete it and start again, or restore it from a copy",
                              problem)
    return from_safe(state)
