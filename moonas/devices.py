"""Which torch device a run trains on (``device`` in the config, ``--device`` of ``train``).

``auto`` takes the first CUDA GPU when torch sees one and the CPU otherwise; ``cpu``,
``cuda`` and ``cuda:N`` name one. The name is checked when a config is read (a typo is one
line before any work); whether the machine has it is checked when a run starts, since a
config written on one machine may run on another. Supernet search, standalone retraining and
the BN recalibration they do run there; export, latency profiling and the NAS-Bench-201 table
harness stay on the CPU.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from moonas.errors import ConfigError

if TYPE_CHECKING:  # torch loads when a device is resolved: checking a name needs none
    import torch

__all__ = ["DEVICE_NAMES", "check_device_name", "device_fields", "resolve_device"]

#: What a device setting may say.
DEVICE_NAMES = "auto, cpu, cuda or cuda:N"
_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def check_device_name(name: object, key: str = "device") -> str:
    """`name` if it is a device setting moonas knows, else a one-line ConfigError."""
    if not isinstance(name, str) or not _PATTERN.match(name):
        raise ConfigError(f"{key}={name!r}: use {DEVICE_NAMES}")
    return name


def resolve_device(name: str, key: str = "device") -> torch.device:
    """The torch device `name` stands for on this machine, or a one-line ConfigError when the
    machine lacks it (naming what it has)."""
    import torch

    check_device_name(name, key)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{key}={name!r}: torch sees no CUDA GPU on this machine (torch "
                              f"{torch.__version__}); use {key}=cpu or auto")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(f"{key}={name!r}: this machine has {count} CUDA GPU(s), "
                              f"cuda:0 to cuda:{count - 1}")
    return device


def device_fields(device: torch.device) -> dict:
    """What a run's files record of the device it trained on: its name, and the GPU's name on
    a CUDA device (the search's manifest.json, a retraining's metrics.json)."""
    import torch

    fields = {"device": str(device)}
    if device.type == "cuda":
        fields["gpu"] = torch.cuda.get_device_name(device)
    return fields
