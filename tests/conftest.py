"""Shared fixtures: seeded generators and the real data in ../shared/data (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def graph_cache(tmp_path_factory):
    """The cached ONNX graphs of a test run go to a temporary folder, not the user's cache."""
    import os

    from realbogus.inference.onnx import GRAPH_CACHE_ENV

    before = os.environ.get(GRAPH_CACHE_ENV)
    os.environ[GRAPH_CACHE_ENV] = str(tmp_path_factory.mktemp("graph-cache"))
    yield
    if before is None:
        os.environ.pop(GRAPH_CACHE_ENV, None)
    else:
        os.environ[GRAPH_CACHE_ENV] = before


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh, seeded generator for each test."""
    return np.random.default_rng(20261126)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real-data folder; tests that use it skip cleanly when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA
