"""The fast cutout decoder equals astropy on every real cutout and on generated FITS files."""

from __future__ import annotations

import gzip
import io
import warnings

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import given, settings
from hypothesis import strategies as st

from realbogus.alerts import _fits
from realbogus.alerts._avro import decode_confluent, read_container
from realbogus.alerts._fits import decode_fits, decode_fits_hdus
from realbogus.errors import InputError

ZTF_CUTOUTS = ("cutoutScience", "cutoutTemplate", "cutoutDifference")


def _astropy_hdus(buf: bytes) -> list[np.ndarray]:
    if buf[:2] == b"\x1f\x8b":
        buf = gzip.decompress(buf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ZTF's SIMPLE card draws a VerifyWarning
        with fits.open(io.BytesIO(buf)) as hdus:
            return [np.array(h.data) for h in hdus if h.data is not None]


def _assert_same(ours: np.ndarray, theirs: np.ndarray) -> None:
    assert ours.shape == theirs.shape
    assert ours.dtype.newbyteorder("=") == theirs.dtype.newbyteorder("=")
    np.testing.assert_array_equal(ours, theirs)  # NaN equals NaN here


def _real_cutouts(shared_data):
    for path in sorted((shared_data / "ztf" / "alerts").glob("*.avro")):
        container = read_container(path.read_bytes(), where=str(path))
        for index, record in container.records():
            for name in ZTF_CUTOUTS:
                yield f"{path.name}[{index}] {name}", record[name]["stampData"]
    for path in sorted((shared_data / "rubin" / "alerts").glob("*.msg")):
        _, record = decode_confluent(path.read_bytes(), where=str(path))
        for name in ZTF_CUTOUTS:
            yield f"{path.name} {name}", record[name]


def test_equals_astropy_on_every_real_cutout(shared_data, monkeypatch):
    """Every HDU of every cutout of every real alert decodes to astropy's array, fast path only."""

    def no_fallback(buf, where, reason):
        raise AssertionError(f"{where}: fell back to astropy ({reason})")

    monkeypatch.setattr(_fits, "_astropy_hdus", no_fallback)
    n_cutouts = n_nan = n_edge = 0
    for where, raw in _real_cutouts(shared_data):
        ours = decode_fits_hdus(raw, where=where)
        theirs = _astropy_hdus(raw)
        assert len(ours) == len(theirs), where
        for (data, _), ref in zip(ours, theirs, strict=True):
            _assert_same(data, ref)
        n_cutouts += 1
        n_nan += bool(np.isnan(ours[0].data).any())
        n_edge += ours[0].data.shape != (63, 63) and ours[0].data.shape[0] != ours[0].data.shape[1]
    assert n_cutouts == 3 * (611 + 126)
    assert n_nan > 100  # NaN pixels were part of the comparison
    assert n_edge == 3 * 15  # and the 15 non-square ZTF edge stamps


def _fits_bytes(data: np.ndarray, **cards) -> bytes:
    hdu = fits.PrimaryHDU(data)
    for key, value in cards.items():
        hdu.header[key] = value
    stream = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hdu.writeto(stream)
    return stream.getvalue()


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.int64, np.uint8, np.float32, np.float64])
@pytest.mark.parametrize("scaling", [None, (2.5, -7.0), "uint"])
def test_equals_astropy_on_generated_types(rng, dtype, scaling):
    """BITPIX 8/16/32/64/-32/-64 with and without BSCALE/BZERO (incl. the unsigned convention)."""
    data = (
        (rng.normal(0, 1000, (7, 11))).astype(dtype)
        if dtype != np.uint8
        else rng.integers(0, 255, (7, 11)).astype(dtype)
    )
    stream = io.BytesIO()
    hdu = fits.PrimaryHDU(data, do_not_scale_image_data=True)
    if scaling == "uint" and np.dtype(dtype).kind == "i":
        hdu.header["BZERO"] = float(1 << (8 * np.dtype(dtype).itemsize - 1))
    elif isinstance(scaling, tuple):
        hdu.header["BSCALE"], hdu.header["BZERO"] = scaling
    hdu.writeto(stream)
    raw = stream.getvalue()
    _assert_same(decode_fits(raw).data, _astropy_hdus(raw)[0])
    _assert_same(decode_fits(gzip.compress(raw)).data, _astropy_hdus(raw)[0])


def test_falls_back_to_astropy_for_blank_and_cubes(rng):
    """BLANK keywords and 3-D data are left to astropy, whose results we return."""
    ints = rng.integers(-100, 100, (5, 6)).astype(np.int16)
    ints[0, 0] = -32768
    raw = _fits_bytes(ints, BLANK=-32768, BSCALE=0.5)
    assert np.isnan(decode_fits(raw).data[0, 0])
    _assert_same(decode_fits(raw).data, _astropy_hdus(raw)[0])
    with pytest.raises(InputError, match="not a FITS image.*2-D"):
        decode_fits(_fits_bytes(np.zeros((2, 3, 4), np.float32)), where="cube")


def test_header_and_extensions():
    """Header values are typed; Rubin-like image + variance + PSF extensions all decode."""
    primary = fits.PrimaryHDU(np.arange(12, dtype=np.float32).reshape(3, 4))
    primary.header["BUNIT"] = "nJy"
    primary.header["CRPIX1"] = 2.5
    hdus = fits.HDUList(
        [
            primary,
            fits.ImageHDU(np.ones((3, 4), np.float32), name="UNCERT"),
            fits.ImageHDU(np.ones((5, 5)), name="PSFIMAGE"),
        ]
    )
    stream = io.BytesIO()
    hdus.writeto(stream)
    out = decode_fits_hdus(stream.getvalue())
    assert [d.shape for d, _ in out] == [(3, 4), (3, 4), (5, 5)]
    assert (
        out[0].header["BUNIT"] == "nJy"
        and out[0].header["CRPIX1"] == 2.5
        and out[2].header["EXTNAME"] == "PSFIMAGE"
    )
    assert out[2].data.dtype == np.float64


@pytest.mark.parametrize(
    ("buf", "match"),
    [
        (b"", "shorter than one FITS block"),
        (b"\x1f\x8b\x08\x00garbage", "corrupt gzip"),
        (b"SIMPLE  = T" + b" " * 3000, "not a readable FITS image|not a FITS image"),
        (b"x" * 2880, "not a readable FITS image|not a FITS image"),
    ],
)
def test_bad_bytes_raise_input_error(buf, match):
    """Non-FITS, truncated and corrupt bytes raise InputError naming the cutout."""
    with pytest.raises(InputError, match=match):
        decode_fits(buf, where="alert.avro cutoutScience")


def test_truncated_data_is_an_error(rng):
    """A FITS file cut inside its data block is rejected, not zero-filled."""
    raw = _fits_bytes(rng.normal(size=(40, 40)).astype(np.float32))
    with pytest.raises(InputError):
        decode_fits(raw[: 2880 + 100])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=6000), st.integers(0, 5))
def test_fuzz_decoder_raises_only_input_error(data, mode):
    """Random bytes, and random damage to a valid file, give an image or InputError, never a crash."""
    if mode:
        base = _fits_bytes(np.arange(30, dtype=np.float32).reshape(5, 6), BZERO=1.0)
        if mode == 1:
            data = base[: len(data) % len(base)]
        else:
            pos = len(data) % len(base)
            data = base[:pos] + data[:80] + base[pos + 80 :]
        if mode == 5:
            data = gzip.compress(data)[: max(1, len(data) // 2)]
    try:
        image = decode_fits(data)
    except InputError:
        return
    assert image.data.ndim == 2
