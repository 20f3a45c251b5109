"""The mobilenet space: choices, settings validation, string form, exact costs, spatial sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from moonas.costs import build_cost_table, count_macs, count_params
from moonas.errors import MoonasError
from moonas.nets import MobileNetSupernet, build_supernet
from moonas.nets.mobilenet import InvertedResidual
from moonas.spaces import SPACES, ArchError, MobileNetSpace, build_space

DIGITS = MobileNetSpace(input_size=8, in_channels=1, n_classes=10)
CONVS = tuple(f"k{k}e{e}" for k in (3, 5, 7) for e in (3, 4, 6))


def _supernet(space: MobileNetSpace) -> MobileNetSupernet:
    torch.manual_seed(0)
    return build_supernet(space)


# -- choices -----------------------------------------------------------------------------------
def test_default_choices_offer_skip_only_where_shape_is_kept():
    space = MobileNetSpace()
    assert SPACES.get("mobilenet") is MobileNetSpace
    assert [c.name for c in space.choices] == ["s0b0", "s0b1", "s1b0", "s1b1", "s2b0", "s2b1"]
    for choice in space.choices:
        # First block of each stage changes width (16->24, 24->40, 40->80): no skip there.
        expected = CONVS if choice.name.endswith("b0") else CONVS + ("skip",)
        assert choice.options == expected
    assert space.size == 9**3 * 10**3


def test_skip_depends_on_stride_and_width():
    space = MobileNetSpace(stem_channels=24, stages=((24, 1, 1), (24, 2, 2), (32, 1, 1)))
    skips = {c.name: "skip" in c.options for c in space.choices}
    # same width and stride 1: skippable; stride 2 or a width change: not.
    assert skips == {"s0b0": True, "s1b0": False, "s1b1": True, "s2b0": False}
    assert [(b.c_in, b.c_out, b.stride) for b in space.layout] == [
        (24, 24, 1), (24, 24, 2), (24, 24, 1), (24, 32, 1)
    ]


def test_yaml_lists_become_tuples_and_settings_round_trip():
    space = build_space(
        "mobilenet", stages=[[16, 1, 2], [32, 3, 1]], kernels=[3, 5], expansions=[1, 6]
    )
    assert space.stages == ((16, 1, 2), (32, 3, 1))
    assert space.kernels == (3, 5) and space.expansions == (1, 6)
    hash(space)  # keys the cost-table cache
    settings = space.settings()
    assert settings.pop("name") == "mobilenet"
    assert MobileNetSpace(**settings) == space
    assert space.choices[0].options == ("k3e1", "k3e6", "k5e1", "k5e6")


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"stages": ()}, r"space\.stages must list at least one"),
        ({"stages": ((24, 2),)}, r"space\.stages\[0\] must be \[out_channels, n_blocks, stride\]"),
        ({"stages": ((24, 2, 1), (0, 1, 1))}, r"space\.stages\[1\] out_channels must be"),
        ({"stages": ((24, 0, 1),)}, r"space\.stages\[0\] n_blocks must be"),
        ({"stages": ((24, 1, 3),)}, r"space\.stages\[0\] stride must be 1 or 2, got 3"),
        ({"stem_channels": 0}, r"space\.stem_channels must be an integer >= 1"),
        ({"head_channels": -8}, r"space\.head_channels must be an integer >= 1"),
        ({"stem_stride": 4}, r"space\.stem_stride must be 1 or 2"),
        ({"kernels": (3, 4)}, r"space\.kernels must be odd sizes"),
        ({"kernels": ()}, r"space\.kernels must be a non-empty list"),
        ({"kernels": (3, 3)}, r"space\.kernels has duplicates"),
        ({"expansions": (4, 4)}, r"space\.expansions has duplicates"),
        ({"expansions": (0, 4)}, r"space\.expansions must be an integer >= 1"),
        ({"expansions": (2.5,)}, r"space\.expansions must hold integers only"),
        ({"input_size": 0}, r"space\.input_size must be >= 1"),
    ],
)
def test_invalid_settings_raise_one_clear_line(settings, message):
    with pytest.raises(ArchError, match=message) as info:
        MobileNetSpace(**settings)
    assert isinstance(info.value, MoonasError)
    assert "\n" not in str(info.value)


# -- string form -------------------------------------------------------------------------------
def test_string_form_round_trips():
    space = MobileNetSpace()
    text = "k3e3-skip-k7e6-k5e4-k5e3-k3e6"
    arch = space.from_str(text)
    assert arch == (0, 9, 8, 4, 3, 2)
    assert space.to_str(arch) == text
    assert space.parse(text) == arch
    for row in space.sample(np.random.default_rng(0), 20):
        arch = tuple(int(v) for v in row)
        assert space.from_str(space.to_str(arch)) == arch


def test_string_form_rejects_skip_where_not_allowed():
    with pytest.raises(ArchError, match="option 'skip' of choice 0"):
        MobileNetSpace().from_str("skip-skip-k3e3-k3e3-k3e3-k3e3")


# -- costs -------------------------------------------------------------------------------------
# An odd input size with a stride-2 stem, skippable first blocks and expansion 1.
ODD = MobileNetSpace(
    input_size=15, stem_stride=2, stages=((16, 2, 1), (24, 1, 2), (24, 2, 1)),
    kernels=(3, 7), expansions=(1, 6),
)


@pytest.mark.parametrize("space", [DIGITS, ODD], ids=["digits8", "odd15"])
def test_cost_table_equals_counts_of_extracted_networks(space):
    table = build_cost_table(space)
    supernet = _supernet(space)
    rng = np.random.default_rng(1)
    archs = [tuple(int(v) for v in row) for row in space.sample(rng, 8)]
    # The extremes: every block at its last option (skip where allowed) and the largest conv.
    n_convs = len(space.kernels) * len(space.expansions)
    archs.append(tuple(k - 1 for k in space.n_options))
    archs.append(tuple(n_convs - 1 for _ in space.n_options))
    shape = (space.in_channels, space.input_size, space.input_size)
    for arch in archs:
        net = supernet.extract(arch)
        expected = [count_params(net), count_macs(net, shape)]
        assert table.price(np.asarray(arch))[0].tolist() == expected, space.to_str(arch)


def test_skip_is_free_and_bigger_options_cost_more():
    table = build_cost_table(DIGITS)
    assert table.table[0, 1, 9] < 0 and table.table[1, 1, 9] < 0  # s0b1 skip vs k3e3
    # The cheapest network: k3e3 wherever the block cannot be skipped.
    params, arch = table.extreme("params")
    assert arch == (0, 9, 0, 9, 0, 9)
    assert params == count_params(_supernet(DIGITS).extract(arch))
    # Within a block, params rise with kernel and with expansion.
    block = table.table[0, 0, :9].reshape(3, 3)
    assert np.all(np.diff(block, axis=0) > 0) and np.all(np.diff(block, axis=1) > 0)


def test_expansion_one_has_no_expand_conv():
    plain = InvertedResidual(8, 8, 3, 1, 1)
    assert isinstance(plain.expand, torch.nn.Identity)
    # depthwise 3x3 (72) + BN (16) + project 1x1 (64) + BN (16)
    assert count_params(plain) == 72 + 16 + 64 + 16
    assert plain.residual and not InvertedResidual(8, 16, 3, 4, 1).residual


def test_option_parameters_are_disjoint_and_skip_owns_none():
    space = DIGITS
    supernet = _supernet(space)
    assert supernet.option_parameters(1, 9) == []
    seen: set[int] = set()
    for d, k_d in enumerate(space.n_options):
        for k in range(k_d):
            ids = {id(p) for p in supernet.option_parameters(d, k)}
            assert not ids & seen
            seen |= ids
    shared = {id(p) for name, p in supernet.named_parameters() if not name.startswith("net.blocks")}
    assert seen | shared == {id(p) for p in supernet.parameters()}


# -- spatial sizes -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "settings, feature",
    [
        ({"input_size": 32}, 8),  # strides 1, 1, 2, 2
        ({"input_size": 8, "in_channels": 1}, 2),
        ({"input_size": 8, "in_channels": 1, "stem_stride": 2}, 1),
        ({"input_size": 7, "in_channels": 1}, 2),  # 7 -> 4 -> 2 (same padding rounds up)
    ],
)
def test_spatial_sizes_and_output_shape(settings, feature):
    space = MobileNetSpace(**settings)
    assert space.feature_size() == feature
    supernet = _supernet(space).eval()
    seen = []
    supernet.net.head.register_forward_hook(lambda m, inp, out: seen.append(tuple(inp[0].shape)))
    x = torch.randn(2, space.in_channels, space.input_size, space.input_size)
    # The largest kernel everywhere, and the shallowest path (skips), both fit the sizes.
    for arch in (tuple(len(CONVS) - 1 for _ in space.n_options),
                 tuple(k - 1 for k in space.n_options)):
        with torch.no_grad():
            assert supernet(x, arch).shape == (2, space.n_classes)
            assert supernet.extract(arch)(x).shape == (2, space.n_classes)
    assert seen == [(2, space.last_channels, feature, feature)] * 2


def test_a_kernel_wider_than_any_feature_map_can_use_is_warned_of_once(caplog) -> None:
    """On an s x s map a same-padded kernel's taps beyond 2s - 1 only ever meet padding: the
    widest useful kernel on digits' 8x8 is 15 (4x4 after a stride-2 stem: 7). Checked against
    the network: those taps' weights get no gradient."""
    import logging

    with caplog.at_level(logging.WARNING, logger="moonas"):
        MobileNetSpace(kernels=(3, 15), input_size=8, in_channels=1, n_classes=10)
        assert not caplog.records
        for _ in range(2):
            MobileNetSpace(kernels=(3, 17), input_size=8, in_channels=1, n_classes=10)
        MobileNetSpace(kernels=(9,), stem_stride=2, input_size=8, in_channels=1, n_classes=10)
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2 and "[17] exceed 15" in said[0] and "[9] exceed 7" in said[1]
    # The rule itself: a 17-wide depthwise kernel on an 8x8 map, its outer ring untouched.
    conv = torch.nn.Conv2d(1, 1, 17, padding=8, bias=False)
    conv(torch.randn(1, 1, 8, 8)).sum().backward()
    grad = conv.weight.grad[0, 0]
    assert grad[0].abs().sum() == 0 and grad[:, 0].abs().sum() == 0
    assert grad[1:16, 1:16].abs().min() > 0
