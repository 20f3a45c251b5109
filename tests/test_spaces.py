"""Search spaces: choices, sampling, string forms, validation."""

from __future__ import annotations

import numpy as np
import pytest

from moonas.spaces import SPACES, ArchError, NB201Space, build_space


def test_nb201_has_the_benchmark_shape() -> None:
    space = NB201Space()
    assert space.n_options == (5,) * 6
    assert space.size == 15_625


def test_nb201_arch_str_round_trips_all_rows(nb201_rows) -> None:
    space = NB201Space()
    seen = set()
    for row in nb201_rows:
        arch = space.from_str(row["arch_str"])
        assert space.to_str(arch) == row["arch_str"]
        seen.add(arch)
    assert len(seen) == 15_625  # every row is a distinct architecture of the space


def test_nb201_op_order_matches_the_benchmark() -> None:
    space = NB201Space()
    arch = space.from_str(
        "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"
    )
    assert arch == (3, 0, 1, 4, 2, 0)


@pytest.mark.parametrize("name", SPACES.names())
def test_sampling_is_seeded_and_in_range(name: str) -> None:
    space = build_space(name)
    a = space.sample(np.random.default_rng(3), 200)
    b = space.sample(np.random.default_rng(3), 200)
    c = space.sample(np.random.default_rng(4), 200)
    assert a.shape == (200, space.n_choices)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert (a >= 0).all() and (a < np.asarray(space.n_options)).all()
    for arch in a[:20]:
        assert space.parse(space.to_str(arch)) == tuple(arch)


@pytest.mark.parametrize("name", SPACES.names())
def test_parse_accepts_json_and_int_lists(name: str) -> None:
    space = build_space(name)
    arch = tuple(int(v) for v in space.sample(np.random.default_rng(0), 1)[0])
    assert space.parse(str(list(arch))) == arch
    assert space.parse(",".join(map(str, arch))) == arch
    assert space.parse(" ".join(map(str, arch))) == arch


@pytest.mark.parametrize("name", SPACES.names())
def test_invalid_architectures_name_the_problem(name: str) -> None:
    space = build_space(name)
    with pytest.raises(ArchError, match="choices"):
        space.validate([0] * (space.n_choices + 1))
    bad = [0] * space.n_choices
    bad[1] = space.n_options[1]
    with pytest.raises(ArchError, match=r"choice 1 .* valid options are 0\.\."):
        space.validate(bad)
    with pytest.raises(ArchError):
        space.parse("[1, 2")


def test_nb201_rejects_malformed_strings() -> None:
    space = NB201Space()
    with pytest.raises(ArchError, match="3 '\\+'-separated"):
        space.from_str("|none~0|")
    with pytest.raises(ArchError, match="bad token"):
        space.from_str("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    with pytest.raises(ArchError, match="bad token"):
        space.from_str("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|")


def test_space_settings_are_validated() -> None:
    with pytest.raises(ArchError, match="channels"):
        NB201Space(channels=0)
    with pytest.raises(ArchError, match="n_classes"):
        NB201Space(n_classes=0)
