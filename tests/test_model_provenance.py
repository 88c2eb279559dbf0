"""What decides a score travels with the model (issue 19): the card states its survey and pixel
units, a Rubin export/import round trip keeps the card (beside Rubin's files) or refuses, and an
imported model never reuses the original version string."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from realbogus.cli import app
from realbogus.errors import PackageError
from realbogus.inference.scorer import Scorer
from realbogus.model.card import ModelCard
from realbogus.model.package import load_package
from realbogus.model.rubin import REALBOGUS_CARD, export_rubin, import_rubin

runner = CliRunner()


def test_cards_state_their_survey():
    """Built-in cards written before `survey` existed say it through their name."""
    assert load_package("ztf-v0.2").card.model_survey == "ztf"
    assert load_package("rubin-v0.1").card.model_survey == "rubin"
    card = load_package("rubin-v0.1").card.model_copy(update={"survey": "ztf"})
    assert ModelCard.model_validate_json(card.model_dump_json()).model_survey == "ztf"


def test_rubin_round_trip_keeps_what_decides_a_score(tmp_path, rng):
    """Why #2: export-rubin ztf-v0.2 then import-rubin lost pixel_units and the cutoff and kept the
    version: scores moved by median 0.53 under the same reliabilityVersion."""
    original = load_package("ztf-v0.2")
    for target in (tmp_path / "rubin", tmp_path / "payload.zip"):
        export_rubin(original, target)
        back = load_package(import_rubin(target, tmp_path / f"back-{target.name}"))
        card, want = back.card, original.card
        assert card.pixel_units == want.pixel_units == "nJy"
        assert card.cutoff == want.cutoff and card.model_survey == "ztf"
        assert card.preprocessing == want.preprocessing
        assert card.preprocessing_scale == pytest.approx(want.preprocessing_scale)
        assert card.version == "ztf-v0.2-import" and card.parent == "ztf-v0.2"
        stamps = rng.normal(scale=30.0, size=(64, 3, 63, 63)).astype(np.float32)
        a = Scorer(original, backend="torch", device="cpu").predict(stamps)
        b = Scorer(back, backend="torch", device="cpu").predict(stamps)
        assert np.abs(a - b).max() <= 1e-6
    assert (tmp_path / "rubin" / REALBOGUS_CARD).is_file()


def test_rubin_import_refuses_what_it_cannot_keep(tmp_path):
    """A checkpoint changed after export no longer matches our card: refused, not half-kept;
    an explicit version equal to the original is refused too."""
    rubin = export_rubin(load_package("ztf-v0.2"), tmp_path / "rubin")
    with pytest.raises(PackageError, match="--version"):
        import_rubin(rubin, tmp_path / "same", version="ztf-v0.2")
    state = torch.load(rubin / "checkpoint.pt", weights_only=True)
    first = next(iter(state["model_state_dict"]))
    state["model_state_dict"][first] = state["model_state_dict"][first] + 1.0
    torch.save(state, rubin / "checkpoint.pt")
    with pytest.raises(PackageError, match="changed since"):
        import_rubin(rubin, tmp_path / "changed")
    (rubin / REALBOGUS_CARD).unlink()  # as a genuine Rubin package: imported under a new version
    card = load_package(import_rubin(rubin, tmp_path / "bare")).card
    assert card.version == "ztf-v0.2-import" and card.pixel_units is None


def test_cli_import_rubin_takes_version_and_name(tmp_path):
    export = runner.invoke(app, ["package", "export-rubin", "ztf-v0.1", str(tmp_path / "r")])
    assert export.exit_code == 0, export.output
    card = json.loads((tmp_path / "r" / REALBOGUS_CARD).read_text())
    assert card["card"]["version"] == "ztf-v0.1"
    ok = runner.invoke(
        app,
        [
            "package",
            "import-rubin",
            str(tmp_path / "r"),
            str(tmp_path / "q"),
            "--version",
            "mine-1",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert load_package(tmp_path / "q").card.version == "mine-1"
