"""The command line: help, models, package, score from FITS and from a dataset."""

import numpy as np
import pandas as pd
from astropy.io import fits
from typer.testing import CliRunner

from realbogus.cli import app
from realbogus.inference.scorer import Scorer
from realbogus.io.dataset import write_dataset
from realbogus.io.tables import read_table, write_table
from realbogus.model.package import init_package, load_package
from realbogus.stamps import Stamps, cut_stamps

runner = CliRunner()


def test_help_lists_commands():
    """`realbogus --help` explains itself and lists the commands."""
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("score", "models", "package", "train", "evaluate", "crowd", "demo"):
        assert command in result.output


def test_package_init_models_and_rubin_round_trip(tmp_path):
    """init -> models lists it -> export-rubin -> import-rubin gives identical weights."""
    assert (
        runner.invoke(app, ["package", "init", str(tmp_path / "p"), "--seed", "2"]).exit_code == 0
    )
    listed = runner.invoke(app, ["models", str(tmp_path / "p")])
    assert listed.exit_code == 0 and "untrained" in listed.output and "51" in listed.output
    assert (
        runner.invoke(
            app, ["package", "export-rubin", str(tmp_path / "p"), str(tmp_path / "r")]
        ).exit_code
        == 0
    )
    assert (
        runner.invoke(
            app, ["package", "import-rubin", str(tmp_path / "r"), str(tmp_path / "q")]
        ).exit_code
        == 0
    )
    a, b = (
        load_package(tmp_path / "p").model.state_dict(),
        load_package(tmp_path / "q").model.state_dict(),
    )
    assert all((a[k] == b[k]).all() for k in a)


def test_score_from_fits_and_catalog(rng, tmp_path):
    """FITS + catalog -> score table equal to scoring the cut stamps in the library."""
    planes = {
        n: rng.normal(size=(80, 90)).astype(">f4") for n in ("science", "template", "difference")
    }
    for name, plane in planes.items():
        fits.PrimaryHDU(plane).writeto(tmp_path / f"{name}.fits")
    catalog = pd.DataFrame(
        {"diaSourceId": [11, 12, 13], "x": [45.0, 2.0, 60.2], "y": [40.0, 40.0, 70.0]}
    )
    write_table(catalog, tmp_path / "cat.csv")
    init_package(tmp_path / "pkg")
    args = ["score", "--model", str(tmp_path / "pkg"), "--out", str(tmp_path / "scores.parquet")]
    args += [f"--{n}={tmp_path / f'{n}.fits'}" for n in planes] + [
        "--catalog",
        str(tmp_path / "cat.csv"),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    scores = read_table(tmp_path / "scores.parquet")
    stamps = cut_stamps(
        planes["difference"], planes["science"], planes["template"], catalog.x, catalog.y
    )
    want = Scorer(load_package(tmp_path / "pkg")).predict(stamps.data)
    np.testing.assert_array_equal(scores["reliability"], want)
    assert list(scores["diaSourceId"]) == [11, 12, 13] and list(scores["edge"]) == [
        False,
        True,
        True,
    ]


def test_score_dataset_to_csv_and_errors(rng, tmp_path):
    """--data writes every row; bad arguments and bad packages fail with no output left."""
    stamps = Stamps(
        rng.normal(size=(9, 3, 51, 51)).astype(np.float32),
        np.ones(9, np.float32),
        np.zeros(9, bool),
    )
    write_dataset(tmp_path / "ds", pd.DataFrame({"diaSourceId": np.arange(9)}), stamps)
    init_package(tmp_path / "pkg")
    ok = runner.invoke(
        app,
        [
            "score",
            "--model",
            str(tmp_path / "pkg"),
            "--data",
            str(tmp_path / "ds"),
            "--out",
            str(tmp_path / "s.csv"),
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert len(pd.read_csv(tmp_path / "s.csv")) == 9
    neither = runner.invoke(
        app, ["score", "--model", str(tmp_path / "pkg"), "--out", str(tmp_path / "x.csv")]
    )
    assert neither.exit_code == 2
    init_package(tmp_path / "pkg63", stamp_size=63)
    wrong = runner.invoke(
        app,
        [
            "score",
            "--model",
            str(tmp_path / "pkg63"),
            "--data",
            str(tmp_path / "ds"),
            "--out",
            str(tmp_path / "y.csv"),
        ],
    )
    assert wrong.exit_code == 1 and "63 px" in wrong.output
    missing = runner.invoke(
        app,
        [
            "score",
            "--model",
            str(tmp_path / "none"),
            "--data",
            str(tmp_path / "ds"),
            "--out",
            str(tmp_path / "z.csv"),
        ],
    )
    assert missing.exit_code == 1 and "no such package" in missing.output
    assert not any((tmp_path / n).exists() for n in ("x.csv", "y.csv", "z.csv"))


def test_demo_without_the_model_says_so(tmp_path):
    """A model that is not there is a clear error, not a pretend report."""
    result = runner.invoke(
        app, ["demo", "--model", "no-such-model", "--out", str(tmp_path / "d"), "--visits", "1"]
    )
    assert result.exit_code == 1 and "no-such-model" in result.output


def test_demo_with_the_built_in_model(tmp_path):
    """`realbogus demo` scores a fresh simulated survey with rubin-v0.1 and writes the report."""
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--out", str(out), "--visits", "2", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "scored with rubin-v0.1" in result.output and "report:" in result.output
    scores = pd.read_parquet(out / "scores.parquet")
    assert len(scores) > 0 and (scores["reliabilityVersion"] == "rubin-v0.1").all()
    assert "data:image/png;base64," in (out / "report.html").read_text()


def test_built_in_rubin_model_card():
    """The shipped rubin-v0.1 is listed, loads, and carries its independent-test metrics."""
    listed = runner.invoke(app, ["models"])
    assert listed.exit_code == 0 and "rubin-v0.1" in listed.output
    card = load_package("rubin-v0.1").card
    assert card.preprocessing == "asinh-noise" and card.stamp_size == 51 and card.parent is None
    overall = card.metrics["independent_test"]["overall"]
    assert overall["n"] >= 20_000 and 0.9 < overall["auc"] < 0.999
    assert card.training_data["simulation_seeds"] == {"train": 101, "test": 202, "cosmos_like": 303}


def test_built_in_crowd_versions_record_their_parent():
    """rubin-v0.2 and rubin-v0.3 are fine-tuned from rubin-v0.1 and carry independent-test metrics."""
    for version in ("rubin-v0.2", "rubin-v0.3"):
        card = load_package(version).card
        assert (
            card.parent == "rubin-v0.1"
            and card.preprocessing_scale == load_package("rubin-v0.1").card.preprocessing_scale
        )
        assert card.metrics["independent_test"]["overall"]["n"] >= 20_000


def test_built_in_rubin_v04_is_fine_tuned_on_real_and_simulated_stamps():
    """rubin-v0.4: rubin-v0.1 fine-tuned at lr 3e-5 on SAAO injections (ADU) + simulation (nJy)."""
    card = load_package("rubin-v0.4").card
    parent = load_package("rubin-v0.1").card
    assert card.parent == "rubin-v0.1" and card.preprocessing_scale == parent.preprocessing_scale
    assert card.pixel_units is None and card.stamp_size == 51
    assert card.hyperparameters["lr"] == 3e-5 and card.hyperparameters["seed"] == 3
    assert card.training_data["counts"]["label"] == {"bogus": 23749, "real": 13703}
    assert "rubin-v0.4" in runner.invoke(app, ["models"]).output


def test_built_in_ztf_model_card():
    """ztf-v0.1 takes 63-px stamps in nJy and carries its independent-test metrics."""
    card = load_package("ztf-v0.1").card
    assert card.stamp_size == 63 and card.pixel_units == "nJy" and card.parent is None
    assert 0.9 < card.metrics["independent_test"]["overall"]["auc"] < 0.999


def test_built_in_ztf_v02_is_trained_on_clouds_and_crosstalk():
    """ztf-v0.2: the ztf-v0.1 recipe on a simulation with cloudy visits and crosstalk ghosts."""
    card = load_package("ztf-v0.2").card
    v01 = load_package("ztf-v0.1").card
    assert card.stamp_size == 63 and card.pixel_units == "nJy" and card.parent is None
    same = ("epochs", "lr", "weight_decay", "lr_schedule", "mask_augment", "seed")
    assert {k: card.hyperparameters[k] for k in same} == {k: v01.hyperparameters[k] for k in same}
    assert card.training_data["dataset"].endswith("ztf-v0.2-train")
    assert 0.9 < card.metrics["independent_test"]["overall"]["auc"] < 0.999
