"""Property test of `realbogus score` on FITS images and a catalog (issue 19): random catalogs
(NaN, infinite, off-image and duplicate positions, empty) on images with random NaN masks (whole
planes, rows, columns, blocks). Every run ends with one row per catalog row or a clear error,
never a traceback, and never a finite reliability for a stamp without valid pixels."""

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from realbogus.cli import app
from realbogus.io.tables import write_table
from realbogus.model.package import init_package

runner = CliRunner()
PLANES = ("science", "template", "difference")

coordinate = st.one_of(
    st.floats(-60, 150),  # on, near and beyond the edges of the images below
    st.sampled_from([np.nan, np.inf, -np.inf, -300.0, 5000.0, 1e300]),
)
mask = st.tuples(
    st.sampled_from(["none", "none", "plane", "rows", "cols", "block"]),
    st.integers(0, 200),  # where
    st.integers(1, 80),  # how wide
)


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory):
    return init_package(tmp_path_factory.mktemp("fuzz") / "pkg", seed=7)


def _masked(plane: np.ndarray, how: tuple[str, int, int]) -> np.ndarray:
    kind, where, width = how
    h, w = plane.shape
    if kind == "plane":
        plane[:] = np.nan
    elif kind == "rows":
        plane[where % h : where % h + width] = np.nan
    elif kind == "cols":
        plane[:, where % w : where % w + width] = np.nan
    elif kind == "block":
        plane[where % h : where % h + width, (3 * where) % w : (3 * where) % w + width] = np.nan
    return plane


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    shape=st.tuples(st.integers(30, 90), st.integers(30, 90)),
    masks=st.tuples(mask, mask, mask),
    xs=st.lists(coordinate, max_size=12),
    ys=st.lists(coordinate, max_size=12),
    duplicate=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_score_from_images_never_fails_silently(package_dir, shape, masks, xs, ys, duplicate, seed):
    n = min(len(xs), len(ys))
    x, y = np.array(xs[:n], float), np.array(ys[:n], float)
    if duplicate and n:
        x, y = np.r_[x, x[:1]], np.r_[y, y[:1]]
        n += 1
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        planes = {}
        for name, how in zip(PLANES, masks, strict=True):
            planes[name] = _masked(rng.normal(size=shape).astype(np.float32), how)
            fits.PrimaryHDU(planes[name]).writeto(tmp / f"{name}.fits")
        write_table(
            pd.DataFrame({"diaSourceId": np.arange(n) + 100, "x": x, "y": y}), tmp / "c.csv"
        )
        out = tmp / "s.parquet"
        args = [
            "score",
            "--model",
            str(package_dir),
            "--out",
            str(out),
            "--catalog",
            str(tmp / "c.csv"),
        ]
        result = runner.invoke(app, args + [f"--{p}={tmp / f'{p}.fits'}" for p in PLANES])

        # never a traceback: exit 0, or a typer exit with the reason printed
        assert result.exit_code in (0, 1), result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(
            result.exception
        )
        blank = [p for p in PLANES if not np.isfinite(planes[p]).any()]
        if blank:  # a whole-input fault: a clear error before any work
            assert result.exit_code == 1 and "error:" in result.output
            assert f"--{blank[0]}" in result.output and not out.exists()
            return
        assert out.exists(), result.output
        scores = pd.read_parquet(out)
        assert list(scores["diaSourceId"]) == list(range(100, 100 + n))  # one row each, in order
        finite = np.isfinite(scores["reliability"].to_numpy())
        assert (finite == (scores["status"] == "scored").to_numpy()).all()
        assert not finite[scores["valid_fraction"].to_numpy() == 0].any()
        assert not finite[~np.isfinite(x) | ~np.isfinite(y)].any()
        assert scores["reason"][~finite].str.len().gt(0).all()
        assert result.exit_code == (0 if finite.all() else 1), result.output
