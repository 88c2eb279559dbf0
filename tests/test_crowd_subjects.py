"""Tests of Zooniverse subject images and manifests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from realbogus.crowd.subjects import RELIABILITY_CUTS, render_subject, subject_sets, write_subjects
from realbogus.errors import InputError
from realbogus.io.dataset import open_dataset, write_dataset
from realbogus.stamps import Stamps


def tiny_dataset(path, rng, n=12, size=11):
    table = pd.DataFrame(
        {
            "diaSourceId": np.arange(n, dtype=np.int64) + 5000,
            "label": rng.integers(0, 2, n),
            "origin": np.where(np.arange(n) % 3 == 0, "ss", "gaia"),
            "snr": rng.uniform(3, 30, n),
        }
    )
    data = rng.normal(size=(n, 3, size, size)).astype(np.float32)
    stamps = Stamps(data=data, valid_fraction=np.ones(n, np.float32), edge=np.zeros(n, bool))
    return write_dataset(path, table, stamps)


def test_render_order_and_zscale(rng):
    """Panels are template | science | difference; each zscaled to the full grey range."""
    stamp = np.zeros((3, 9, 9), np.float32)
    stamp[0] = rng.normal(0, 1, (9, 9))  # difference
    stamp[1] = 1000 + rng.normal(0, 50, (9, 9))  # science
    stamp[2, 4, 4] = 1.0  # template: one bright pixel
    img = render_subject(stamp, scale=2, gap=1)
    assert img.shape == (18, (27 + 2) * 2) and img.dtype == np.uint8
    tmpl, sci, diff = img[:, :18], img[:, 20:38], img[:, 40:58]
    assert tmpl[8, 8] == 255 and tmpl[0, 0] == 0
    assert (img[:, 18:20] == 255).all()
    for panel in (sci, diff):
        assert panel.min() < 30 and panel.max() > 225  # not washed out by the 1000 offset
    flat = render_subject(np.ones((3, 9, 9), np.float32), scale=1)
    assert (flat[:, :9] == 128).all()
    with pytest.raises(InputError, match=r"\(3, S, S\)"):
        render_subject(np.zeros((2, 9, 9)))


def test_subject_sets_reliability_cuts():
    """Origins are the sets; 0.5 < reliability < 0.9 moves a detection to reliability_cuts."""
    table = pd.DataFrame({"diaSourceId": [1, 2, 3, 4], "origin": ["ss", "gaia", "tns", "ss"]})
    scores = pd.DataFrame({"diaSourceId": [1, 2, 3], "reliability": [0.6, 0.9, 0.5]})
    assert subject_sets(table).tolist() == ["ss", "gaia", "tns", "ss"]
    assert subject_sets(table, scores=scores).tolist() == [RELIABILITY_CUTS, "gaia", "tns", "ss"]


def test_write_subjects(tmp_path, rng):
    """One PNG per detection, a full manifest and one per subject set; feedback on references only."""
    ds = tiny_dataset(tmp_path / "ds", rng)
    scores = pd.DataFrame({"diaSourceId": [5001], "reliability": [0.7]})
    seen = []
    m = write_subjects(
        ds,
        tmp_path / "subj",
        reference_fraction=0.5,
        scores=scores,
        seed=1,
        progress=lambda d, t: seen.append((d, t)),
    )
    assert seen[-1] == (12, 12)
    pngs = sorted(p.name for p in (tmp_path / "subj").glob("*.png"))
    assert pngs == sorted(m["image"]) and len(pngs) == 12
    with Image.open(tmp_path / "subj" / "5000.png") as im:
        assert im.size == ((3 * 11 + 4) * 4, 11 * 4) and im.mode == "L"
    full = pd.read_csv(tmp_path / "subj" / "manifest.csv", dtype=str, keep_default_na=False)
    assert list(full.columns) == [
        "image",
        "subject_set",
        "#diaSourceId",
        "#origin",
        "#feedback_1_answer",
    ]
    ref = full[full["#feedback_1_answer"] != ""]
    assert 0 < len(ref) < 12
    table = open_dataset(ds).table().set_index("diaSourceId")
    expect = np.where(table.loc[ref["#diaSourceId"].astype(int), "label"] == 1, "0", "1")
    assert (ref["#feedback_1_answer"].to_numpy() == expect).all()
    sets = {p.name for p in (tmp_path / "subj").glob("manifest_*.csv")}
    assert sets == {"manifest_ss.csv", "manifest_gaia.csv", f"manifest_{RELIABILITY_CUTS}.csv"}
    assert (tmp_path / "subj" / f"manifest_{RELIABILITY_CUTS}.csv").read_text().count("\n") == 2
    with pytest.raises(InputError, match="already exists"):
        write_subjects(ds, tmp_path / "subj")
