"""The supernet contract: weights of every option, one path per forward, standalone extraction."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from moonas.spaces import Arch, SearchSpace

__all__ = ["Supernet"]


class Supernet(nn.Module):
    """Holds the weights of every option of `space`; runs the path `arch` given per call.

    There is no hidden "active subnet" state: the architecture is an argument of `forward`,
    and `extract` returns a plain `nn.Module` with copied weights that computes the same
    function as `forward(x, arch)` (in eval mode).
    """

    #: The standalone network class: `standalone(space, arch)` builds one without a supernet.
    standalone: type[nn.Module]

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        self.space = space

    def forward(self, x: torch.Tensor, arch: Sequence[int]) -> torch.Tensor:  # (B,C,H,W)->(B,n)
        return self._forward(x, self.space.validate(arch))

    def extract(self, arch: Sequence[int]) -> nn.Module:
        """A standalone network for `arch` with copies of the supernet's weights."""
        arch = self.space.validate(arch)
        net = self.standalone(self.space, arch)
        net.load_state_dict(self._standalone_state(arch))
        net.train(self.training)
        return net

    def option_parameters(self, choice: int, option: int) -> list[nn.Parameter]:
        """Parameters owned by one option of one choice (across all positions that share it)."""
        raise NotImplementedError

    # -- hooks for subclasses --------------------------------------------------------------
    def _forward(self, x: torch.Tensor, arch: Arch) -> torch.Tensor:
        raise NotImplementedError

    def standalone_keys(self, arch: Sequence[int]) -> dict[str, str]:
        """Supernet state key -> standalone state key, for the entries `arch` uses."""
        arch = self.space.validate(arch)
        out = {}
        for key in self.state_dict():
            mapped = self._standalone_key(key, arch)
            if mapped is not None:
                out[key] = mapped
        return out

    def _standalone_state(self, arch: Arch) -> dict[str, torch.Tensor]:
        state = self.state_dict()
        return {new: state[old].detach().clone() for old, new in self.standalone_keys(arch).items()}

    def _standalone_key(self, key: str, arch: Arch) -> str | None:
        """The standalone key of supernet entry `key`, or None when `arch` does not use it."""
        raise NotImplementedError
