"""Latency models: additive tables (pricing, extremes, JSON, fits, profiling) and nb201 lookups."""

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


def test_profile_space_writes_a_usable_table(tmp_path: Path, monkeypatch) -> None:
    """Timed for real (the bar, the protocol), then fitted on additive stand-in figures: the
    real ones of networks this tiny are noise, and a fit that predicts its fastest network at
    or below 0 ms is refused at load (right, and it made this test fail now and then)."""
    import moonas.deploy.profile as profile

    archs = profile.profile_archs(TINY, 4, np.random.default_rng(0))  # profile_space's, seed 0
    additive = 0.5 + (archs * 0.1).sum(axis=1)
    timed = profile.measure_latency

    def measured(*args, **kwargs):
        real = timed(*args, **kwargs)
        assert real.shape == additive.shape and np.all(np.isfinite(real)) and np.all(real > 0)
        return additive

    monkeypatch.setattr(profile, "measure_latency", measured)
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
    printed = capsys.readouterr().out
    assert "latency:laptop of mobilenet" in printed
    # --random 1: as many unknowns as networks but one, so the in-sample error says little;
    # the line gives the leave-one-out error, over the networks the others predict.
    assert "leave-one-out error" in printed and "fit error" not in printed
    model = load_latency(out)
    assert model.device == "laptop" and model.space["kernels"] == [3]
    measured = json.loads(out.read_text())["measured"]
    assert measured["fit_mape_kind"] == "in-sample"
    assert f"over the {measured['leave_one_out_networks']} of {measured['networks']} " in printed
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
        monkeypatch, caplog, tmp_path: Path) -> None:
    """On a loaded machine the fit predicted the fastest architecture at -0.001 ms and
    `profile` said nothing; now one warning names the prediction and the remedy. The table is
    still returned (and saved: the timings are not lost), the warning says loading will refuse
    it, and advises --statistic min only when it was not already used."""
    import logging

    import moonas.deploy.profile as profile

    def noisy(nets, shape, protocol, seed=0, progress=None):
        archs = profile_archs(TINY, 4, np.random.default_rng(0))
        # Option 1 of every choice saves 0.3 ms on a 1 ms reference: six of them go below 0.
        return np.maximum(1.0 - 0.3 * (archs == 1).sum(axis=1), 0.05)

    monkeypatch.setattr(profile, "measure_latency", noisy)
    for statistic in ("median", "min"):
        protocol = TimingProtocol(warmup=1, repeats=2, min_sample_ms=0.1, statistic=statistic)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="moonas.deploy.profile"):
            model = profile_space(TINY, "busy", protocol, n_random=4)
        fastest, _ = model.extreme(cheapest=True)
        assert fastest <= 0
        said = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and "fastest" in r.getMessage()]
        assert len(said) == 1 and "\n" not in said[0]
        assert f"predicts {fastest:.4g} ms for the fastest architecture" in said[0]
        assert "more --repeats" in said[0] and "quieter machine" in said[0]
        assert "the table is kept, but search, pick, plot and export will refuse" in said[0]
        assert ("--statistic min" in said[0]) == (statistic == "median")
        model.save(tmp_path / "busy.json")
        _refused(tmp_path / "busy.json", "predicts", "fastest architecture")
    # An exact additive machine: no warning.
    monkeypatch.setattr(profile, "measure_latency", lambda nets, *a, **k: _toy().price(
        profile_archs(TINY, 4, np.random.default_rng(0))))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="moonas.deploy.profile"):
        profile_space(TINY, "quiet", protocol, n_random=4)
    assert not [r for r in caplog.records
                if r.levelno == logging.WARNING and "fastest" in r.getMessage()]


# -- tables that cannot price: refused on loading ----------------------------------------------
def _write(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data))
    return path


def _refused(path: Path, *parts: str) -> str:
    with pytest.raises(DataError) as info:
        load_latency(path, space=TINY)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    for part in parts:
        assert part in message, (part, message)
    return message


def test_a_table_with_figures_that_cannot_be_latencies_is_refused(tmp_path: Path) -> None:
    """NaN, inf, and a table whose fastest architecture comes out at or below 0 ms loaded
    silently (NaN architectures dropped out of picks, "-4.471 ms" was chosen, an all-zero
    table priced everything 0 ms): each is one line naming the file and the field, or the
    fastest architecture and how to measure again."""
    model = _toy()
    option = TINY.choices[2].options[1]
    for field, value in (("option", float("nan")), ("option", float("inf")),
                         ("base", float("nan")), ("base", float("-inf")), ("base", None),
                         ("base", "fast")):
        data = model.to_json()
        if field == "base":
            data["base_ms"] = value
            where = "base_ms is"
        else:
            data["choices"][2]["options_ms"][option] = value
            where = f"choice 2 options_ms[{option!r}] is"
        _refused(_write(tmp_path / "bad.json", data), where, "not a finite number of ms",
                 "moonas profile")
    # The fastest architecture at or below 0 ms: an all-zero table, or a base below the
    # savings of the fastest options.
    zero = model.to_json()
    zero["base_ms"] = 0.0
    for choice in zero["choices"]:
        choice["options_ms"] = {name: 0.0 for name in choice["options_ms"]}
    _refused(_write(tmp_path / "zero.json", zero), "predicts 0 ms for the fastest architecture",
             "more --repeats", "--statistic min")
    negative = model.to_json()
    for choice in negative["choices"]:
        choice["options_ms"][next(iter(choice["options_ms"]))] = -1.0
    negative["measured"] = {"statistic": "min", "threads": 4}
    message = _refused(_write(tmp_path / "neg.json", negative),
                       f"predicts {0.5 - 6:.4g} ms for the fastest architecture [0, 0, 0, 0, 0, 0]",
                       "more --repeats", "fewer --threads")
    assert "--statistic min" not in message  # it was timed so already
    # An option faster than its choice's reference is a negative figure, and legitimate
    # while the fastest architecture stays above 0 ms.
    faster = model.to_json()
    faster["choices"][0]["options_ms"][TINY.choices[0].options[0]] = -0.25
    loaded = load_latency(_write(tmp_path / "faster.json", faster), space=TINY)
    assert loaded.table[0, 0] == -0.25 and loaded.extreme()[0] > 0


def test_profile_reports_the_leave_one_out_error_of_its_fit(monkeypatch, caplog) -> None:
    """With --random 1 the fit has one network more than unknowns: its in-sample error was
    ~0 % while new networks were ~4 % off. `measured` now holds the leave-one-out error (each
    network predicted by the fit of the others, as refitting without it gives), over the
    networks the others can predict, and a warning says too few networks check the fit."""
    import logging

    import moonas.deploy.profile as profile

    truth = _toy(seed=3)
    rng = np.random.default_rng(11)
    timed = {}

    def measure(nets, shape, protocol, seed=0, progress=None):
        archs = profile_archs(TINY, timed["n_random"], np.random.default_rng(0))
        timed["archs"] = archs
        timed["ms"] = truth.price(archs) * rng.uniform(0.9, 1.1, len(archs))
        return timed["ms"]

    monkeypatch.setattr(profile, "measure_latency", measure)
    protocol = TimingProtocol(warmup=1, repeats=2)
    for n_random in (1, 30):
        timed["n_random"] = n_random
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="moonas.deploy.profile"):
            measured = profile_space(TINY, "noisy", protocol, n_random=n_random).measured
        archs, ms = timed["archs"], timed["ms"]
        design = profile._design(archs, TINY.n_options)
        rank = np.linalg.matrix_rank(design)
        errors, lonely = [], 0
        for i in range(len(archs)):
            rest = np.arange(len(archs)) != i
            if np.linalg.matrix_rank(np.vstack([design[rest], design[i]])) > \
                    np.linalg.matrix_rank(design[rest]):
                lonely += 1  # an option timed in this network only: nothing predicts it
                continue
            base, table = fit_additive(archs[rest], ms[rest], TINY.n_options)
            refit = AdditiveLatency(device="x", base=base, table=table, valid=truth.valid,
                                    space=truth.space)
            errors.append(abs(refit.price(archs[i])[0] - ms[i]) / ms[i])
        assert measured["fit_unknowns"] == rank == 25
        assert measured["not_predictable_networks"] == lonely
        assert measured["leave_one_out_networks"] == len(errors) == len(archs) - lonely
        assert measured["leave_one_out_mape_percent"] == pytest.approx(100 * np.mean(errors),
                                                                       abs=1e-3)
        assert measured["fit_mape_kind"] == "in-sample"
        few = [r.getMessage() for r in caplog.records if "unknowns" in r.getMessage()]
        if n_random == 1:
            assert lonely > 0 and measured["fit_mape_percent"] < \
                measured["leave_one_out_mape_percent"]
            assert len(few) == 1 and "only 1 beyond them" in few[0]
            assert "time 10 or more random networks (profile --random)" in few[0]
        else:
            assert lonely == 0 and not few


def test_a_folder_with_two_tables_of_one_device_is_refused(tmp_path: Path) -> None:
    """The file sorted last silently won; now which file prices the device is no accident."""
    model = _toy()
    model.save(tmp_path / "a.json")
    AdditiveLatency(device="toy", base=2.0, table=model.table, valid=model.valid,
                    space=model.space).save(tmp_path / "b_again.json")
    for call in (lambda: load_latency(tmp_path, "toy"), lambda: known_devices(tmp_path)):
        with pytest.raises(DataError, match=r"a.json and b_again.json in .* both hold the "
                                            r"latency table of device 'toy': keep one") as info:
            call()
        assert "\n" not in str(info.value)
    (tmp_path / "b_again.json").unlink()
    assert load_latency(tmp_path, "toy").base == 0.5


def test_choices_in_another_order_or_another_unit_are_refused(tmp_path: Path) -> None:
    """Choices are read by position: a reversed list (names kept) priced every choice with
    another's figures, and "unit": "s" was read as ms. Both are one line now; a table
    written without names (choice0, choice1, ...) still reads in order."""
    model = _toy()
    data = model.to_json()
    data["choices"] = data["choices"][::-1]
    names = [c.name for c in TINY.choices]
    message = _refused(_write(tmp_path / "rev.json", data),
                       f"choice 0 is named {names[-1]!r}, the space's choice 0 is {names[0]!r}",
                       "list the choices in the space's order")
    assert ", ".join(names) in message
    swapped = model.to_json()
    swapped["choices"][3]["name"], swapped["choices"][4]["name"] = names[4], names[3]
    _refused(_write(tmp_path / "swap.json", swapped), f"choice 3 is named {names[4]!r}")
    for unit in ("s", "us", "MS"):
        data = model.to_json()
        data["unit"] = unit
        _refused(_write(tmp_path / "unit.json", data), f"gives its figures in {unit!r}",
                 "reads ms only")
    unnamed = AdditiveLatency(device="toy", base=model.base, table=model.table,
                              valid=model.valid, space=model.space)
    unnamed.save(tmp_path / "unnamed.json")
    assert json.loads((tmp_path / "unnamed.json").read_text())["choices"][1]["name"] == "choice1"
    np.testing.assert_allclose(load_latency(tmp_path / "unnamed.json", space=TINY).table,
                               model.table, atol=1e-6)
    late = unnamed.to_json()
    late["choices"][0]["name"], late["choices"][1]["name"] = "choice1", "choice0"
    _refused(_write(tmp_path / "late.json", late), "choice 0 is named 'choice1'")


def test_a_loaded_table_says_once_how_it_was_timed(tmp_path: Path, caplog) -> None:
    """The threads and statistic a table was timed with were recorded but never shown: a
    table loaded for a search or pick says them at INFO, once per table."""
    import logging

    model = _toy()
    timed = AdditiveLatency(device="toy", base=model.base, table=model.table, valid=model.valid,
                            space=model.space, measured={"threads": 4, "batch": 1,
                                                         "statistic": "min", "repeats": 7,
                                                         "machine": {"cpus": 8}})
    timed.save(tmp_path / "timed.json")
    with caplog.at_level(logging.INFO, logger="moonas.costs.latency"):
        for _ in range(3):
            loaded = load_latency(tmp_path / "timed.json", "toy", space=TINY)
    said = [r.getMessage() for r in caplog.records if "was timed with" in r.getMessage()]
    assert said == [f"latency:toy from {tmp_path / 'timed.json'} was timed with batch 1, "
                    "threads 4, statistic min, repeats 7: its latencies hold for those "
                    "conditions"]
    assert loaded.conditions() == {"batch": 1, "threads": 4, "statistic": "min", "repeats": 7}
    assert model.conditions() == {}


def test_profiling_leaves_the_callers_rng_alone() -> None:
    protocol = TimingProtocol(warmup=1, repeats=2, min_sample_ms=0.1)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    profile_space(TINY, "here", protocol, n_random=1, seed=5)
    assert torch.equal(torch.get_rng_state(), state)


def test_profile_checks_the_device_name_before_the_out_table(tmp_path: Path) -> None:
    import argparse

    from moonas.deploy.cli import register

    parser = argparse.ArgumentParser(prog="moonas")
    register(parser.add_subparsers(dest="command"))
    out = tmp_path / "t.json"
    _toy().save(out)
    before = out.read_text()
    args = parser.parse_args(["profile", "--name", "a b/c", "--out", str(out), "-q"])
    with pytest.raises(ConfigError, match=r"^device name 'a b/c' must be a plain word"):
        args.func(args)
    assert out.read_text() == before


def test_profile_flags_in_conflict_exit_2(tmp_path: Path, capsys) -> None:
    from moonas.cli import main

    assert main(["profile", "--name", "x", "--out", str(tmp_path / "x.json"), "--run",
                 str(tmp_path), "--config", "smoke", "-q"]) == 2
    assert capsys.readouterr().err == ("moonas profile: error: --run profiles that run's "
                                       "space: drop --config, --set and --space\n")
