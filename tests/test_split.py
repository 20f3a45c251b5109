"""search.split: per-distribution weights of the most contested choices (rule, supernet,
optimizer, search end to end, resume)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

import moonas
from moonas.config import load_config
from moonas.errors import ConfigError
from moonas.nets import build_supernet
from moonas.plugins.split import SplitConfig, apply_split, contested, home_copy, split_options
from moonas.run import RunFiles
from moonas.spaces.nb201 import NB201Space

TINY = ["space.channels=4", "data.max_train=192", "data.batch_size=32", "search.epochs=4",
        "search.warmup_epochs=1", "search.front_samples=4", "threads=1",
        "search.split.enabled=true", "search.split.at=0.5", "search.split.choices=2"]


def _space() -> NB201Space:
    return NB201Space(channels=4, cells_per_stage=1, input_size=8, in_channels=1, n_classes=10)


def test_contested_is_the_mean_pairwise_total_variation() -> None:
    thetas = np.zeros((3, 2, 2))
    thetas[:, 0] = [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]  # TV 1, 0.5, 0.5 -> mean 2/3
    thetas[:, 1] = [0.5, 0.5]  # all agree -> 0
    mask = np.ones_like(thetas, dtype=bool)
    np.testing.assert_allclose(contested(thetas, mask), [2 / 3, 0.0])
    assert contested(thetas[:1], mask[:1]).tolist() == [0.0, 0.0]


def test_split_options_takes_the_most_contested_choices_and_options_with_weights() -> None:
    supernet = build_supernet(_space())
    thetas = np.full((2, 6, 5), 0.2)
    thetas[0, 4] = [0.6, 0.1, 0.1, 0.1, 0.1]
    thetas[1, 4] = [0.1, 0.1, 0.1, 0.6, 0.1]
    thetas[0, 1] = [0.3, 0.1, 0.2, 0.2, 0.2]
    mask = np.ones((2, 6, 5), dtype=bool)
    mask[:, 4, 2] = False  # conv1x1 of edge 4 removed everywhere: not a survivor
    options, score = split_options(supernet, thetas, mask, 2)
    assert score[4] > score[1] > 0 == score[0]
    assert options == {1: (2, 3), 4: (3,)}  # only the convolutions own weights


def test_split_copies_start_shared_and_train_apart() -> None:
    torch.manual_seed(0)
    supernet = build_supernet(_space())
    arch = (3, 0, 2, 3, 1, 2)
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    supernet.eval()
    before = supernet(x, arch)
    opt = torch.optim.SGD(supernet.parameters(), lr=0.1, momentum=0.9)
    supernet.train()
    torch.nn.functional.cross_entropy(supernet(x, arch), y).backward()
    opt.step()  # some momentum to carry over
    shared = supernet.option_parameters(0, 3)
    buffers = [opt.state[p]["momentum_buffer"].clone() for p in shared]
    apply_split(supernet, opt, {0: [3], 2: [2]}, 3)
    assert supernet.split_state() == {"n_copies": 3, "choices": [0, 2], "options": [[3], [2]]}
    assert {id(p) for p in opt.param_groups[0]["params"]} == {id(p) for p in supernet.parameters()}
    for p in supernet.option_parameters(0, 3):
        assert any(torch.equal(opt.state[p]["momentum_buffer"], b) for b in buffers)
    supernet.eval()
    outs = [supernet(x, arch, dist=k) for k in range(3)]
    assert all(torch.allclose(o, outs[0]) for o in outs)
    with pytest.raises(ValueError, match="pass dist"):
        supernet(x, arch)
    assert torch.equal(supernet(x, (1,) * 6), supernet(x, (1,) * 6, dist=2))  # no split option
    # A step through copy 1 moves copy 1 only.
    supernet.train()
    opt.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(supernet(x, arch, dist=1), y).backward()
    cell = supernet.net.cells[0].edges[0][3]
    assert cell.copies[1][1].weight.grad is not None
    assert cell.copies[0][1].weight.grad is None and cell.copies[2][1].weight.grad is None
    opt.step()
    supernet.eval()
    assert not torch.allclose(supernet(x, arch, dist=1), supernet(x, arch, dist=0))
    for k in range(3):  # extract(arch, k) computes forward(x, arch, dist=k)
        net = supernet.extract(arch, k).eval()
        torch.testing.assert_close(net(x), supernet(x, arch, dist=k))
    assert not torch.allclose(before, supernet(x, arch, dist=1))


def test_home_copy_prefers_the_mode_then_the_likeliest_distribution() -> None:
    supernet = build_supernet(_space())
    supernet.split({2: [2, 3]}, 2)
    thetas = np.full((2, 6, 5), 0.2)
    thetas[1, 2] = [0.1, 0.1, 0.1, 0.6, 0.1]
    assert home_copy(supernet, (0, 0, 3, 0, 0, 0), thetas) == 1
    assert home_copy(supernet, (0, 0, 3, 0, 0, 0), thetas, mode_of=0) == 0
    assert home_copy(supernet, (0, 0, 1, 0, 0, 0), thetas) is None


@pytest.mark.parametrize("override, message", [
    ("search.split.at=1.0", "search.split.at=1.0: use 0 < at < 1"),
    ("search.split.choices=0", "search.split.choices=0: use choices >= 1"),
    ("search.strategy=random", "search.split.enabled needs search.strategy=multi-asng"),
    ("search.angle.enabled=true", "do not combine"),
    ("search.split.at=0.1", "splits after epoch 1, inside the warm-up"),
    # The hint is the least `at` that works: round(0.25 * 10) is 2 (half to even), so 0.25
    # still splits inside a 2-epoch warm-up; 0.3 splits after epoch 3.
    ("search.split.at=0.25", "inside the warm-up (search.warmup_epochs=2), while every "
                             "distribution is still uniform and no choice is contested: use "
                             "at >= 0.3"),
    # Too late: round(0.95 * 10) is 10, the last epoch; 0.949 is the latest that acts.
    ("search.split.at=0.95", "search.split.at=0.95 splits after epoch 10 of 10, so nothing "
                             "would be split: use at <= 0.949"),
    # Known before any data loads (a download, on a real dataset): the space's supernet.
    ("space.name=mobilenet", "the mobilenet supernet has no per-distribution weights"),
])
def test_bad_split_config_is_one_line(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config("smoke", ["search.split.enabled=true", "search.epochs=10",
                              "search.warmup_epochs=2", override])


def test_no_split_after_the_last_epoch() -> None:
    """`split_epoch == epochs` means never: copies that no epoch would train were made (and
    saved in the checkpoint) after the last epoch."""
    from moonas.plugins.split import maybe_split

    config = SplitConfig(enabled=True, at=0.9, choices=1)
    assert config.split_epoch(3) == 3

    class Unsplit:
        split_options: dict = {}

    assert maybe_split(config, 3, Unsplit(), None, None, done=3) == {}


def test_split_is_off_by_default() -> None:
    assert load_config("smoke").search.split == SplitConfig()
    assert not SplitConfig().enabled and SplitConfig().split_epoch(60) == 30


class _Stop(Exception):
    pass


@pytest.mark.parametrize("stop_epoch", [1, 3])  # killed before / after the split (epoch 2)
def test_split_search_resumes_to_the_same_front(tmp_path: Path, stop_epoch: int) -> None:
    reference = moonas.search("smoke", tmp_path / "ref", overrides=tuple(TINY))
    log = [e for e in map(__import__("json").loads,
                          RunFiles(reference.dir).log.read_text().splitlines())
           if e.get("kind") == "epoch"]
    assert [("split_choices" in e) for e in log] == [False, True, False, False]
    assert len(log[1]["split_choices"]) == 2
    saved = torch.load(RunFiles(reference.dir).checkpoint, weights_only=True)
    assert saved["split"]["n_copies"] == 5 and saved["split"]["choices"] == log[1]["split_choices"]
    assert any(".copies.4." in k for k in saved["supernet"])

    steps_per_epoch = 192 // 32

    def stop(step: int, total: int, info: dict) -> None:
        if step == stop_epoch * steps_per_epoch + 2:  # inside the epoch after a checkpoint
            raise _Stop

    out = tmp_path / "killed"
    with pytest.raises(_Stop):
        moonas.search("smoke", out, overrides=tuple(TINY), progress=stop)
    resumed = moonas.search(None, out, resume=True)
    for name in ("pareto_json", "log", "candidates"):
        assert (getattr(RunFiles(resumed.dir), name).read_text()
                == getattr(RunFiles(reference.dir), name).read_text()), name


def test_export_of_a_split_run_takes_the_home_copy(tmp_path: Path) -> None:
    from moonas.deploy.weights import supernet_network

    # Unpruned, so the modes keep the options the split gave copies (pruning may zero them);
    # without pvll, as when this run was chosen (a mode then uses a split option).
    run = moonas.search("smoke", tmp_path / "r",
                        overrides=(*TINY, "search.prune=keep", "search.pvll.enabled=false"))
    modes = [c for c in run.candidates if c.mode_of is not None]
    saved = torch.load(RunFiles(run.dir).checkpoint, weights_only=True)
    split = {int(d): js for d, js in zip(saved["split"]["choices"], saved["split"]["options"])}
    users = [c for c in modes if any(c.arch[d] in js for d, js in split.items())]
    # Not a skip: a change in the search's dynamics would silently turn this test off.
    assert users, (f"no mode uses a split option {split} (modes {[c.arch for c in modes]}): "
                   "choose this run's settings again so that one does")
    c = users[0]
    net = supernet_network(run, c.arch)
    # The conv of the split choice holds copy `mode_of`'s weights.
    d = next(d for d, js in split.items() if c.arch[d] in js)
    key = next(k for k in saved["supernet"]
               if k.startswith(f"net.cells.0.edges.{d}.{c.arch[d]}.copies.{c.mode_of}.")
               and k.endswith("1.weight"))
    torch.testing.assert_close(net.state_dict()[f"cells.0.edges.{d}.1.weight"],
                               saved["supernet"][key])
