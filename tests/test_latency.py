"""Latency models: additive tables (pricing, extremes, JSON, fitting, profiling) and nb201 lookups."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from moonas.costs import CostTable
from moonas.costs.latency import (AdditiveLatency, LatencyCosts, LookupLatency, known_devices,
                                  load_latency, with_latency)
from moonas.deploy.profile import (TimingProtocol, fit_additive, measure_latency, profile_archs,
                                   profile_space)
from moonas.errors import ConfigError, DataError
from moonas.spaces import MobileNetSpace, NB201Space

from conftest import NB201_CSV

TINY = NB201Space(input_size=4, in_channels=1, n_classes=3, channels=2, cells_per_stage=1)


def _toy(space=TINY, seed: int = 0) -> AdditiveLatency:
    rng = np.random.default_rng(seed)
    k_max = max(space.n_options)
    valid = np.arange(k_max)[None, :] < np.asarray(space.n_options)[:, None]
    table = np.where(valid, rng.uniform(0, 2, (space.n_choices, k_max)), 0.0)
    return AdditiveLatency(device="toy", base=0.5, table=table, valid=valid,
                           space=space.settings(),
                           option_names=tuple(c.options for c in space.choices),
                           choice_names=tuple(c.name for c in space.choices))


def test_additive_price_and_extremes_match_brute_force() -> None:
    model = _toy()
    archs = np.array(list(itertools.product(*(range(k) for k in TINY.n_options))))
    prices = model.price(archs)
    expected = 0.5 + np.array([sum(model.table[d, a[d]] for d in range(6)) for a in archs])
    np.testing.assert_allclose(prices, expected)
    fast, fast_arch = model.extreme(cheapest=True)
    slow, slow_arch = model.extreme(cheapest=False)
    assert fast == pytest.approx(prices.min()) and slow == pytest.approx(prices.max())
    assert model.price(np.array(fast_arch))[0] == pytest.approx(fast)
    assert model.name == "latency:toy"
    assert model.price(archs[3]).shape == (1,)
    with pytest.raises(ConfigError, match="6 choices"):
        model.price(np.zeros((2, 5), dtype=int))


def test_json_round_trip_and_device_names(tmp_path: Path) -> None:
    model = _toy()
    path = tmp_path / "toy.json"
    model.save(path)
    data = json.loads(path.read_text())
    assert data["device"] == "toy" and data["unit"] == "ms"
    assert list(data["choices"][0]["options_ms"]) == list(TINY.choices[0].options)
    loaded = load_latency(path, space=TINY)
    archs = TINY.sample(np.random.default_rng(1), 50)
    np.testing.assert_allclose(loaded.price(archs), model.price(archs), atol=1e-5)
    assert load_latency(path, "latency:toy").device == "toy"
    with pytest.raises(ConfigError, match="known devices: toy"):
        load_latency(path, "phone")
    # A folder of tables: one per device.
    other = AdditiveLatency(device="phone", base=model.base, table=model.table * 2,
                            valid=model.valid, space=model.space)
    other.save(tmp_path / "phone.json")
    assert known_devices(tmp_path) == ("phone", "toy")
    assert load_latency(tmp_path, "phone").price(archs[:1])[0] > 0
    with pytest.raises(ConfigError, match="name the device"):
        load_latency(tmp_path)
    with pytest.raises(ConfigError, match="did you mean 'phone'"):
        load_latency(tmp_path, "phon")
    # Other JSON files beside the tables (an export's sidecar, notes) are passed over; one
    # that is no JSON at all, with a warning.
    (tmp_path / "net.onnx.json").write_text('{"format": "onnx", "file": "net.onnx"}')
    (tmp_path / "notes.json").write_text("[1, 2]")
    (tmp_path / "torn.json").write_text('{"format": "moonas-lat')
    assert known_devices(tmp_path) == ("phone", "toy")
    assert load_latency(tmp_path, "phone").device == "phone"


def test_table_of_another_space_is_refused(tmp_path: Path) -> None:
    _toy().save(tmp_path / "toy.json")
    other = NB201Space(input_size=4, in_channels=1, n_classes=3, channels=4, cells_per_stage=1)
    with pytest.raises(ConfigError, match="channels=2 .table. vs 4"):
        load_latency(tmp_path / "toy.json", space=other)


def test_bad_files_fail_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_latency(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        load_latency(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"format": "something else"}')
    with pytest.raises(DataError, match="not a moonas latency table"):
        load_latency(tmp_path / "other.json")
    broken = _toy().to_json()
    del broken["choices"]
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    with pytest.raises(DataError, match="incomplete"):
        load_latency(tmp_path / "broken.json")


def test_nb201_devices_look_up_the_benchmark_rows(nb201_rows) -> None:
    space = NB201Space()
    model = load_latency(NB201_CSV, "pixel3", space=space)
    assert isinstance(model, LookupLatency) and model.name == "latency:pixel3"
    rows = nb201_rows[:50]
    archs = np.array([space.from_str(r["arch_str"]) for r in rows])
    expected = [float(r["hwnb_c10_pixel3_latency_ms"]) for r in rows]
    np.testing.assert_allclose(model.price(archs), expected)
    fast, arch = model.extreme(cheapest=True)
    assert fast == pytest.approx(min(float(r["hwnb_c10_pixel3_latency_ms"]) for r in nb201_rows))
    assert model.price(np.array(arch))[0] == fast
    assert {"raspi4", "pixel3", "fpga", "eyeriss", "titan_rtx_1"} <= set(known_devices(NB201_CSV))
    with pytest.raises(ConfigError, match="known devices"):
        load_latency(NB201_CSV, "iphone")
    with pytest.raises(ConfigError, match="name one of"):
        load_latency(NB201_CSV)
    with pytest.raises(ConfigError, match="moonas profile"):
        load_latency(NB201_CSV, "raspi4", space=MobileNetSpace())


def test_with_latency_extends_the_cost_table() -> None:
    rng = np.random.default_rng(5)
    valid = np.ones((6, 5), dtype=bool)
    table = CostTable(("params", "macs"), np.array([100.0, 1000.0]),
                      rng.integers(0, 50, (2, 6, 5)).astype(float), valid)
    model = _toy()
    extended = with_latency(table, model)
    assert isinstance(extended, CostTable)
    assert extended.names == ("params", "macs", "latency:toy")
    archs = TINY.sample(np.random.default_rng(2), 40)
    np.testing.assert_allclose(extended.cost("latency:toy", archs), model.price(archs))
    np.testing.assert_allclose(extended.cost("params", archs), table.cost("params", archs))
    assert extended.extreme("latency:toy")[0] == pytest.approx(model.extreme()[0])
    lookup = LookupLatency(device="fake", values=np.arange(TINY.size, dtype=float),
                           n_options=TINY.n_options)
    mixed = with_latency(table, lookup)
    assert isinstance(mixed, LatencyCosts)
    assert mixed.names[-1] == "latency:fake" and mixed.price(archs).shape == (40, 3)
    assert mixed.extreme("latency:fake") == (0.0, (0,) * 6)
    with pytest.raises(ConfigError, match="unknown cost"):
        mixed.index("latency:other")


def test_fit_recovers_an_exact_additive_table() -> None:
    space = MobileNetSpace(input_size=8, in_channels=1, n_classes=4)
    truth = _toy(space, seed=4)
    archs = profile_archs(space, None, np.random.default_rng(0))
    n_changes = sum(k - 1 for k in space.n_options)
    assert len(archs) == 1 + 2 * n_changes
    base, table = fit_additive(archs, truth.price(archs), space.n_options)
    fitted = AdditiveLatency(device="fit", base=base, table=table, valid=truth.valid,
                             space=truth.space)
    others = space.sample(np.random.default_rng(9), 100)
    np.testing.assert_allclose(fitted.price(others), truth.price(others), rtol=1e-9)
    assert np.all(table[truth.valid] >= -1e-12)
    assert np.allclose(np.where(truth.valid, table, np.inf).min(axis=1), 0)


def test_measure_latency_orders_networks_and_restores_threads() -> None:
    small = nn.Conv2d(1, 1, 1)
    big = nn.Sequential(*[nn.Conv2d(64, 64, 3, padding=1) for _ in range(4)])
    threads = torch.get_num_threads()
    times = measure_latency([nn.Sequential(nn.Conv2d(64, 1, 1)), big], (64, 16, 16),
                            TimingProtocol(warmup=2, repeats=5, statistic="min"))
    assert torch.get_num_threads() == threads
    assert np.all(np.isfinite(times)) and np.all(times > 0)
    assert times[1] > 5 * times[0]
    del small
    with pytest.raises(ConfigError, match="statistic"):
        TimingProtocol(statistic="mean")


def test_profile_space_writes_a_usable_table(tmp_path: Path) -> None:
    protocol = TimingProtocol(warmup=2, repeats=3, min_sample_ms=0.2, statistic="min")
    seen = []
    model = profile_space(TINY, "here", protocol, n_random=4,
                          progress=lambda done, total, info: seen.append((done, total, info)))
    # The bar counts timing rounds over every network, and says so (not "3 arch").
    assert seen == [(r, 3, {"phase": "timing 29 networks", "unit": "round"}) for r in (1, 2, 3)]
    assert model.name == "latency:here"
    assert model.measured["networks"] == 1 + 24 + 4 and model.measured["threads"] == 1
    assert np.isfinite(model.base) and np.all(np.isfinite(model.table))
    assert model.measured["fit_mape_percent"] >= 0
    model.save(tmp_path / "here.json")
    again = load_latency(tmp_path / "here.json", "here", space=TINY)
    arch = TINY.sample(np.random.default_rng(0), 1)
    assert again.price(arch)[0] == pytest.approx(model.price(arch)[0], abs=1e-5)
    with pytest.raises(ConfigError, match="plain word"):
        profile_space(TINY, "a/b", protocol)


def test_profile_cli(tmp_path: Path, capsys) -> None:
    import argparse

    from moonas.deploy.cli import register

    parser = argparse.ArgumentParser(prog="moonas")
    register(parser.add_subparsers(dest="command"))
    out = tmp_path / "laptop.json"
    args = parser.parse_args(["profile", "--space", "mobilenet", "--set", "space.stages=[[8,1,1]]",
                              "--set", "space.kernels=[3]", "--set", "space.head_channels=8",
                              "--name", "laptop", "--out", str(out), "--repeats", "2",
                              "--warmup", "1", "--random", "1", "-q"])
    assert args.func(args) == 0
    assert "latency:laptop of mobilenet" in capsys.readouterr().out
    model = load_latency(out)
    assert model.device == "laptop" and model.space["kernels"] == [3]
    args = parser.parse_args(["profile", "--name", "x", "--out", str(tmp_path / "x.txt")])
    with pytest.raises(ConfigError, match=".json"):
        args.func(args)


def test_profile_refuses_to_replace_another_devices_table(tmp_path: Path, caplog) -> None:
    """A table of another device is kept unless --force (runs that searched with it rely on
    it); the same device's table is measured again, and the log says it was replaced."""
    import argparse
    import logging

    from moonas.deploy.cli import register
    from moonas.errors import MoonasError

    parser = argparse.ArgumentParser(prog="moonas")
    register(parser.add_subparsers(dest="command"))
    tiny = ["--space", "mobilenet", "--set", "space.stages=[[8,1,1]]", "--set",
            "space.kernels=[3]", "--set", "space.head_channels=8", "--repeats", "2", "--warmup",
            "1", "--random", "1", "-q"]
    out = tmp_path / "t2.json"
    _toy().save(out)
    before = out.read_text()
    args = parser.parse_args(["profile", "--name", "laptop", "--out", str(out), *tiny])
    with pytest.raises(MoonasError, match="t2.json holds the latency table of device 'toy', "
                                          "not 'laptop': .* --force") as info:
        args.func(args)
    assert "\n" not in str(info.value) and out.read_text() == before
    other = tmp_path / "notes.json"
    other.write_text("{}")
    args = parser.parse_args(["profile", "--name", "laptop", "--out", str(other), *tiny])
    with pytest.raises(MoonasError, match="not a 'moonas profile' latency table"):
        args.func(args)
    assert other.read_text() == "{}"
    with caplog.at_level(logging.INFO, logger="moonas.deploy.cli"):
        args = parser.parse_args(["profile", "--name", "laptop", "--out", str(out), "--force",
                                  *tiny])
        assert args.func(args) == 0
        assert load_latency(out).device == "laptop"
        args = parser.parse_args(["profile", "--name", "laptop", "--out", str(out), *tiny])
        assert args.func(args) == 0
    assert "replacing the earlier latency table of laptop" in caplog.text


def test_options_are_read_by_name_whatever_their_order(tmp_path: Path) -> None:
    """A table re-saved with sorted keys (jq -S) was read by position: every latency changed,
    silently. Options map by name; a missing or unknown one is one line."""
    model = _toy()
    data = model.to_json()
    (tmp_path / "sorted.json").write_text(json.dumps(data, sort_keys=True))
    assert list(json.loads((tmp_path / "sorted.json").read_text())["choices"][0]["options_ms"]) \
        != list(TINY.choices[0].options)
    loaded = load_latency(tmp_path / "sorted.json", space=TINY)
    np.testing.assert_allclose(loaded.table, model.table, atol=1e-6)
    assert loaded.option_names == tuple(c.options for c in TINY.choices)
    archs = TINY.sample(np.random.default_rng(2), 40)
    np.testing.assert_allclose(loaded.price(archs), model.price(archs), atol=1e-5)
    # Reversed keys too; a table written in order reads as before.
    for choice in data["choices"]:
        choice["options_ms"] = dict(reversed(list(choice["options_ms"].items())))
    (tmp_path / "reversed.json").write_text(json.dumps(data))
    np.testing.assert_allclose(load_latency(tmp_path / "reversed.json").table, model.table,
                               atol=1e-6)
    model.save(tmp_path / "inorder.json")
    np.testing.assert_allclose(load_latency(tmp_path / "inorder.json").table, model.table,
                               atol=1e-6)
    options = TINY.choices[1].options
    for change, message in (
            (lambda o: o.pop(options[2]), rf"choice 1: options_ms lacks '{options[2]}' \(the "
                                          rf"space's options: {', '.join(options)}\)"),
            (lambda o: o.update(conv_9x9=1.0), r"choice 1: options_ms has unknown 'conv_9x9'"),
            (lambda o: o.update(bad=o.pop(options[0])), rf"lacks '{options[0]}' and has unknown "
                                                        "'bad'")):
        broken = model.to_json()
        change(broken["choices"][1]["options_ms"])
        (tmp_path / "broken.json").write_text(json.dumps(broken))
        with pytest.raises(DataError, match=message) as info:
            load_latency(tmp_path / "broken.json")
        assert "\n" not in str(info.value) and "moonas profile" in str(info.value)


def test_profile_warns_when_the_fit_predicts_a_fastest_architecture_at_or_below_zero(
        monkeypatch, caplog) -> None:
    """On a loaded machine the fit predicted the fastest architecture at -0.001 ms and
    `profile` said nothing; now one warning names the prediction and the remedy."""
    import logging

    import moonas.deploy.profile as profile

    protocol = TimingProtocol(warmup=1, repeats=2, min_sample_ms=0.1, statistic="min")

    def noisy(nets, shape, protocol, seed=0, progress=None):
        archs = profile_archs(TINY, 4, np.random.default_rng(0))
        # Option 1 of every choice saves 0.3 ms on a 1 ms reference: six of them go below 0.
        return np.maximum(1.0 - 0.3 * (archs == 1).sum(axis=1), 0.05)

    monkeypatch.setattr(profile, "measure_latency", noisy)
    with caplog.at_level(logging.WARNING, logger="moonas.deploy.profile"):
        model = profile_space(TINY, "busy", protocol, n_random=4)
    fastest, _ = model.extreme(cheapest=True)
    assert fastest <= 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"predicts {fastest:.4g} ms for the fastest architecture" in warnings[0]
    assert "more --repeats" in warnings[0] and "quieter machine" in warnings[0]
    # An exact additive machine: no warning.
    monkeypatch.setattr(profile, "measure_latency", lambda nets, *a, **k: _toy().price(
        profile_archs(TINY, 4, np.random.default_rng(0))))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="moonas.deploy.profile"):
        profile_space(TINY, "quiet", protocol, n_random=4)
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
