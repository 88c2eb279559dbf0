"""What the labelling service shows: subjects from a dataset or a folder of real alert packets."""

from __future__ import annotations

import json
import tempfile

import numpy as np
import pytest
from _label_helpers import tiny_dataset

from realbogus.errors import InputError
from realbogus.io.dataset import open_dataset
from realbogus.label.source import load_source, subject_rows


def test_dataset_source(tmp_path, monkeypatch):
    """Stamps match the dataset, no cache file is left, PNGs render, metadata hides labels."""
    path = tiny_dataset(tmp_path / "ds", n=8)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    src = load_source(path)
    np.testing.assert_array_equal(src.stamps, open_dataset(path).stamps().data)
    assert list(scratch.iterdir()) == []  # the mapping outlives its removed file
    png = src.png(7003, 2)
    assert png[:4] == b"\x89PNG"
    rows = subject_rows(src.table, gold_fraction=1.0, seed=0)
    meta = json.loads(rows["metadata_json"].iloc[0])
    assert "label" not in meta and meta["diaSourceId"] == 7000
    np.testing.assert_array_equal(rows["gold"], src.table["label"].astype(float))
    assert subject_rows(src.table, gold_fraction=0.0)["gold"].isna().all()
    with pytest.raises(InputError, match="--gold-fraction"):
        subject_rows(src.table, gold_fraction=2)
    src.close()


def test_bad_data(tmp_path):
    """A missing path or a folder without alerts names DATA."""
    with pytest.raises(InputError, match="does not exist"):
        load_source(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="DATA"):
        load_source(tmp_path / "empty")


def test_alert_folder(shared_data):
    """The real Rubin DEV alerts (126 Kafka messages) become subjects with survey metadata."""
    folder = shared_data / "rubin" / "alerts"
    if not folder.is_dir():
        pytest.skip("no Rubin alerts in the shared data")
    src = load_source(folder, stamp_size=31)
    assert len(src.table) == src.stamps.shape[0] > 100
    assert src.stamps.shape[1:] == (3, 31, 31)
    meta = json.loads(subject_rows(src.table)["metadata_json"].iloc[0])
    assert meta["survey"] == "rubin" and "reliability" not in meta
    assert src.png(int(src.table["diaSourceId"].iloc[0]), 3)[:4] == b"\x89PNG"
    src.close()
