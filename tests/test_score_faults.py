"""Input faults at the scoring entry points (issue 19, docs/design.md "Input faults"): each input
detection ends as one row, scored or NaN with a `status` and `reason`; whole-input faults are
errors before any work."""

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from typer.testing import CliRunner

from realbogus.cli import app
from realbogus.errors import InputError
from realbogus.inference.scorer import MIN_VALID_FRACTION, SCORE_COLUMNS, Scorer
from realbogus.io.tables import check_table_path, read_table, write_table
from realbogus.model.package import init_package, load_package
from realbogus.stamps import Stamps

runner = CliRunner()


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("pkg") / "pkg"
    init_package(path, seed=3)
    return path


def _images(tmp_path, rng, *, shape=(80, 90), nan=None):
    planes = {
        n: rng.normal(size=shape).astype(np.float32) for n in ("science", "template", "difference")
    }
    if nan is not None:
        planes[nan][:] = np.nan
    for name, plane in planes.items():
        fits.PrimaryHDU(plane).writeto(tmp_path / f"{name}.fits", overwrite=True)
    return planes


def _score_args(tmp_path, package_dir, out="scores.parquet", catalog="cat.csv"):
    return [
        "score",
        "--model",
        str(package_dir),
        "--out",
        str(tmp_path / out),
        *[f"--{n}={tmp_path / f'{n}.fits'}" for n in ("science", "template", "difference")],
        "--catalog",
        str(tmp_path / catalog),
    ]


def test_all_nan_difference_image_is_an_error_before_scoring(rng, tmp_path, package_dir):
    """Why #1: an all-NaN --difference image scored 105 detections with exit 0 on main."""
    _images(tmp_path, rng, nan="difference")
    write_table(pd.DataFrame({"x": [40.0, 50.0], "y": [40.0, 30.0]}), tmp_path / "cat.csv")
    result = runner.invoke(app, _score_args(tmp_path, package_dir))
    assert result.exit_code == 1, result.output
    assert "--difference" in result.output and "no finite pixels" in result.output
    assert not (tmp_path / "scores.parquet").exists()


def test_off_image_and_nan_positions_get_nan_and_a_reason(rng, tmp_path, package_dir):
    """Why #1: rows at x = NaN, x = 5000, y = -300 got reliability 0.06 with exit 0 on main."""
    _images(tmp_path, rng)
    catalog = pd.DataFrame(
        {
            "diaSourceId": [1, 2, 3, 4, 5],
            "x": [45.0, np.nan, 5000.0, 45.0, 45.0],
            "y": [40.0, 40.0, 40.0, -300.0, 40.0],
        }
    )
    write_table(catalog, tmp_path / "cat.csv")
    result = runner.invoke(app, _score_args(tmp_path, package_dir))
    assert result.exit_code == 1, result.output  # written, but exit status says rows were refused
    scores = read_table(tmp_path / "scores.parquet")
    assert list(scores["diaSourceId"]) == [1, 2, 3, 4, 5]
    assert np.isfinite(scores["reliability"].to_numpy()).tolist() == [
        True,
        False,
        False,
        False,
        True,
    ]
    assert list(scores["status"]) == ["scored", "bad-position", "off-image", "off-image", "scored"]
    assert scores["reason"][1] == "position x, y is not finite"
    assert "off the image" in scores["reason"][2]
    assert not scores["passes_cutoff"][1:4].any()
    assert "3 not scored" in result.output


def test_stamps_below_the_valid_fraction_floor_are_not_scored(rng, package_dir):
    """Stamps under MIN_VALID_FRACTION (or with a channel without valid pixels) get NaN."""
    data = rng.normal(size=(4, 3, 51, 51)).astype(np.float32)
    valid = np.array([1.0, MIN_VALID_FRACTION, MIN_VALID_FRACTION - 0.01, 0.0], np.float32)
    table = Scorer(load_package(package_dir)).score_stamps(
        Stamps(data, valid, np.array([False, True, True, True])), np.arange(4)
    )
    assert tuple(table.columns) == SCORE_COLUMNS
    assert np.isfinite(table["reliability"]).tolist() == [True, True, False, False]
    assert list(table["status"]) == ["scored", "scored", "low-valid-fraction", "no-valid-pixels"]
    assert f"{MIN_VALID_FRACTION:g}" in table["reason"][2]


def test_a_blank_channel_in_a_stamp_is_not_scored(rng, package_dir):
    """A NaN band covering one channel's whole box: 2/3 valid overall, yet nothing to difference."""
    planes = {n: rng.normal(size=(80, 200)).astype(np.float32) for n in ("diff", "sci", "tmpl")}
    planes["diff"][:, 100:] = np.nan
    from realbogus.stamps import cut_stamps

    stamps = cut_stamps(planes["diff"], planes["sci"], planes["tmpl"], [40.0, 160.0], [40.0, 40.0])
    assert stamps.channel_valid is not None
    np.testing.assert_allclose(stamps.channel_valid[1], [0.0, 1.0, 1.0])
    table = Scorer(load_package(package_dir)).score_stamps(stamps, np.arange(2))
    assert np.isfinite(table["reliability"]).tolist() == [True, False]
    assert table["status"][1] == "no-valid-pixels" and "difference" in table["reason"][1]


def test_out_is_checked_before_any_work(rng, tmp_path, package_dir):
    """Why #8: `--out x.txt` was refused only after all the scoring."""
    write_table(pd.DataFrame({"x": [40.0], "y": [40.0]}), tmp_path / "cat.csv")
    # No images exist: an --out error first means --out was checked before reading anything.
    bad = runner.invoke(app, _score_args(tmp_path, package_dir, out="x.txt"))
    assert bad.exit_code == 1 and "--out" in bad.output and ".txt" in bad.output, bad.output
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="--out.*not a folder"):
        check_table_path(tmp_path / "file" / "sub" / "s.csv", flag="--out")
    check_table_path(tmp_path / "new" / "s.csv", flag="--out")  # a folder still to make is fine


def test_a_dataset_of_another_survey_is_refused_before_work_unless_forced(rng, tmp_path):
    """A model for another survey is a whole-input fault: an error before scoring, or --force."""
    from realbogus.io.dataset import write_dataset

    stamps = Stamps(
        rng.normal(size=(5, 3, 63, 63)).astype(np.float32),
        np.ones(5, np.float32),
        np.zeros(5, bool),
    )
    table = pd.DataFrame({"diaSourceId": np.arange(5)})
    write_dataset(
        tmp_path / "ds", table, stamps, provenance={"survey": "rubin-small", "pixel_units": "nJy"}
    )
    args = ["score", "--model", "ztf-v0.2", "--data", str(tmp_path / "ds"), "--out"]
    refused = runner.invoke(app, [*args, str(tmp_path / "a.csv")])
    assert refused.exit_code == 1 and "survey ztf, data rubin" in refused.output
    assert "--force" in refused.output and not (tmp_path / "a.csv").exists()
    forced = runner.invoke(app, [*args, str(tmp_path / "b.csv"), "--force"])
    assert forced.exit_code == 0, forced.output
    scores = pd.read_csv(tmp_path / "b.csv")
    assert scores.reliability.notna().all() and scores.reason.str.startswith("forced").all()


def test_score_stamps_of_a_bare_array_says_what_to_do(rng, package_dir):
    """Why #8: `score_stamps(ndarray)` said "got memoryview"."""
    from realbogus.errors import StampShapeError

    with pytest.raises(StampShapeError, match="Scorer.predict"):
        Scorer(load_package(package_dir)).score_stamps(
            rng.normal(size=(2, 3, 51, 51)).astype(np.float32), np.arange(2)
        )
