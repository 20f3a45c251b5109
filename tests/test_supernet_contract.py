"""The supernet contract, run over every registered space."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from moonas.nets import build_supernet
from moonas.spaces import PRUNE_LEVELS, SPACES, build_space

SMALL = {
    "nb201": dict(channels=4, cells_per_stage=1),
    "mobilenet": dict(stem_channels=8, stages=((8, 2, 1), (12, 2, 2)), head_channels=16),
}


def _small(name: str, input_size: int = 8, in_channels: int = 1, n_classes: int = 10):
    return build_space(name, input_size=input_size, in_channels=in_channels, n_classes=n_classes,
                       **SMALL.get(name, {}))


def _archs(space, n: int, seed: int = 0) -> list[tuple[int, ...]]:
    return [tuple(int(v) for v in a) for a in space.sample(np.random.default_rng(seed), n)]


@pytest.fixture(params=SPACES.names())
def supernet(request):
    torch.manual_seed(0)
    return build_supernet(_small(request.param))


def test_every_space_is_covered() -> None:
    assert set(SMALL) == set(SPACES.names()), "add a small setting for the new space"


def test_output_shape(supernet) -> None:
    x = torch.randn(3, 1, 8, 8)
    for arch in _archs(supernet.space, 4):
        assert supernet(x, arch).shape == (3, 10)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_extract_matches_supernet(supernet, mode: str) -> None:
    x = torch.randn(4, 1, 8, 8)
    # Non-trivial BN statistics so that eval mode checks the copied buffers too.
    supernet.train()
    for arch in _archs(supernet.space, 6, seed=1):
        with torch.no_grad():
            supernet(torch.randn(8, 1, 8, 8), arch)
    for arch in _archs(supernet.space, 6, seed=2):
        getattr(supernet, mode)()
        net = supernet.extract(arch)
        getattr(net, mode)()
        assert not any(isinstance(m, type(supernet)) for m in net.modules())
        with torch.no_grad():
            torch.testing.assert_close(net(x), supernet(x, arch), rtol=0, atol=1e-6)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_pruning_unreachable_operations_keeps_the_output(supernet, mode: str) -> None:
    space = supernet.space
    supernet.train()
    for arch in _archs(space, 6, seed=1):
        with torch.no_grad():
            supernet(torch.randn(8, 1, 8, 8), arch)
    archs = np.array(_archs(space, 40, seed=3))
    for level in PRUNE_LEVELS:
        pruned = space.prune(archs, level)
        assert (space.prune(pruned, level) == pruned).all()
        for arch in pruned:
            space.validate(arch)
    getattr(supernet, mode)()
    x = torch.randn(4, 1, 8, 8)
    for arch, pruned in zip(archs, space.prune(archs, "unreachable")):
        arch, pruned = tuple(int(v) for v in arch), tuple(int(v) for v in pruned)
        # The standalone networks run every edge (nb201's convention), the pruned one fewer.
        nets = [getattr(supernet.extract(a), mode)() for a in (arch, pruned)]
        with torch.no_grad():
            torch.testing.assert_close(supernet(x, pruned), supernet(x, arch), rtol=0, atol=1e-6)
            torch.testing.assert_close(nets[1](x), nets[0](x), rtol=0, atol=1e-6)
    if space.name == "nb201":  # the random archs did have something to prune
        assert (space.prune(archs, "unreachable") != archs).any()


def test_extract_copies_weights(supernet) -> None:
    arch = _archs(supernet.space, 1)[0]
    net = supernet.extract(arch)
    before = [p.detach().clone() for p in supernet.parameters()]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    assert all(torch.equal(a, b) for a, b in zip(before, supernet.parameters()))


def test_exactly_the_active_path_gets_gradients(supernet) -> None:
    supernet.train()
    x, y = torch.randn(6, 1, 8, 8), torch.randint(0, 10, (6,))
    for arch in _archs(supernet.space, 5, seed=3):
        supernet.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(supernet(x, arch), y).backward()
        net = supernet.extract(arch).train()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        keys = supernet.standalone_keys(arch)
        sub_params = dict(net.named_parameters())
        for name, p in supernet.named_parameters():
            sub = sub_params.get(keys.get(name, ""))
            if sub is None or sub.grad is None:
                assert p.grad is None, f"{name} is off the path of {arch} but got a gradient"
            else:
                assert p.grad is not None, f"{name} is on the path of {arch} but got no gradient"
                torch.testing.assert_close(p.grad, sub.grad, rtol=1e-5, atol=1e-7)
        for d, k in enumerate(arch):
            others = [o for o in range(supernet.space.n_options[d]) if o != k]
            for o in others:
                assert all(p.grad is None for p in supernet.option_parameters(d, o))


def test_extract_is_plain_torch(supernet) -> None:
    net = supernet.extract(_archs(supernet.space, 1)[0])
    scripted = torch.jit.script(net.eval())
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(scripted(x), net(x))


def test_nb201_disconnected_and_none_cells_stay_defined() -> None:
    torch.manual_seed(0)
    supernet = build_supernet(_small("nb201")).eval()
    x = torch.randn(2, 1, 8, 8)
    # all none; output node fed only by a dead node; pools and skips only
    for arch in [(0,) * 6, (3, 0, 0, 0, 0, 3), (1, 4, 1, 4, 1, 4), (0, 0, 0, 1, 0, 0)]:
        out = supernet(x, arch)
        assert torch.isfinite(out).all()
        torch.testing.assert_close(supernet.extract(arch).eval()(x), out, rtol=0, atol=1e-6)
    # An all-none cell zeroes the features: every input gives the same output.
    a = supernet(x, (0,) * 6)
    torch.testing.assert_close(a[0], a[1])
