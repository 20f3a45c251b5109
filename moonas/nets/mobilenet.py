"""MobileNet-chain networks: the supernet (separate weights per option) and its standalone nets."""

from __future__ import annotations

import torch
from torch import nn

from moonas.nets._base import Supernet
from moonas.nets._ops import ConvBNAct
from moonas.spaces import Arch
from moonas.spaces.mobilenet import BlockLayout, MobileNetSpace

__all__ = ["MobileNetSupernet", "MobileNetNet", "InvertedResidual"]


class InvertedResidual(nn.Module):
    """1x1 expand -> kxk depthwise (stride) -> 1x1 linear project, plus identity if shapes match.

    With expansion 1 the expand conv is left out, as in MobileNetV2.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, expansion: int, stride: int) -> None:
        super().__init__()
        hidden = c_in * expansion
        self.expand: nn.Module = (
            ConvBNAct(c_in, hidden, 1) if expansion != 1 else nn.Identity()
        )
        self.depthwise = ConvBNAct(hidden, hidden, kernel, stride, groups=hidden)
        self.project = ConvBNAct(hidden, c_out, 1, act=False)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        return x + out if self.residual else out


def _make_option(space: MobileNetSpace, block: BlockLayout, option: str) -> nn.Module:
    spec = space.option_spec(option)
    if spec is None:
        return nn.Identity()
    kernel, expansion = spec
    return InvertedResidual(block.c_in, block.c_out, kernel, expansion, block.stride)


class _Skeleton(nn.Module):
    """Stem, one module per block position (`block(d, layout)` builds it), head, classifier."""

    def __init__(self, space: MobileNetSpace, block) -> None:
        super().__init__()
        self.stem = ConvBNAct(space.in_channels, space.stem_channels, 3, space.stem_stride)
        self.blocks = nn.ModuleList(block(d, layout) for d, layout in enumerate(space.layout))
        self.head = ConvBNAct(space.last_channels, space.head_channels, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(space.head_channels, space.n_classes)

    def finish(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, n_classes)
        return self.classifier(torch.flatten(self.pool(self.head(x)), 1))


class MobileNetNet(_Skeleton):
    """The standalone network of one architecture (plain torch, no moonas at run time).

    A skipped block is an `nn.Identity` so block indices match the choices.
    """

    def __init__(self, space: MobileNetSpace, arch: Arch) -> None:
        options = [c.options[k] for c, k in zip(space.choices, arch)]
        super().__init__(space, lambda d, layout: _make_option(space, layout, options[d]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.finish(x)


class MobileNetSupernet(Supernet):
    """Every block position holds every option's own weights; a forward runs one per block.

    No weights are shared between kernel sizes or expansions: this keeps costs exactly
    additive and gives gradients to the sampled path only.
    """

    def __init__(self, space: MobileNetSpace) -> None:
        super().__init__(space)
        choices = space.choices

        def all_options(d: int, layout: BlockLayout) -> nn.ModuleList:
            return nn.ModuleList(_make_option(space, layout, o) for o in choices[d].options)

        self.net = _Skeleton(space, all_options)

    def _forward(self, x: torch.Tensor, arch: Arch) -> torch.Tensor:
        x = self.net.stem(x)
        for options, k in zip(self.net.blocks, arch):
            x = options[k](x)
        return self.net.finish(x)

    standalone = MobileNetNet

    def _standalone_key(self, key: str, arch: Arch) -> str | None:
        # "net.blocks.<d>.<option>.rest" -> "blocks.<d>.rest" when option = arch[d]
        parts = key.split(".")[1:]
        if parts[0] == "blocks":
            if int(parts[2]) != arch[int(parts[1])]:
                return None
            parts = parts[:2] + parts[3:]
        return ".".join(parts)

    def option_parameters(self, choice: int, option: int) -> list[nn.Parameter]:
        return list(self.net.blocks[choice][option].parameters())
