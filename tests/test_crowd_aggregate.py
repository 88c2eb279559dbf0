"""Tests of the aggregate entry points on a simulated Panoptes export."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from realbogus.crowd.aggregate import aggregate_export
from realbogus.crowd.simulate import CrowdConfig, simulate_crowd, write_export
from realbogus.errors import ConfigError


def test_aggregate_export_carries_subject_metadata(tmp_path, rng):
    """diaSourceId, origin and retirement reach the labels; reference CSV overrides the metadata."""
    n = 500
    table = pd.DataFrame(
        {
            "diaSourceId": np.arange(n, dtype=np.int64) + 10**9,
            "label": rng.integers(0, 2, n),
            "origin": rng.choice(["ss", "tns"], n),
        }
    )
    sim = simulate_crowd(table, config=CrowdConfig(n_volunteers=50, reference_fraction=0.2), seed=2)
    path = write_export(sim, tmp_path / "e.csv")
    labels, dropped = aggregate_export(path, method="swap", min_used=3)
    s = labels.subjects.merge(sim.subjects, on="subject_id", suffixes=("", "_sim"))
    assert (s["diaSourceId"] == s["diaSourceId_sim"]).all() and (
        s["origin"] == s["origin_sim"]
    ).all()
    assert (s["retirement_reason"] == s["retirement_reason_sim"]).all()
    assert s["reference"].notna().sum() == int(sim.subjects["reference"].sum())
    assert not (s["unstable"] & (s["n_used"] < 3)).any()
    assert labels.config["min_used"] == 3 and set(dropped) >= {"already_seen", "duplicate"}
    pd.DataFrame({"subject_id": [int(sim.subjects["subject_id"][0])], "label": [1]}).to_csv(
        tmp_path / "r.csv", index=False
    )
    labels2, _ = aggregate_export(path, method="majority", reference=tmp_path / "r.csv")
    assert labels2.subjects["reference"].notna().sum() == 1
    with pytest.raises(ConfigError, match="valid options"):
        aggregate_export(path, method="swap", bogus=1)
