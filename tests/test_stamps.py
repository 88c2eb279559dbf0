"""Stamp cutting, checks and crop/pad, against a naive per-source reference."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realbogus.errors import InputError, StampShapeError
from realbogus.stamps import (
    CHANNELS,
    check_stamps,
    cut_stamps,
    fit_stamp,
    resize_stamps,
    robust_noise,
)


def naive_cut(images, x, y, size):
    """Reference: one source at a time, one pixel at a time."""
    n = len(x)
    out = np.zeros((n, 3, size, size), np.float32)
    valid = np.zeros(n)
    edge = np.zeros(n, bool)
    h, w = images[0].shape
    for i in range(n):
        if not (np.isfinite(x[i]) and np.isfinite(y[i])):
            edge[i] = True
            continue
        cx, cy = int(np.floor(x[i] + 0.5)), int(np.floor(y[i] + 0.5))
        for c, im in enumerate(images):
            for r in range(size):
                for q in range(size):
                    yy, xx = cy - size // 2 + r, cx - size // 2 + q
                    if 0 <= yy < h and 0 <= xx < w:
                        v = float(im[yy, xx])
                        if np.isfinite(v):
                            out[i, c, r, q] = v
                            valid[i] += 1
                    else:
                        edge[i] = True
    return out, valid / (3 * size * size), edge


def test_channel_order_is_difference_science_template():
    """The one channel convention of the project."""
    assert CHANNELS == ("difference", "science", "template")


def test_cut_centres_on_rounded_position(rng):
    """The centroid pixel lands at (S//2, S//2), for odd and even S, rounding half up."""
    image = np.arange(100 * 120, dtype=np.float32).reshape(100, 120)
    for size in (51, 30):
        s = cut_stamps(image, image + 1, image + 2, [60.5], [40.49], size=size)
        assert s.data[0, 0, size // 2, size // 2] == image[40, 61]
        assert s.data[0, 1, size // 2, size // 2] == image[40, 61] + 1
        assert s.data[0, 2, size // 2, size // 2] == image[40, 61] + 2
        assert not s.edge[0] and s.valid_fraction[0] == 1.0


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(8, 60),
    w=st.integers(8, 60),
    size=st.sampled_from([5, 7, 8, 11]),
    n=st.integers(0, 30),
    nan_rows=st.lists(st.integers(0, 59), max_size=3),
    nan_cols=st.lists(st.integers(0, 59), max_size=3),
    big_endian=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_cut_equals_naive_reference(h, w, size, n, nan_rows, nan_cols, big_endian, seed):
    """Vectorised cutting = the per-source loop, with edges, NaN rows/columns and byte order."""
    rng = np.random.default_rng(seed)
    images = [rng.normal(size=(h, w)).astype(np.float32) for _ in range(3)]
    images[1][[r for r in nan_rows if r < h], :] = np.nan
    images[0][:, [c for c in nan_cols if c < w]] = np.inf
    if big_endian:
        images = [im.astype(">f4") for im in images]
    x = rng.uniform(-size, w + size, n)
    y = rng.uniform(-size, h + size, n)
    if n:
        x[0] = np.nan
    got = cut_stamps(*images, x, y, size=size)
    want, valid, edge = naive_cut(images, x, y, size)
    assert got.data.dtype == np.float32 and got.data.shape == (n, 3, size, size)
    np.testing.assert_array_equal(got.data, want)
    np.testing.assert_allclose(got.valid_fraction, valid, rtol=1e-6)
    np.testing.assert_array_equal(got.edge, edge)


def test_cut_many_interior_stamps_matches_reference_across_chunks(rng):
    """More stamps than one gather chunk, in random order: results stay in catalog order."""
    images = [rng.normal(size=(300, 280)).astype(np.float64) for _ in range(3)]
    x, y = rng.uniform(20, 260, 1500), rng.uniform(20, 280, 1500)
    got = cut_stamps(*images, x, y, size=11)
    want, valid, edge = naive_cut(images, x, y, 11)
    np.testing.assert_array_equal(got.data, want)
    assert got.valid_fraction.min() == 1.0


def test_off_image_rows_are_kept_and_flagged(rng):
    """Rows outside the image are never dropped: zero stamp, edge flag, valid_fraction 0."""
    image = rng.normal(size=(50, 50)).astype(np.float32)
    s = cut_stamps(image, image, image, [25, 500, -100], [25, 25, 25], size=11)
    assert len(s) == 3
    np.testing.assert_array_equal(s.edge, [False, True, True])
    np.testing.assert_array_equal(s.valid_fraction, [1, 0, 0])
    assert not s.data[1:].any()


def test_mismatched_images_name_the_shapes(rng):
    """Images of different shapes give an error naming each shape."""
    with pytest.raises(InputError, match=r"science \(40, 40\)"):
        cut_stamps(np.zeros((50, 50)), np.zeros((40, 40)), np.zeros((50, 50)), [1], [1])
    with pytest.raises(InputError, match="2-D"):
        cut_stamps(np.zeros((2, 50, 50)), np.zeros((50, 50)), np.zeros((50, 50)), [1], [1])


def test_check_stamps_names_expected_and_received():
    """check_stamps guards the (N, 3, S, S) float32 finite contract."""
    good = np.zeros((2, 3, 51, 51), np.float32)
    assert check_stamps(good, size=51) is good
    with pytest.raises(StampShapeError, match=r"\(N, 3, 51, 51\).*got \(2, 3, 63, 63\)"):
        check_stamps(np.zeros((2, 3, 63, 63), np.float32), size=51)
    with pytest.raises(StampShapeError, match="float32; got float64"):
        check_stamps(np.zeros((2, 3, 51, 51)))
    bad = good.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(StampShapeError, match="non-finite"):
        check_stamps(bad)


def test_fit_stamp_pads_30_to_51_keeping_centre(rng):
    """A 30x30 Rubin cutout padded to 51: centre pixel (15, 15) -> (25, 25), valid 900 pixels."""
    cutout = rng.normal(size=(30, 30)).astype(np.float32)
    stamp, n_valid = fit_stamp(cutout, 51)
    assert stamp[25, 25] == cutout[15, 15]
    np.testing.assert_array_equal(stamp[10:40, 10:40], cutout)
    assert n_valid == 900 and stamp.sum() == pytest.approx(cutout.sum(), rel=1e-5)


def test_fit_stamp_crops_63_and_uses_given_centre_for_edge_cutouts(rng):
    """A 63x63 ZTF cutout crops around (31, 31); a truncated one uses the true source pixel."""
    full = rng.normal(size=(63, 63)).astype(np.float32)
    stamp, n_valid = fit_stamp(full, 51)
    np.testing.assert_array_equal(stamp, full[6:57, 6:57])
    assert n_valid == 51 * 51
    truncated = full[:, 20:]  # the left 20 columns fell off the CCD; source still at (31, 31)
    stamp2, n2 = fit_stamp(truncated, 51, centre=(31, 11))
    np.testing.assert_array_equal(stamp2[:, 14:], full[6:57, 20:57])
    assert not stamp2[:, :14].any() and n2 == 51 * 37


def test_resize_stamps_counts_valid_pixels_and_nans(rng):
    """Batch crop/pad: NaNs become 0 and leave valid_fraction; padding sets edge."""
    cutouts = rng.normal(size=(4, 3, 30, 30)).astype(np.float32)
    cutouts[1, 1, 5, :] = np.nan
    s = resize_stamps(cutouts, 51)
    assert s.data.shape == (4, 3, 51, 51) and np.isfinite(s.data).all()
    np.testing.assert_allclose(
        s.valid_fraction, [2700 / 7803, 2670 / 7803, 2700 / 7803, 2700 / 7803], rtol=1e-6
    )
    assert s.edge.all()
    as_list = resize_stamps([list(c) for c in cutouts], 51)
    np.testing.assert_array_equal(as_list.data, s.data)
    np.testing.assert_array_equal(as_list.valid_fraction, s.valid_fraction)
    np.testing.assert_array_equal(as_list.edge, s.edge)
    crop = resize_stamps(rng.normal(size=(2, 3, 63, 63)).astype(">f8"), 51)
    assert not crop.edge.any() and (crop.valid_fraction == 1).all()


def test_robust_noise_reads_sigma_and_ignores_zeros(rng):
    """1.4826 x median |p| of Gaussian planes is their sigma; zero (invalid) pixels are not read."""
    planes = rng.normal(0, 3.0, (40, 63, 63)).astype(np.float32)
    planes[:20, :30] = 0  # half of the first 20 planes flagged
    noise, valid = robust_noise(planes, 2)
    assert np.median(noise) == pytest.approx(3.0, rel=0.03)
    np.testing.assert_allclose(noise, 3.0, rtol=0.2)
    assert (valid[:20] == 32 * 17).all() and (valid[20:] == 32 * 32).all()
    blank, none = robust_noise(np.zeros((2, 10, 10), np.float32))
    assert (blank == 0).all() and (none == 0).all()
