"""Variable stars found in a field's own frames (`injection.variables`, `realbogus variables`),
and `inject --known` with their template-pixel catalogue."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _frames import render, star_field, write_frame
from typer.testing import CliRunner

from realbogus.cli import app
from realbogus.errors import InputError
from realbogus.injection import build_template, read_frame, write_template
from realbogus.injection.inject import InjectConfig
from realbogus.injection.run import field_variables, inject_dataset, read_known

SIZE = 200
N_FRAMES = 12


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Twelve frames of one field (shifts up to 6 px, seeing 3-4.4 px) in which two stars vary
    (by factors 0.4-1.6 and 0.7-1.3 of their flux), and a template of the best three."""
    d = tmp_path_factory.mktemp("series")
    rng = np.random.default_rng(21)
    field = star_field(rng, 150, SIZE)
    inside = np.flatnonzero(
        (field[:, 0] > 40) & (field[:, 0] < SIZE - 40) & (field[:, 1] > 40) & (field[:, 1] < 160)
    )
    bright = inside[np.argsort(-field[inside, 2])]
    varying = [int(bright[3]), int(bright[8])]
    field[varying, 2] = [4e4, 2.5e4]
    amplitude = {varying[0]: 0.6, varying[1]: 0.3}
    paths, shifts = [], []
    for i in range(N_FRAMES):
        stars = field.copy()
        for j, a in amplitude.items():
            stars[j, 2] *= 1 + a * np.sin(2 * np.pi * i / 5.3)
        fwhm = 3.0 + 0.12 * i
        shift = (rng.uniform(-6, 6), rng.uniform(-6, 6))
        shifts.append(shift)
        img = render(stars, size=SIZE, fwhm=fwhm, shift=shift, rng=np.random.default_rng(100 + i))
        paths.append(write_frame(d / f"s{i:02d}.fits", img, PFWHM=fwhm))
    tmpl = build_template([read_frame(p) for p in paths], best=3)
    write_template(tmpl, d / "T.fits")
    # The template is on the grid of its best-seeing frame (s00): field + that frame's shift.
    on_template = field[:, :2] + np.asarray(shifts[0])
    return {
        "paths": paths,
        "template": d / "T.fits",
        "on_template": on_template,
        "varying": varying,
    }


def test_the_varying_stars_are_found_and_no_constant_one(series: dict) -> None:
    """Both varying stars are flagged (within 1 px of where they are); no constant star is."""
    stars = field_variables(series["paths"], series["template"], workers=1)
    assert len(stars) > 40 and stars["n_frames"].max() == N_FRAMES
    found = stars[stars["variable"]]
    assert len(found) == 2  # the two varying stars, and no constant one
    for j in series["varying"]:
        x, y = series["on_template"][j]
        d = np.hypot(found["template_x"] - x, found["template_y"] - y)
        assert d.min() < 1.0, (j, x, y)
    constant = ~stars["variable"] & stars["chi2"].notna()
    assert stars.loc[constant, "chi2"].median() < 2.0


def test_inject_drops_detections_on_catalogued_variables(series: dict, tmp_path: Path) -> None:
    """`variables` writes the catalogue (template pixels); `inject --known` maps it onto each
    frame through its registration and drops the Bogus detections on the variables."""
    catalogue = tmp_path / "variables.csv"
    runner = CliRunner()
    res = runner.invoke(
        app,
        ["variables", "--template", str(series["template"]), "--out", str(catalogue)]
        + ["--workers", "1", "--science", *map(str, series["paths"])],
    )
    assert res.exit_code == 0, res.output
    assert "variable of" in res.output and catalogue.is_file()
    known = read_known(catalogue)
    assert len(known) >= 2 and known["variable"].all()
    science = series["paths"][3:9]
    config = InjectConfig(n_fakes=0, stamp_size=31)
    plain = inject_dataset(science, series["template"], tmp_path / "a", config=config, workers=1)
    dropped = inject_dataset(
        science, series["template"], tmp_path / "b", config=config, workers=1, known=known
    )
    visits = pd.read_parquet(dropped / "visits.parquet")
    assert visits["n_dropped_known"].sum() >= 3  # the variables were detected and left out
    a = pd.read_parquet(next(plain.glob("part-*.parquet")))
    b = pd.read_parquet(next(dropped.glob("part-*.parquet")))
    assert len(a) - len(b) == visits["n_dropped_known"].sum()


def test_too_few_frames_refused(series: dict) -> None:
    with pytest.raises(InputError, match="at least 10"):
        field_variables(series["paths"][:5], series["template"], workers=1)
