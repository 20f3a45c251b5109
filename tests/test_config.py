"""Configs: packaged YAMLs, overrides, and one clear line for every bad key, type or value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from moonas.config import (PACKAGED_CONFIGS, RunConfig, config_to_dict, default_coefficients,
                           load_config, parse_amount)
from moonas.errors import ConfigError
from moonas.yamlio import read_yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path: Path) -> None:
    """Loads, names a known dataset, and its space builds on that dataset's shape (no data
    loaded) and spells its architectures back."""
    from moonas.data import DATASETS, dataset_info
    from moonas.pricing import static_space

    config = load_config(path)
    assert isinstance(config, RunConfig)
    assert config.data.name in DATASETS
    info = dataset_info(config.data.name, image_size=config.data.image_size)
    space = static_space(config)
    assert space.name == config.space.name
    assert (space.input_size, space.in_channels, space.n_classes) == (
        info.input_size, info.in_channels, info.n_classes)
    for arch in space.sample(np.random.default_rng(0), 3):
        assert tuple(space.from_str(space.to_str(arch))) == tuple(arch)


def test_repo_configs_are_the_packaged_ones() -> None:
    assert (REPO / "configs").resolve() == PACKAGED_CONFIGS.resolve()


def test_default_is_the_embedded_digits_run() -> None:
    config = load_config()
    assert config.data.name == "digits"
    assert config.space.name == "nb201"
    assert config.search.n_budgets == 5 and config.search.strategy == "multi-asng"


def test_overrides_and_types() -> None:
    config = load_config("smoke", ["search.epochs=7", "space.channels=12", "data.root=/tmp/x",
                                   "search.budgets=[20k, 3.5e4, 0.1M]", "train.grad_clip=null"])
    assert config.search.epochs == 7
    assert config.space.get("channels") == 12
    assert config.data.root == "/tmp/x"
    assert config.search.budgets == (20_000.0, 35_000.0, 100_000.0)
    assert config.train.grad_clip is None


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    config = load_config("nb201_cifar10", ["search.budgets=[1e5, 2e5]"])
    saved = tmp_path / "config.yaml"
    saved.write_text(yaml.safe_dump(config_to_dict(config)))
    assert load_config(saved) == config


@pytest.mark.parametrize(
    "override, message",
    [
        (
            ["search.epochz=3"],
            r"unknown config key 'search.epochz' \(did you mean 'search.epochs'\?\)",
        ),
        (["space.chanels=3"], r"did you mean 'space.channels'"),
        (["serach.epochs=3"], r"unknown config key 'serach' \(did you mean 'search'\?\)"),
        # A section's setting given at the top level, or one section too high.
        (["epochs=3"], r"unknown config key 'epochs' \(did you mean 'search.epochs'\?\)"),
        (["search.memory=3"], r"'search.memory' \(did you mean 'search.pvll.memory'\?\)"),
        (["search.warmup=3"], r"'search.warmup' \(did you mean one of search.warmup_epochs, "
                              r"search.eoi.warmup, search.angle.warmup\?\)"),
        (["data.batch_size=abc"], r"'data.batch_size': expected an integer, got 'abc'"),
        (["data.download=maybe"], r"'data.download': expected true or false"),
        (
            ["search.utility=best"],
            r"'search.utility' is 'best'; allowed values: 'weighted-quantile', 'rank'",
        ),
        (["search.budgets=[3, 2]"], r"strictly increasing"),
        (["search.budgets=5"], r"'search.budgets': expected a list"),
        (["search.budgets=[.nan]"], r"^search.budgets must be finite numbers, got \[nan\]$"),
        (["search.budgets=[1e4, .inf]"], r"search.budgets must be finite numbers"),
        (["search.coefficients=[]"], r"^search.coefficients is empty: give at least one "
                                     r"coefficient, default \(search.n_budgets values: 0, "
                                     r"then powers of 2 up to 2\) or null \(budget mode\)$"),
        (["search.coefficients=[0, .nan]"], r"^search.coefficients must be finite numbers"),
        (["search.coefficients=[.inf]"], r"^search.coefficients must be finite numbers"),
        (["search.coefficients=[-1, 0]"], r"^search.coefficients must be >= 0, got \[-1.0, 0.0\]$"),
        (["search.coefficients=[1, 0.5]"], r"coefficients must be strictly increasing, got "
                                           r"\[1.0, 0.5\]: sort them and drop duplicates"),
        (["search.coefficients=[0, 1, 1]"], r"coefficients must be strictly increasing"),
        (["search.coefficients=grid"], r"^config key 'search.coefficients': expected a list, "
                                       r"'default' or null, got 'grid'$"),
        (["search.coefficients=3"], r"expected a list, 'default' or null, got 3$"),
        (["search.coefficients=[0, x]"], r"^config key 'search.coefficients\[1\]': expected a "
                                         r"number, got 'x'$"),
        (["search.coefficients=default", "search.n_budgets=0"], r"search.n_budgets must be >= 1"),
        (["search.coefficients=default", "search.budgets=[1e4]"], r"not both"),
        (["space.name=nb20"], r"unknown search space 'nb20' \(did you mean 'nb201'\?\); valid:"),
        (["space.channels=0"], r"^space.channels must be >= 1, got 0$"),
        (["train.lr=-1"], r"train.lr must be > 0"),
        (["search.epochs=10", "search.warmup_epochs=99"],
         r"^search.warmup_epochs must be in \[0, epochs=10\), got 99$"),
        (["data.val_fraction=0.9"], r"^data.val_fraction \+ data.test_fraction = 1.1 leaves no "
                                    r"training data"),
        (["data.name=cifar"], r"unknown dataset 'cifar'.*cifar10"),
        (["nonsense"], r"expected KEY=VALUE"),
        (["search.pvll.greedy_until=-5"], r"search.pvll.greedy_until=-5: use >= 0"),
        (["search.pvll.greedy_until=many"], r"'search.pvll.greedy_until': expected an integer"),
        (["threads=0"], r"threads must be >= 1 \(or null for torch's default\), got 0"),
        (["seed=-1"], r"seed must be >= 0, got -1"),
        (["search.delta0=-1"], r"search.delta0 must be > 0, got -1"),
    ],
)
def test_bad_input_is_one_clear_line(override: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_config("smoke", override)
    assert "\n" not in str(info.value)


def test_default_coefficients_name_the_grid_of_n_budgets_values(tmp_path: Path) -> None:
    config = load_config("smoke", ["search.coefficients=default"])
    assert config.search.coefficients == (0.0, 0.25, 0.5, 1.0, 2.0)
    assert config.search.budgets is None
    assert load_config("smoke", ["search.coefficients=default", "search.n_budgets=3"]
                       ).search.coefficients == (0.0, 1.0, 2.0)
    # The resolved config holds the numbers, so a resume or a reader needs no grid.
    saved = tmp_path / "config.yaml"
    saved.write_text(yaml.safe_dump(config_to_dict(config)))
    assert read_yaml(saved)["search"]["coefficients"] == [0.0, 0.25, 0.5, 1.0, 2.0]
    assert load_config(saved).search == config.search
    assert [default_coefficients(k) for k in (1, 2, 3)] == [(0.0,), (0.0, 2.0), (0.0, 1.0, 2.0)]
    assert default_coefficients(30)[1] == 2.0 ** -27  # stays strictly increasing
    # Null keeps budget mode.
    assert load_config("smoke", ["search.coefficients=null"]).search.coefficients is None


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found; give a YAML path or one of: .*default"):
        load_config(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("search: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe x\n")
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 0\): save the config as UTF-8"):
        load_config(binary)
    with pytest.raises(ConfigError, match="is a folder: give the path of a YAML file"):
        load_config(tmp_path)


def test_repeated_key_is_refused_with_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "twice.yaml"
    path.write_text("search:\n  epochs: 3\ndata:\n  batch_size: 8\nsearch:\n  epochs: 9\n")
    with pytest.raises(
        ConfigError, match=r"line 5: key 'search' repeats the one on line 1"
    ) as info:
        load_config(path)
    assert "\n" not in str(info.value)
    nested = tmp_path / "nested.yaml"
    nested.write_text("search:\n  epochs: 3\n  epochs: 4\n")
    with pytest.raises(ConfigError, match="line 3: key 'epochs' repeats the one on line 2"):
        load_config(nested)


def test_same_key_in_different_sections_and_merges_load(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("search:\n  enabled: 2\n  pvll: {enabled: false}\n"
                    "  eoi:\n    enabled: true\n")
    assert read_yaml(path) == {"search": {"enabled": 2, "pvll": {"enabled": False},
                                          "eoi": {"enabled": True}}}
    merged = tmp_path / "merged.yaml"
    merged.write_text("base: &b {epochs: 2, seed: 1}\nsearch:\n  <<: *b\n  epochs: 3\n")
    assert read_yaml(merged)["search"] == {"epochs": 3, "seed": 1}


def test_parse_amount() -> None:
    assert parse_amount("120k") == 120_000
    assert parse_amount("3.5M") == 3_500_000
    assert parse_amount("2e6") == 2_000_000
    with pytest.raises(ValueError, match=r"^'12 parsecs' is not a number \(examples: 120000, "
                                         r"120k, 3.5M\)$"):
        parse_amount("12 parsecs")


def test_set_space_name_switches_the_space_dropping_the_old_ones_settings(caplog) -> None:
    caplog.set_level("INFO", logger="moonas.config")
    config = load_config("smoke", ["space.name=mobilenet", "space.head_channels=8"])
    settings = dict(config.space.settings)
    assert config.space.name == "mobilenet" and settings["head_channels"] == 8
    assert "channels" not in settings
    assert "the config's nb201 settings (channels" in caplog.text
    same = load_config("smoke", ["space.name=nb201", "space.channels=4"])
    assert dict(same.space.settings)["channels"] == 4


def test_nb201_takes_image_sides_that_halve_evenly_twice() -> None:
    assert load_config("smoke", ["space.input_size=28"]).space.name == "nb201"
    for side in (2, 6, 30):
        message = rf"image side {side} \(data.image_size.* multiple of 4"
        with pytest.raises(ConfigError, match=message):
            load_config("smoke", [f"space.input_size={side}"])


@pytest.mark.parametrize("overrides", [(), ("space.name=mobilenet",)])
def test_the_saved_config_holds_every_space_setting(overrides) -> None:
    """config.yaml's promise, "every key, defaults included", for the space too: its own
    defaults written out, the data's shape null (taken from the dataset), and the same space
    read back."""
    from dataclasses import fields

    from moonas.spaces import SPACES

    config = load_config("smoke", list(overrides))
    saved = config_to_dict(config)["space"]
    assert set(saved) == {"name", *(f.name for f in fields(SPACES.get(config.space.name)))}
    assert all(saved[k] is None for k in ("input_size", "in_channels", "n_classes"))
    again = load_config(yaml.safe_load(yaml.safe_dump({**config_to_dict(config)})))
    assert again.space.build(8, 1, 10) == config.space.build(8, 1, 10)
    if not overrides:
        assert saved["channels"] == config.space.get("channels") and saved["cells_per_stage"]


def test_the_space_takes_its_shape_from_the_data_and_refuses_a_contradicting_one() -> None:
    from moonas.pricing import static_space

    # The shipped CIFAR-10 config builds for whatever dataset it is pointed at.
    for data, shape in (("cifar10", (32, 3, 10)), ("cifar100", (32, 3, 100)),
                        ("mnist", (28, 1, 10))):
        space = static_space(load_config("nb201_cifar10", [f"data.name={data}"]))
        assert (space.input_size, space.in_channels, space.n_classes) == shape
    # A setting that agrees is kept; one that contradicts the data is one line with the fix.
    assert static_space(load_config("smoke", ["space.in_channels=1"])).in_channels == 1
    for key, value, says in (("in_channels", 3, "digits images have 1 channel: drop "),
                             ("n_classes", 100, "digits has 10 classes: drop "),
                             ("input_size", 32, "digits images are 8 px: drop space.input_size "
                                                r"\(the data sets it\), or resize the images "
                                                "with data.image_size=32")):
        with pytest.raises(ConfigError, match=rf"space.{key}={value} but {says}"):
            static_space(load_config("smoke", [f"space.{key}={value}"]))
    assert static_space(load_config("smoke", ["space.input_size=32", "data.image_size=32"])) \
        .input_size == 32
    # null is the same as leaving it out: a saved config.yaml reads back equal.
    assert load_config("smoke", ["space.n_classes=null"]) == load_config("smoke")


def test_split_fractions_are_checked_as_the_dataset_uses_them() -> None:
    # torchvision sets ignore test_fraction (their official test set is the test split).
    assert load_config("smoke", ["data.name=mnist", "data.val_fraction=0.9"]).data.val_fraction \
        == 0.9
    with pytest.raises(ConfigError, match=r"val_fraction \+ data.test_fraction = 1.1 leaves no "):
        load_config("smoke", ["data.val_fraction=0.9"])  # digits carves both
    with pytest.raises(ConfigError, match=r"data.val_fraction=0.0 is out of range"):
        load_config("smoke", ["data.name=mnist", "data.val_fraction=0"])


def test_the_mobilenet_config_spells_out_the_spaces_defaults() -> None:
    """`configs/mobilenet.yaml` documents every key of the space: its values are the defaults,
    so the file reads as the reference of what a bare `space.name=mobilenet` gets."""
    import dataclasses

    from moonas.pricing import static_space
    from moonas.spaces.mobilenet import MobileNetSpace

    space = static_space(load_config("mobilenet"))
    assert isinstance(space, MobileNetSpace)
    bare = static_space(load_config(None, ["space.name=mobilenet"]))
    keys = [f.name for f in dataclasses.fields(MobileNetSpace)]
    assert {k: getattr(space, k) for k in keys} == {k: getattr(bare, k) for k in keys}


def test_dict_configs_take_common_python_types(tmp_path: Path) -> None:
    """A path-like where a path string goes, numpy integers and floats where numbers go, a
    numpy string where a string goes, nested read-only mappings: read as the plain values,
    so the saved config.yaml holds plain YAML types."""
    import types

    config = load_config({
        "data": {"name": np.str_("digits"), "root": Path("/d"), "batch_size": np.int64(8),
                 "val_fraction": np.float32(0.25)},
        "search": types.MappingProxyType({"epochs": np.int64(3), "warmup_epochs": np.uint8(1),
                                          "delta0": np.float64(0.5),
                                          "utility": np.str_("rank"),
                                          "budgets": np.array([1e4, 2e4])}),
        "train": types.MappingProxyType({"lr": np.float16(0.25), "momentum": 0.5}),
        "space": types.MappingProxyType({"name": "nb201", "channels": np.int32(4)}),
    })
    assert config.data.root == "/d" and type(config.data.root) is str
    assert config.search.epochs == 3 and type(config.search.epochs) is int
    assert type(config.search.warmup_epochs) is int and type(config.data.batch_size) is int
    assert config.data.val_fraction == 0.25 and type(config.data.val_fraction) is float
    assert type(config.search.delta0) is float and config.train.lr == 0.25
    assert type(config.search.utility) is str and type(config.data.name) is str
    assert config.search.budgets == (1e4, 2e4) and type(config.search.budgets[0]) is float
    assert config.space.get("channels") == 4 and type(config.space.get("channels")) is int
    saved = tmp_path / "config.yaml"
    saved.write_text(yaml.safe_dump(config_to_dict(config)))  # plain types only
    assert config_to_dict(load_config(saved)) == config_to_dict(config)
    assert load_config(types.MappingProxyType({"search": {"epochs": 7}}),
                       ["search.epochs=8"]).search.epochs == 8
    with pytest.raises(ConfigError, match=r"'search.epochs': expected an integer, got True"):
        load_config({"search": {"epochs": True}})
    with pytest.raises(ConfigError, match=r"'data.root': expected a string, got 3"):
        load_config({"data": {"root": 3}})


@pytest.mark.parametrize("text,unit", [("1e400", None), ("1e308k", None), ("-1e400", None),
                                       ("1e400", "ms"), ("1e400ms", "ms")])
def test_parse_amount_refuses_an_amount_too_large_for_a_number(text: str, unit) -> None:
    with pytest.raises(ValueError, match=rf"^'{text}' is too large: give a finite number"):
        parse_amount(text, unit)


def test_pick_refuses_an_infinite_limit_in_one_line(tmp_path: Path, capsys) -> None:
    from moonas.cli import main

    from test_deploy_pick import make_run

    root = make_run(tmp_path / "run")
    assert main(["pick", str(root), "--max-params", "1e400"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'1e400' is too large: give a finite number" in err[0], err


@pytest.mark.parametrize("value", ["latency:", "latency: ", " latency:"])
def test_a_latency_cost_without_a_device_says_to_name_one(value: str) -> None:
    with pytest.raises(ConfigError, match=r"^search.cost='latency:' names no device: give one "
                                          r"after the colon, e.g. search.cost=latency:raspi4$"):
        load_config("smoke", [f"search.cost={value}", "search.latency_table=t.csv"])
    with pytest.raises(ConfigError, match=r"^search.cost='latency:' names no device"):
        load_config("smoke", [f"search.cost={value}"])


def test_a_set_value_of_a_bare_word_and_colon_stays_text() -> None:
    """`search.cost=latency:` (no device) reached the config as the mapping {latency: None};
    it stays the text, for the key to name what is missing. A block mapping with a value
    still gives a section (`search.angle=enabled: true` worked before that change, and does),
    and flow mappings and lists parse."""
    from moonas.yamlio import parse_value

    assert parse_value("latency:") == "latency:"
    assert parse_value("a: b") == {"a": "b"}
    assert parse_value("{a: 1}") == {"a": 1} and parse_value(" [1, 2]") == [1, 2]
    assert parse_value("latency:raspi4") == "latency:raspi4" and parse_value("3") == 3
    assert load_config("smoke", ["search.pvll=enabled: false"]).search.pvll.enabled is False
    with pytest.raises(ConfigError, match=r"search.cost='latency:' names no device"):
        load_config("smoke", ["search.cost=latency:"])


def test_a_number_too_large_for_a_float_says_so_in_a_list_too() -> None:
    """`search.budgets=[1e400]` said "expected a number, got '1e400'" (YAML reads 1e400 as
    text, and the amount's own message was dropped)."""
    for item in ("search.budgets=[1e400]", "search.epochs=1e400"):
        with pytest.raises(ConfigError, match=r"'1e400' is too large: give a finite number"):
            load_config("smoke", [item])


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n", "---\n", "{}\n"])
def test_a_config_file_that_sets_no_keys_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"^config file {path} sets no keys: give at least "
                                          r"one, or omit it to run the embedded default$"):
        load_config(path)
    partial = tmp_path / "partial.yaml"
    partial.write_text("# a comment\nsearch:\n  epochs: 9\n")
    assert load_config(partial).search.epochs == 9  # the rest: the schema's defaults
