"""moonas.devices: the device setting, checked when read and resolved when a run starts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import moonas
from moonas.config import load_config
from moonas.devices import check_device_name, resolve_device
from moonas.errors import ConfigError
from moonas.search.batches import Batches


@pytest.mark.parametrize("name", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_known_device_names_pass(name):
    assert check_device_name(name) == name


@pytest.mark.parametrize("name", ["gpu", "CPU", "cuda:", "cuda:x", "cuda0", "", 0, None])
def test_unknown_device_names_are_one_line(name):
    with pytest.raises(ConfigError, match=r"use auto, cpu, cuda or cuda:N") as caught:
        check_device_name(name)
    assert "\n" not in str(caught.value)


def test_a_config_with_a_bad_device_fails_when_read():
    with pytest.raises(ConfigError, match="device='gpu'"):
        load_config("smoke", ["device=gpu"])
    assert load_config("smoke", ["device=auto"]).device == "auto"
    assert load_config("smoke").device == "cpu"  # the tiny embedded configs pin the CPU


def test_without_a_gpu_auto_is_the_cpu_and_cuda_is_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="no CUDA GPU.*use --device=cpu or auto"):
        resolve_device("cuda:0", "--device")


def test_with_a_gpu_auto_takes_it_and_a_missing_index_is_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ConfigError, match="has 2 CUDA GPU\\(s\\), cuda:0 to cuda:1"):
        resolve_device("cuda:2")


def _split(n: int = 40):
    x = torch.arange(n * 4, dtype=torch.float32).reshape(n, 1, 2, 2)
    return torch.utils.data.TensorDataset(x, torch.arange(n) % 3)


def test_batches_go_to_their_device_and_stay_the_same_batches():
    data = _split()
    plain = list(Batches(data, 8, 0, 1, drop_last=True).epoch(2))
    on_cpu = list(Batches(data, 8, 0, 1, drop_last=True, device=torch.device("cpu")).epoch(2))
    # The meta device holds shapes only: it shows the batches are moved, without a GPU.
    on_meta = list(Batches(data, 8, 0, 1, drop_last=True, device=torch.device("meta")).epoch(2))
    assert len(plain) == len(on_cpu) == len(on_meta) == 5
    for (x, y), (xc, yc), (xm, ym) in zip(plain, on_cpu, on_meta):
        assert torch.equal(x, xc) and torch.equal(y, yc)
        assert xm.device.type == ym.device.type == "meta" and xm.shape == x.shape


def test_a_search_on_a_missing_gpu_stops_before_a_run_directory(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="device='cuda': torch sees no CUDA GPU"):
        moonas.search("smoke", tmp_path / "run", overrides=("device=cuda",))
    assert not (tmp_path / "run").exists()
