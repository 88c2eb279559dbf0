"""FITS image and catalog readers, and stamps from files."""

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from realbogus.errors import InputError
from realbogus.io.images import read_catalog, read_image, stamps_from_files
from realbogus.io.tables import read_table, write_table
from realbogus.stamps import cut_stamps


def _wcs(shape):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.1, 2.2]
    w.wcs.crpix = [shape[1] / 2, shape[0] / 2]
    w.wcs.cdelt = [-0.2 / 3600, 0.2 / 3600]
    return w


def test_single_hdu_big_endian_and_mef_readers(rng, tmp_path):
    """Single-HDU and Rubin-style IMAGE/MASK/VARIANCE files give native float32 planes."""
    data = rng.normal(size=(40, 50)).astype(">f8")
    fits.PrimaryHDU(data, header=_wcs(data.shape).to_header()).writeto(tmp_path / "single.fits")
    image = read_image(tmp_path / "single.fits")
    assert image.data.dtype == np.float32 and image.data.dtype.isnative
    np.testing.assert_array_equal(image.data, data.astype(np.float32))
    assert image.wcs is not None

    hdus = fits.HDUList(
        [
            fits.PrimaryHDU(header=_wcs(data.shape).to_header()),
            fits.ImageHDU(data.astype(">f4"), name="IMAGE"),
            fits.ImageHDU(np.ones(data.shape, ">i4"), name="MASK"),
            fits.ImageHDU(np.full(data.shape, 2.0, ">f4"), name="VARIANCE"),
        ]
    )
    hdus.writeto(tmp_path / "exposure.fits")
    exposure = read_image(tmp_path / "exposure.fits")
    np.testing.assert_array_equal(exposure.data, data.astype(np.float32))
    assert exposure.variance.dtype == np.float32 and (exposure.variance == 2).all()
    assert exposure.mask.dtype.isnative and (exposure.mask == 1).all()
    assert exposure.wcs is not None  # taken from the primary header


def test_corrupt_truncated_and_empty_fits(rng, tmp_path):
    """Truncated, non-FITS and image-less files raise InputError naming the file."""
    fits.PrimaryHDU(rng.normal(size=(64, 64)).astype(np.float32)).writeto(tmp_path / "ok.fits")
    raw = (tmp_path / "ok.fits").read_bytes()
    (tmp_path / "cut.fits").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "text.fits").write_text("not a fits file at all")
    fits.PrimaryHDU().writeto(tmp_path / "empty.fits")
    for name, message in (
        ("cut.fits", "cut.fits"),
        ("text.fits", "text.fits"),
        ("empty.fits", "no 2-D image"),
    ):
        with pytest.raises(InputError, match=message):
            read_image(tmp_path / name)


def test_catalogs_from_parquet_csv_fits_and_radec(rng, tmp_path):
    """x, y tables in three formats read alike; ra, dec go through the science WCS."""
    table = pd.DataFrame({"diaSourceId": [7, 8, 9], "x": [10.0, 20.5, 30.0], "y": [5.0, 6.0, 7.5]})
    for ext in (".parquet", ".csv", ".fits"):
        write_table(table, tmp_path / f"cat{ext}")
        pd.testing.assert_frame_equal(
            read_catalog(tmp_path / f"cat{ext}"), table, check_dtype=False
        )
    wcs = _wcs((40, 50))
    ra, dec = wcs.all_pix2world(table.x, table.y, 0)
    write_table(pd.DataFrame({"ra": ra, "dec": dec}), tmp_path / "radec.csv")
    got = read_catalog(tmp_path / "radec.csv", wcs=wcs)
    np.testing.assert_allclose(got[["x", "y"]], table[["x", "y"]], atol=1e-6)
    assert list(got["diaSourceId"]) == [0, 1, 2]
    with pytest.raises(InputError, match="no celestial WCS"):
        read_catalog(tmp_path / "radec.csv")
    write_table(pd.DataFrame({"a": [1]}), tmp_path / "bad.csv")
    with pytest.raises(InputError, match=r"needs columns x, y or ra, dec; has \['a'\]"):
        read_catalog(tmp_path / "bad.csv")
    with pytest.raises(InputError, match="unknown table format"):
        read_table(tmp_path / "cat.txt")


def test_stamps_from_files_equals_cut_stamps(rng, tmp_path):
    """Files -> stamps equals cutting the arrays directly; shape mismatch names both shapes."""
    planes = {
        n: rng.normal(size=(60, 70)).astype(np.float32)
        for n in ("science", "template", "difference")
    }
    for name, plane in planes.items():
        fits.PrimaryHDU(plane).writeto(tmp_path / f"{name}.fits")
    write_table(
        pd.DataFrame({"x": [3.0, 35.0, 69.0], "y": [30.0, 30.0, -4.0]}), tmp_path / "cat.parquet"
    )
    files = {n: tmp_path / f"{n}.fits" for n in planes}
    table, stamps = stamps_from_files(**files, catalog=tmp_path / "cat.parquet", size=21)
    want = cut_stamps(
        planes["difference"], planes["science"], planes["template"], table.x, table.y, size=21
    )
    np.testing.assert_array_equal(stamps.data, want.data)
    np.testing.assert_array_equal(stamps.edge, [True, False, True])
    fits.PrimaryHDU(np.zeros((10, 10), np.float32)).writeto(tmp_path / "small.fits")
    with pytest.raises(
        InputError, match=r"--template .*\(10, 10\) differs from the --science image's \(60, 70\)"
    ):
        stamps_from_files(
            **{**files, "template": tmp_path / "small.fits"},
            catalog=tmp_path / "cat.parquet",
            size=21,
        )


def test_write_table_is_atomic(tmp_path):
    """A failed write leaves the previous file intact and no temporary file."""
    write_table(pd.DataFrame({"a": [1, 2]}), tmp_path / "t.parquet")
    with pytest.raises(ValueError):  # pyarrow.ArrowInvalid
        write_table(pd.DataFrame({"a": [object()]}), tmp_path / "t.parquet")
    assert list(read_table(tmp_path / "t.parquet")["a"]) == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet"]
    fits_table = Table.read(write_table(pd.DataFrame({"a": [1.5]}), tmp_path / "t.fits"))
    assert list(fits_table["a"]) == [1.5]
