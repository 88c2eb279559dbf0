"""The on-disk dataset: round trip, manifest, atomicity, validation."""

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from realbogus.dataset import open_dataset, write_dataset
from realbogus.errors import InputError
from realbogus.stamps import Stamps


def _data(rng, n=12, size=11):
    table = pd.DataFrame(
        {
            "diaSourceId": np.arange(n, dtype=np.int64),
            "label": rng.integers(0, 2, n),
            "origin": rng.choice(["injection", "gaia", "ss"], n),
        }
    )
    stamps = Stamps(rng.normal(size=(n, 3, size, size)).astype(np.float32), rng.uniform(size=n).astype(np.float32), rng.uniform(size=n) < 0.5)
    return table, stamps


def test_round_trip_and_manifest(rng, tmp_path):
    """Stamps and table come back exactly; the manifest counts labels and origins."""
    table, stamps = _data(rng)
    path = write_dataset(tmp_path / "ds", table, stamps, provenance={"seed": np.int64(4)}, rows_per_part=5)
    ds = open_dataset(path)
    assert len(ds) == 12 and ds.stamp_size == 11 and len(ds.parts) == 3
    back = ds.stamps()
    np.testing.assert_array_equal(back.data, stamps.data)
    np.testing.assert_array_equal(back.valid_fraction, stamps.valid_fraction)
    np.testing.assert_array_equal(back.edge, stamps.edge)
    pd.testing.assert_frame_equal(ds.table(), table.assign(valid_fraction=stamps.valid_fraction, edge=stamps.edge))
    m = ds.manifest
    assert m["counts"]["label"] == {"real": int(table.label.sum()), "bogus": int(12 - table.label.sum())}
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
        write_dataset(tmp_path / "other", table, Stamps(stamps.data[:3], stamps.valid_fraction[:3], stamps.edge[:3]))
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
