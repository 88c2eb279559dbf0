"""Tests of crowd label sets -> training datasets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from realbogus.crowd.labels import select_labels, training_dataset
from realbogus.errors import ConfigError, InputError
from realbogus.io.dataset import open_dataset, write_dataset
from realbogus.stamps import Stamps


def tiny_dataset(path, rng, n=12, size=11):
    table = pd.DataFrame(
        {
            "diaSourceId": np.arange(n, dtype=np.int64) + 5000,
            "label": rng.integers(0, 2, n),
            "origin": np.where(np.arange(n) % 3 == 0, "ss", "gaia"),
        }
    )
    data = rng.normal(size=(n, 3, size, size)).astype(np.float32)
    return write_dataset(
        path,
        table,
        Stamps(data=data, valid_fraction=np.ones(n, np.float32), edge=np.zeros(n, bool)),
    )


def _labels(ids, labels, stable, unstable=None):
    n = len(ids)
    return pd.DataFrame(
        {
            "subject_id": np.arange(n) + 1,
            "diaSourceId": ids,
            "p_real": np.where(np.array(labels) == 1, 0.95, 0.05),
            "label": pd.array(labels, dtype="Int8"),
            "stable": stable,
            "unstable": unstable if unstable is not None else [True] * n,
            "reference": pd.array([None] * n, dtype="Int8"),
            "n_votes": [3] * n,
        }
    )


def test_select_balances_by_subsampling():
    """The larger class is subsampled to the smaller; unstable keeps more rows; seeded."""
    lab = _labels(np.arange(10) + 5000, [1, 1, 1, 1, 1, 1, 0, 0, 0, 0], [True] * 8 + [False] * 2)
    s = select_labels(lab, which="stable", seed=0)
    assert (s["label"] == 1).sum() == (s["label"] == 0).sum() == 2
    u = select_labels(lab, which="unstable", seed=0)
    assert (u["label"] == 1).sum() == 4 and len(u) == 8
    assert len(select_labels(lab, which="stable", balance=False)) == 8
    pd.testing.assert_frame_equal(s, select_labels(lab, which="stable", seed=0))
    with pytest.raises(ConfigError, match="stable"):
        select_labels(lab, which="all")
    with pytest.raises(InputError, match="diaSourceId"):
        select_labels(lab.drop(columns="diaSourceId"))


def test_training_dataset_keeps_stamps_and_origin(tmp_path, rng):
    """Rows and stamps of the chosen set are written with the crowd label and labelSource=crowd."""
    ds = open_dataset(tiny_dataset(tmp_path / "ds", rng))
    table, stamps = ds.table(), ds.stamps()
    ids = table["diaSourceId"].to_numpy()
    crowd = [1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 0, 0]
    lab = _labels(ids, crowd, [True] * 12)
    out = training_dataset(lab, ds, tmp_path / "train", seed=1)
    tr = open_dataset(out)
    t = tr.table()
    assert len(t) == 12 and (t["labelSource"] == "crowd").all()
    assert t["label"].sum() == 6
    row = {d: i for i, d in enumerate(ids)}
    idx = [row[d] for d in t["diaSourceId"]]
    np.testing.assert_array_equal(t["label"].to_numpy(), np.array(crowd)[idx])
    np.testing.assert_array_equal(t["label_original"].to_numpy(), table["label"].to_numpy()[idx])
    np.testing.assert_array_equal(t["origin"].to_numpy(), table["origin"].to_numpy()[idx])
    np.testing.assert_array_equal(tr.stamps().data, stamps.data[idx])
    assert tr.manifest["provenance"]["crowd_labels"]["set"] == "stable"
    missing = _labels(np.array([1, 2]), [1, 0], [True, True])
    with pytest.raises(InputError, match="not in the dataset"):
        training_dataset(missing, ds, tmp_path / "t2")
