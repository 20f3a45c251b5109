"""Shared fixtures: the NAS-Bench-201 ground truth beside the repo, small spaces."""

from __future__ import annotations

import csv
import functools
import subprocess
from pathlib import Path

import pytest

NB201_CSV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nb201" / "nb201.csv"


@functools.lru_cache(maxsize=1)
def _nb201_rows() -> tuple[dict, ...]:
    with NB201_CSV.open() as handle:
        return tuple(csv.DictReader(handle))


@pytest.fixture(scope="session")
def nb201_rows() -> tuple[dict, ...]:
    """All 15,625 rows of ../shared/data/nb201/nb201.csv (fails loudly if it is missing)."""
    assert NB201_CSV.is_file(), f"NAS-Bench-201 table expected at {NB201_CSV}"
    return _nb201_rows()


@pytest.fixture
def live():
    """The pid of a live process standing in for another writer (a search or a `moonas
    train` holding a folder's lock); killed after the test."""
    other = subprocess.Popen(["sleep", "60"])
    yield other.pid
    other.kill()
    other.wait()
