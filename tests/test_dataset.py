"""The on-disk dataset: round trip, manifest, atomicity, validation."""

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from realbogus.errors import InputError
from realbogus.io.dataset import open_dataset, write_dataset
from realbogus.stamps import Stamps


def _data(rng, n=12, size=11):
    table = pd.DataFrame(
        {
            "diaSourceId": np.arange(n, dtype=np.int64),
            "label": rng.integers(0, 2, n),
            "origin": rng.choice(["injection", "gaia", "ss"], n),
        }
    )
    stamps = Stamps(
        rng.normal(size=(n, 3, size, size)).astype(np.float32),
        rng.uniform(size=n).astype(np.float32),
        rng.uniform(size=n) < 0.5,
    )
    return table, stamps


def test_round_trip_and_manifest(rng, tmp_path):
    """Stamps and table come back exactly; the manifest counts labels and origins."""
    table, stamps = _data(rng)
    path = write_dataset(
        tmp_path / "ds", table, stamps, provenance={"seed": np.int64(4)}, rows_per_part=5
    )
    ds = open_dataset(path)
    assert len(ds) == 12 and ds.stamp_size == 11 and len(ds.parts) == 3
    back = ds.stamps()
    np.testing.assert_array_equal(back.data, stamps.data)
    np.testing.assert_array_equal(back.valid_fraction, stamps.valid_fraction)
    np.testing.assert_array_equal(back.edge, stamps.edge)
    pd.testing.assert_frame_equal(
        ds.table(), table.assign(valid_fraction=stamps.valid_fraction, edge=stamps.edge)
    )
    m = ds.manifest
    assert m["counts"]["label"] == {
        "real": int(table.label.sum()),
        "bogus": int(12 - table.label.sum()),
    }
    assert sum(m["counts"]["origin"].values()) == 12 and m["provenance"] == {"seed": 4}
    assert m["content_hash"].startswith("sha256:")
    # Readable by plain pyarrow: the stamp column is a fixed-size list of 3*S*S float32.
    assert pq.read_table(ds.parts[0]).schema.field("stamp").type.list_size == 3 * 11 * 11


def test_existing_output_is_not_touched(rng, tmp_path):
    """Writing onto an existing dataset fails and leaves it intact; no temp dirs linger."""
    table, stamps = _data(rng)
    path = write_dataset(tmp_path / "ds", table, stamps)
    before = (path / "manifest.json").read_text()
    with pytest.raises(InputError, match="already exists"):
        write_dataset(path, table, stamps)
    with pytest.raises(InputError, match="12 rows but there are 3"):
        write_dataset(
            tmp_path / "other",
            table,
            Stamps(stamps.data[:3], stamps.valid_fraction[:3], stamps.edge[:3]),
        )
    assert (path / "manifest.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_open_rejects_bad_datasets(rng, tmp_path):
    """No manifest, unknown schema, other channel order, missing parts: named errors."""
    with pytest.raises(InputError, match="no manifest.json"):
        open_dataset(tmp_path)
    table, stamps = _data(rng)
    path = write_dataset(tmp_path / "ds", table, stamps)
    manifest = json.loads((path / "manifest.json").read_text())
    for change, message in (
        ({"schema_version": 7}, "schema_version 7"),
        ({"channels": ["science", "template", "difference"]}, "channel order"),
        ({"parts": ["part-00009.parquet"]}, "missing part files"),
    ):
        (path / "manifest.json").write_text(json.dumps({**manifest, **change}))
        with pytest.raises(InputError, match=message):
            open_dataset(path)


def test_concat_datasets_with_queries(rng, tmp_path):
    """Rows selected by query from two datasets, in order, stamps with them; sizes must agree."""
    from realbogus.io.dataset import concat_datasets

    a_table, a_stamps = _data(rng, n=10)
    b_table, b_stamps = _data(rng, n=6)
    a = open_dataset(write_dataset(tmp_path / "a", a_table, a_stamps))
    b = open_dataset(write_dataset(tmp_path / "b", b_table.assign(extra=1.0), b_stamps))
    both = open_dataset(concat_datasets([(a, "label == 1"), (b, None)], tmp_path / "ab"))
    keep = a_table.label.to_numpy() == 1
    assert len(both) == keep.sum() + 6
    np.testing.assert_array_equal(
        both.stamps().data, np.concatenate([a_stamps.data[keep], b_stamps.data])
    )
    assert both.table()["extra"].isna().sum() == keep.sum()
    assert len(both.manifest["provenance"]["concatenated"]) == 2
    c_table, c_stamps = _data(rng, n=3, size=9)
    c = open_dataset(write_dataset(tmp_path / "c", c_table, c_stamps))
    with pytest.raises(InputError, match="different stamp sizes"):
        concat_datasets([(a, None), (c, None)], tmp_path / "ac")
