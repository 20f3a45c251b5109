"""The supernet contract: weights of every option, one path per forward, standalone extraction."""

from __future__ import annotations

import copy
from typing import Mapping, Sequence

import torch
from torch import nn

from moonas.spaces import Arch, SearchSpace

__all__ = ["Supernet", "OptionCopies"]


class OptionCopies(nn.Module):
    """``n`` independent copies of one option's module (``search.split``); the supernet picks
    one per forward by the distribution index it is given."""

    def __init__(self, module: nn.Module, n: int) -> None:
        super().__init__()
        self.copies = nn.ModuleList(copy.deepcopy(module) for _ in range(n))
        for p in self.copies.parameters():
            p.grad = None
        # Plain list (not registered): the replaced parameters, read once by Supernet.split.
        self.shared_parameters = list(module.parameters())


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
        #: choice -> options with per-distribution copies (empty: full weight sharing).
        self.split_options: dict[int, tuple[int, ...]] = {}
        self.n_copies = 1

    def forward(self, x: torch.Tensor, arch: Sequence[int],
                dist: int | None = None) -> torch.Tensor:  # (B,C,H,W)->(B,n)
        """`dist`: after `split`, which distribution's copy of the split options runs (needed
        only when `arch` uses one); ignored on a supernet that was not split."""
        arch = self.space.validate(arch)
        if not self.split_options:
            return self._forward(x, arch)
        return self._forward(x, arch, dist=self.copy_for(arch, dist))

    def extract(self, arch: Sequence[int], dist: int | None = None) -> nn.Module:
        """A standalone network for `arch` with copies of the supernet's weights (after
        `split`: those of distribution `dist` for the split options)."""
        arch = self.space.validate(arch)
        net = self.standalone(self.space, arch)
        net.load_state_dict(self._standalone_state(arch, dist))
        net.train(self.training)
        return net

    # -- reduced weight sharing (search.split) ---------------------------------------------
    def split(self, options: Mapping[int, Sequence[int]],
              n_copies: int) -> dict[nn.Parameter, list[nn.Parameter]]:
        """Give each option `options[choice]` `n_copies` separate copies of its weights, all
        starting from the shared ones; replaces those modules. Once per supernet. Returns
        each replaced parameter -> its copies (to hand them to the optimizer)."""
        if self.split_options:
            raise RuntimeError("this supernet is already split")
        if n_copies < 2:
            raise ValueError(f"n_copies={n_copies}: splitting needs at least 2 copies")
        replaced: dict[nn.Parameter, list[nn.Parameter]] = {}
        for d, js in options.items():
            for j in js:
                for module in self._split_option(int(d), int(j), int(n_copies)):
                    per_copy = [list(c.parameters()) for c in module.copies]
                    for i, p in enumerate(module.shared_parameters):
                        replaced[p] = [params[i] for params in per_copy]
                    module.shared_parameters = []  # no reference to the old weights kept
        self.split_options = {int(d): tuple(int(j) for j in js) for d, js in options.items() if js}
        self.n_copies = int(n_copies)
        return replaced

    def split_state(self) -> dict | None:
        """What `split` was called with (plain lists, for a checkpoint), or None."""
        if not self.split_options:
            return None
        return {"n_copies": self.n_copies,
                "choices": sorted(self.split_options),
                "options": [list(self.split_options[d]) for d in sorted(self.split_options)]}

    def uses_split(self, arch: Sequence[int]) -> bool:
        """Whether `arch` runs an option that has per-distribution copies."""
        return any(arch[d] in js for d, js in self.split_options.items())

    def copy_for(self, arch: Sequence[int], dist: int | None) -> int | None:
        """The copy index `arch` runs with for `dist`: None when it uses no split option."""
        if not self.uses_split(arch):
            return None
        if dist is None or not 0 <= int(dist) < self.n_copies:
            raise ValueError(f"arch {tuple(arch)} uses split options: pass dist in "
                             f"[0, {self.n_copies}), got {dist}")
        return int(dist)

    @classmethod
    def can_split(cls) -> bool:
        """Whether this supernet can give options per-distribution copies (`search.split`)."""
        return cls._split_option is not Supernet._split_option

    def _split_option(self, choice: int, option: int, n_copies: int) -> list[OptionCopies]:
        """Replace every module of (choice, option) by an `OptionCopies`; returns them."""
        raise NotImplementedError(f"{type(self).__name__} does not support search.split")

    def option_parameters(self, choice: int, option: int) -> list[nn.Parameter]:
        """Parameters owned by one option of one choice (across all positions that share it)."""
        raise NotImplementedError

    # -- hooks for subclasses --------------------------------------------------------------
    def _forward(self, x: torch.Tensor, arch: Arch) -> torch.Tensor:
        raise NotImplementedError

    def standalone_keys(self, arch: Sequence[int], dist: int | None = None) -> dict[str, str]:
        """Supernet state key -> standalone state key, for the entries `arch` uses (after
        `split`: copy `dist` of the split options)."""
        arch = self.space.validate(arch)
        dist = self.copy_for(arch, dist) if self.split_options else None
        out = {}
        for key in self.state_dict():
            shared = key
            if ".copies." in key:  # "<option>.copies.<k>.rest" -> "<option>.rest" for k == dist
                head, tail = key.split(".copies.", 1)
                index, _, rest = tail.partition(".")
                if dist is None or int(index) != dist:
                    continue
                shared = f"{head}.{rest}"
            mapped = self._standalone_key(shared, arch)
            if mapped is not None:
                out[key] = mapped
        return out

    def _standalone_state(self, arch: Arch, dist: int | None = None) -> dict[str, torch.Tensor]:
        state = self.state_dict()
        return {new: state[old].detach().clone()
                for old, new in self.standalone_keys(arch, dist).items()}

    def _standalone_key(self, key: str, arch: Arch) -> str | None:
        """The standalone key of supernet entry `key`, or None when `arch` does not use it."""
        raise NotImplementedError
