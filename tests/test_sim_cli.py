"""`realbogus simulate`: writes the dataset and preview; bad configs exit 2 with the reason."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from realbogus.cli import app
from realbogus.io.dataset import open_dataset

TINY = {
    "image_size": 256,
    "scene": {"n_stars": 45, "n_galaxies": 20},
    "injection": {"n_fakes": 10},
    "subtraction": {"n_candidates": 30},
}


def test_simulate_command_writes_dataset_and_preview(tmp_path: Path) -> None:
    """The command writes a dataset, preview.png and the images with --save-images."""
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            "--visits",
            "1",
            "--seed",
            "2",
            "--out",
            str(out),
            "--config",
            str(config),
            "--save-images",
            "--workers",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (out / "preview.png").stat().st_size > 1000
    assert len(open_dataset(out)) > 0
    assert (out / "images" / "visit_000000" / "difference.fits").is_file()


def test_simulate_command_rejects_bad_config(tmp_path: Path) -> None:
    """An invalid YAML value exits with code 1 and names the file and field; nothing is written."""
    config = tmp_path / "bad.yaml"
    config.write_text("seeing: [2.0, 1.0]\n")
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app, ["simulate", "--visits", "1", "--out", str(out), "--config", str(config)]
    )
    assert result.exit_code == 1
    assert "seeing" in result.output and "bad.yaml" in result.output
    assert not out.exists()
