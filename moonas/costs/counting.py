"""Exact counts of a built network: parameters, and multiply-accumulates through thop.

Convention for `macs` (NAS-Bench-201's counter, what NAS papers call "FLOPs"): the
multiply-accumulates of convolution and linear layers for one input; a layer's bias adds one
per output element; normalisation, pooling and activations count zero. thop is the only
counter; it runs on a deep copy so no `total_ops`/`total_params` buffers stay on the model.
"""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn

__all__ = ["count_params", "count_macs"]

log = logging.getLogger(__name__)


def count_params(module: nn.Module) -> int:
    """Number of parameters (every element of every parameter tensor)."""
    return int(sum(p.numel() for p in module.parameters()))


def _zero(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
    module.total_ops += torch.zeros(1, dtype=torch.float64)


def _linear(module: nn.Linear, inputs: tuple, output: torch.Tensor) -> None:
    # thop counts in*out per sample; the NAS-Bench-201 convention adds the bias.
    per_output = module.in_features + (1 if module.bias is not None else 0)
    module.total_ops += torch.tensor([float(per_output * output.numel())], dtype=torch.float64)


def _conv(module: nn.Conv2d, inputs: tuple, output: torch.Tensor) -> None:
    # thop 0.1.1 drops the bias of convolutions; the convention counts it like the linear one.
    kh, kw = module.kernel_size
    per_output = module.in_channels // module.groups * kh * kw + (module.bias is not None)
    module.total_ops += torch.tensor([float(per_output * output.numel())], dtype=torch.float64)


_CUSTOM_OPS = {
    nn.Conv2d: _conv,
    nn.BatchNorm1d: _zero,
    nn.BatchNorm2d: _zero,
    nn.LayerNorm: _zero,
    nn.GroupNorm: _zero,
    nn.AvgPool2d: _zero,
    nn.MaxPool2d: _zero,
    nn.AdaptiveAvgPool2d: _zero,
    nn.ReLU: _zero,
    nn.ReLU6: _zero,
    nn.Linear: _linear,
}


def count_macs(module: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Multiply-accumulates of one forward pass on one input of shape `(C, H, W)`."""
    from thop import profile  # the one home of thop

    model = copy.deepcopy(module).eval()
    x = torch.zeros((1, *input_shape))
    with torch.no_grad():
        macs, _ = profile(model, inputs=(x,), custom_ops=_CUSTOM_OPS, verbose=False)
    return int(round(float(macs)))
