"""`realbogus template` and `realbogus inject` (cli/images.py) on generated frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from _frames import render, star_field, write_frame
from typer.testing import CliRunner

from realbogus.cli import app
from realbogus.io.dataset import open_dataset

runner = CliRunner()


def test_template_then_inject(tmp_path: Path) -> None:
    field = star_field(np.random.default_rng(3), 260, 200)
    paths = []
    for i, (fwhm, shift) in enumerate([(3.0, (0, 0)), (3.2, (4.2, -3.1)), (4.5, (-6.3, 5.5))]):
        img = render(field, size=200, fwhm=fwhm, shift=shift, rng=np.random.default_rng(i))
        paths.append(str(write_frame(tmp_path / f"f{i}.fits", img, PFWHM=fwhm)))
    t = tmp_path / "T.fits"
    res = runner.invoke(app, ["template", *paths, "--best", "2", "--out", str(t)])
    assert res.exit_code == 0, res.output
    assert "template of 2 frames" in res.output and t.is_file()
    again = runner.invoke(app, ["template", *paths, "--best", "2", "--out", str(t)])
    assert again.exit_code == 1 and "--overwrite" in again.output
    out = tmp_path / "ds"
    args = ["inject", "--template", str(t), "--out", str(out), "--science", paths[2]]
    res = runner.invoke(app, [*args, "--fakes-per-image", "20", "--stamp-size", "31"])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_frames"] == 1 and summary["n_fakes"] > 5
    assert len(open_dataset(out)) == summary["n_detections"]
    pooled = summary["snr_robust_std_pooled"]["pair_difference"]
    assert f"{pooled:.2f} away from sources (pooled pair differences)" in " ".join(
        res.output.split()
    )
    bad = runner.invoke(app, ["inject", "--template", str(t), "--out", str(tmp_path / "x")])
    assert bad.exit_code == 1 and "--science" in bad.output
    zogy = runner.invoke(app, [*args[:-2], "--science", paths[2], "--subtraction", "nope"])
    assert zogy.exit_code == 1 and "--subtraction" in zogy.output
    # --copies 2 is the frame given twice: the same dataset, byte for byte.
    small = ["--fakes-per-image", "10", "--stamp-size", "31", "--seed", "5"]
    twice, copied = tmp_path / "twice", tmp_path / "copied"
    base = ["inject", "--template", str(t)]
    res = runner.invoke(app, [*base, "--out", str(twice), "--science", paths[2], paths[2], *small])
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app, [*base, "--out", str(copied), "--science", paths[2], "--copies", "2", *small]
    )
    assert res.exit_code == 0, res.output
    parts = sorted(p.name for p in twice.glob("part-*.parquet"))
    assert parts and parts == sorted(p.name for p in copied.glob("part-*.parquet"))
    for name in [*parts, "truth.parquet"]:
        assert (twice / name).read_bytes() == (copied / name).read_bytes()
    assert json.loads((copied / "summary.json").read_text())["n_frames"] == 2
    none = runner.invoke(app, [*args, "--copies", "0"])
    assert none.exit_code == 1 and "--copies" in none.output
