"""Tests of the shared crowd core: vote preparation, gold, grouped sums, trajectories, label files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from realbogus.crowd import aggregate, as_gold, prepare_votes, read_labels
from realbogus.crowd.core import grouped_cumsum, labels_from_trajectory
from realbogus.errors import ConfigError, InputError


def test_prepare_votes_orders_and_encodes():
    """Sorted by (created_at, classification_id); gold mapped onto subjects; unknown gold ignored."""
    t = pd.to_datetime(
        ["2025-11-12 10:00:01", "2025-11-12 10:00:00", "2025-11-12 10:00:00"], utc=True
    )
    v = pd.DataFrame(
        {
            "volunteer": ["a", "b", "a"],
            "subject_id": [5, 6, 5],
            "vote": [1, 0, True],
            "created_at": t,
            "classification_id": [1, 3, 2],
        }
    )
    pv = prepare_votes(v, {6: 1, 99: 0})
    assert pv.subject_ids.tolist() == [5, 6] and pv.volunteers.tolist() == ["a", "b"]
    assert pv.s.tolist() == [0, 1, 0] and pv.y.tolist() == [1, 0, 1]
    assert pv.gold.tolist() == [-1, 1]
    with pytest.raises(InputError, match="lacks columns"):
        prepare_votes(v.drop(columns="vote"))
    with pytest.raises(InputError, match="missing volunteer"):
        prepare_votes(v.assign(volunteer=[None, "b", "a"]))


def test_as_gold_forms():
    """Series, mapping and DataFrame forms agree; bad labels and conflicts are errors."""
    a = as_gold({1: 1, 2: 0})
    b = as_gold(pd.DataFrame({"subject_id": [1, 2, 2], "label": [1, 0, 0]}))
    assert a.to_dict() == b.to_dict() == {1: 1, 2: 0}
    with pytest.raises(InputError, match="1 \\(Real\\) or 0"):
        as_gold({1: "Real"})
    with pytest.raises(InputError, match="conflicting"):
        as_gold(pd.DataFrame({"subject_id": [1, 1], "label": [1, 0]}))


def test_grouped_cumsum_matches_loop(rng):
    """Inclusive and exclusive running sums per group equal a Python loop."""
    keys = rng.integers(0, 20, 500)
    vals = rng.normal(size=(500, 2))
    order, inc = grouped_cumsum(keys, vals)
    _, exc = grouped_cumsum(keys, vals, exclusive=True)
    running: dict = {}
    expect_inc, expect_exc = np.empty_like(vals), np.empty_like(vals)
    for i in range(500):
        before = running.get(keys[i], np.zeros(2))
        expect_exc[i], expect_inc[i] = before, before + vals[i]
        running[keys[i]] = before + vals[i]
    np.testing.assert_allclose(inc, expect_inc[order], atol=1e-12)
    np.testing.assert_allclose(exc, expect_exc[order], atol=1e-12)
    assert (np.diff(keys[order]) >= 0).all()


def test_labels_from_trajectory_rules():
    """Hand-made chains: stable needs the last three values over threshold; min_used filters."""
    s = np.array([0, 0, 0, 1, 1, 1, 1, 2])
    p = np.array([0.95, 0.97, 0.99, 0.95, 0.5, 0.95, 0.96, 0.05])
    out = labels_from_trajectory(s, p, 4, prior=0.5)
    assert out["stable"].tolist() == [True, False, False, False]
    assert out["unstable"].tolist() == [True, True, True, False]
    assert out["n_used"].tolist() == [3, 4, 1, 0] and out["p_real"][3] == 0.5
    few = labels_from_trajectory(s, p, 4, prior=0.5, min_used=4)
    assert few["unstable"].tolist() == [False, True, False, False] and not few["stable"].any()
    with pytest.raises(ConfigError, match="stability"):
        labels_from_trajectory(s, p, 4, prior=0.5, stability="other")


def test_labels_parquet_round_trip(tmp_path):
    """Labels written with their method/config read back; other files are rejected."""
    v = pd.DataFrame({"volunteer": ["a", "a"], "subject_id": [1, 2], "vote": [1, 0]})
    out = aggregate(v, {1: 1}, method="swap", pseudo_count=1.0)
    out.to_parquet(tmp_path / "l.parquet")
    table, info = read_labels(tmp_path / "l.parquet")
    pd.testing.assert_frame_equal(table, out.subjects)
    assert info["method"] == "swap" and info["config"]["pseudo_count"] == 1.0
    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "x.parquet")
    with pytest.raises(InputError, match="not a crowd labels file"):
        read_labels(tmp_path / "x.parquet")
    (tmp_path / "bad.parquet").write_text("nope")
    with pytest.raises(InputError, match="not a readable"):
        read_labels(tmp_path / "bad.parquet")
    assert out.label_set("unstable").empty  # gamma = 1: one vote gives 0.4
    assert aggregate(v, {1: 1}, method="swap").label_set("unstable")["subject_id"].tolist() == [2]
