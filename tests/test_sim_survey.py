"""The simulated survey end to end: dataset contents, labels, determinism, images, progress."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from realbogus.errors import ConfigError, InputError
from realbogus.io.dataset import open_dataset
from realbogus.sim import TABLE_COLUMNS, load_config, plan_fields, simulate_survey

#: A tiny survey (256 px images) that still has every ingredient.
TINY = {
    "image_size": 256,
    "epochs_per_field": 2,
    "scene": {"n_stars": 45, "n_galaxies": 20, "n_bright_stars": 0.5},
    "injection": {"n_fakes": 10, "n_asteroids": 1.0, "n_transients": 1.0},
    "artifacts": {
        "n_cosmic_rays": 3.0,
        "n_hot_pixels": 2.0,
        "n_noise_patches": 0.5,
        "p_nan_rowcol": 0.8,
    },
    "subtraction": {"n_candidates": 30},
}


@pytest.fixture(scope="module")
def tiny_survey(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "tiny"
    calls: list[tuple[int, int]] = []
    simulate_survey(
        TINY,
        n_visits=3,
        seed=5,
        out=out,
        workers=1,
        save_images=True,
        progress=lambda d, t: calls.append((d, t)),
    )
    assert calls[-1] == (3, 3) and [c[0] for c in calls] == [1, 2, 3]
    return out


def test_dataset_has_the_contract_columns(tiny_survey: Path) -> None:
    """The dataset opens, has the design.md columns plus truth columns, and stamps of 51 px."""
    ds = open_dataset(tiny_survey)
    table = ds.table()
    assert list(table.columns[: len(TABLE_COLUMNS)]) == list(TABLE_COLUMNS)
    assert ds.stamp_size == 51 and len(ds) == len(table) > 0
    assert table["diaSourceId"].is_unique
    assert set(table["label"].unique()) <= {0, 1}
    assert set(table["labelSource"].unique()) <= {"truth", "injection"}
    assert set(table["origin"].unique()) <= {"ss", "gaia", "galaxy", "tns", "injection", "none"}
    assert sorted(table["field"].unique()) == [0, 1]  # 3 visits, 2 per field
    real = table[table["label"] == 1]
    assert (
        real["truthFlux"].notna().all() and table.loc[table["label"] == 0, "truthFlux"].isna().all()
    )
    # Real detections match their truth source's sign.
    assert ((real["truthFlux"] < 0) == real["isNegative"]).all()
    # Both classes in both polarities, several artifact kinds, some stamps with NaN rows/columns.
    assert set(zip(table["label"], table["isNegative"], strict=True)) == {
        (0, False),
        (0, True),
        (1, False),
        (1, True),
    }
    assert table.loc[table["label"] == 0, "truthKind"].nunique() >= 6
    assert table["hasNanRowCol"].any() and not table["hasNanRowCol"].all()
    # Stamps: finite, channel 0 is the difference image around the detection.
    stamps = ds.stamps()
    assert np.isfinite(stamps.data).all() and stamps.data.dtype == np.float32
    for name in ("truth.parquet", "visits.parquet", "config.yaml", "summary.json", "preview.png"):
        assert (tiny_survey / name).is_file(), name


def test_real_fakes_are_measured_right(tiny_survey: Path) -> None:
    """Detected fakes carry their injected flux: psfFlux / truthFlux is near 1 for bright ones."""
    table = open_dataset(tiny_survey).table()
    bright = table[(table["truthKind"] == "injection") & (table["truthSnr"] > 15)]
    assert len(bright) >= 3
    ratio = bright["psfFlux"] / bright["truthFlux"]
    assert abs(np.median(ratio) - 1) < 0.08


def test_saved_images_and_catalog(tiny_survey: Path) -> None:
    """--save-images writes FITS images with a WCS and a catalog whose ra/dec match the WCS."""
    from astropy.io import fits
    from astropy.wcs import WCS

    folders = sorted((tiny_survey / "images").iterdir())
    assert len(folders) == 3
    cat = pd.read_parquet(folders[0] / "catalog.parquet")
    with fits.open(folders[0] / "difference.fits") as hdus:
        data = hdus[0].data
        wcs = WCS(hdus[0].header)
    assert data.shape == (256, 256)
    ra, dec = wcs.all_pix2world(cat["x"], cat["y"], 0)
    assert np.allclose(ra, cat["ra"], atol=1e-7) and np.allclose(dec, cat["dec"], atol=1e-7)
    for name in ("science", "template", "variance"):
        assert (folders[0] / f"{name}.fits").is_file()


def test_same_seed_same_data_whatever_the_workers(tmp_path: Path, tiny_survey: Path) -> None:
    """A seed fixes the dataset (2 processes give the same bytes as 1); another seed differs."""
    again = simulate_survey(
        TINY, n_visits=3, seed=5, out=tmp_path / "again", workers=2, preview=False
    )
    a, b = open_dataset(tiny_survey), open_dataset(again)
    pd.testing.assert_frame_equal(a.table(), b.table())
    assert np.array_equal(a.stamps().data, b.stamps().data)
    other = simulate_survey(
        TINY, n_visits=1, seed=6, out=tmp_path / "other", workers=1, preview=False
    )
    first = a.table()
    assert (
        not open_dataset(other).table()[["x", "y"]].equals(first[first["visit"] == 0][["x", "y"]])
    )


def test_arguments_are_validated(tmp_path: Path, tiny_survey: Path) -> None:
    """Bad visit counts, seeds, workers and an existing output raise clear errors."""
    with pytest.raises(ConfigError, match="n_visits"):
        simulate_survey(TINY, n_visits=0, seed=1, out=tmp_path / "x")
    with pytest.raises(ConfigError, match="seed"):
        simulate_survey(TINY, n_visits=1, seed=-1, out=tmp_path / "x")
    with pytest.raises(ConfigError, match="workers"):
        simulate_survey(TINY, n_visits=1, seed=1, out=tmp_path / "x", workers=0)
    with pytest.raises(InputError, match="already exists"):
        simulate_survey(TINY, n_visits=1, seed=1, out=tiny_survey)
    assert not (tmp_path / "x").exists()


def test_plan_fields_groups_visits() -> None:
    """Visits fill fields of epochs_per_field; the last field may be shorter."""
    assert plan_fields(7, 3) == [(0, 3, 0), (1, 3, 3), (2, 1, 6)]
    assert sum(n for _, n, _ in plan_fields(20, load_config(None).epochs_per_field)) == 20


def test_sparse_field_falls_back_to_zogy(tmp_path: Path) -> None:
    """A field without kernel candidates (no stars) is still subtracted, by ZOGY, and says so."""
    sparse = {**TINY, "scene": {"n_stars": 0, "n_galaxies": 10, "n_bright_stars": 0.0}}
    out = simulate_survey(
        sparse, n_visits=1, seed=3, out=tmp_path / "sparse", workers=1, preview=False
    )
    table = open_dataset(out).table()
    assert len(table) > 0 and set(table["subtraction"]) == {"zogy"}
    assert pd.read_parquet(out / "visits.parquet")["subtraction"].tolist() == ["zogy"]
