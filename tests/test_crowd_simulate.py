"""Tests of the simulated crowd: retirement, volunteer kinds, low-SNR bias, export round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from realbogus.crowd import aggregate
from realbogus.crowd.panoptes import read_classifications
from realbogus.crowd.simulate import CrowdConfig, simulate_crowd, write_export
from realbogus.errors import ConfigError, InputError


@pytest.fixture
def table(rng):
    n = 4000
    return pd.DataFrame(
        {
            "diaSourceId": np.arange(n, dtype=np.int64) + 7 * 10**14,
            "label": rng.integers(0, 2, n),
            "snr": rng.uniform(3, 40, n),
            "origin": rng.choice(["ss", "gaia"], n),
        }
    )


def test_retirement_rule(table):
    """Main-pool subjects get 2 agreeing votes, or 7 when the first two disagree."""
    sim = simulate_crowd(
        table, config=CrowdConfig(n_volunteers=200, reference_rate=0.0, repeat_rate=0.0), seed=1
    )
    v = sim.votes
    counts = v.groupby("subject_id").size()
    assert set(counts.unique()) <= {2, 7}
    firsts = v.groupby("subject_id")["vote"].agg(lambda x: len(set(x.iloc[:2])) == 1)
    np.testing.assert_array_equal(counts.loc[firsts.index].to_numpy() == 2, firsts.to_numpy())
    subj = sim.subjects.set_index("subject_id")
    assert (subj.loc[counts.index, "classifications_count"] == counts).all()
    assert set(subj["retirement_reason"]) == {"consensus", "classification_count"}
    assert not v.duplicated(["volunteer", "subject_id"]).any()
    assert (
        v["created_at"].is_monotonic_increasing and v["classification_id"].is_monotonic_increasing
    )


def test_volunteer_kinds_and_activity(table):
    """Optimists say Real, pessimists say Bogus; activity is heavy-tailed; some are logged out."""
    sim = simulate_crowd(table, config=CrowdConfig(n_volunteers=300), seed=2)
    vol = sim.volunteers.set_index("volunteer")
    rate = sim.votes.groupby("volunteer")["vote"].mean()
    kind = vol.loc[rate.index, "kind"]
    assert rate[kind == "optimist"].mean() > 0.8 and rate[kind == "pessimist"].mean() < 0.2
    n = sim.votes.groupby("volunteer").size().sort_values(ascending=False)
    assert n.iloc[: len(n) // 10].sum() > 0.4 * n.sum()  # top 10 % do > 40 % of the work
    out = vol[vol["user_id"] == ""]
    assert len(out) > 0 and out.index.str.startswith("not-logged-in-").all()


def test_low_snr_bias(rng):
    """Faint real sources are called Bogus far more often than bright ones (DMTN-337 Fig. 4)."""
    n = 6000
    t = pd.DataFrame({"label": np.ones(n, int), "snr": np.where(np.arange(n) % 2, 4.0, 30.0)})
    sim = simulate_crowd(
        t, config=CrowdConfig(n_volunteers=300, kind_fractions={"good": 1.0}), seed=3
    )
    v = sim.votes.merge(sim.subjects[["subject_id", "snr"]], on="subject_id")
    real_rate = v.groupby("snr")["vote"].mean()
    assert real_rate[4.0] < 0.3 < 0.75 < real_rate[30.0]
    no_bias = simulate_crowd(
        t, config=CrowdConfig(n_volunteers=300, kind_fractions={"good": 1.0}, faint_width=0), seed=3
    )
    v2 = no_bias.votes.merge(no_bias.subjects[["subject_id", "snr"]], on="subject_id")
    assert v2.groupby("snr")["vote"].mean()[4.0] > 0.75


def test_seeded(table):
    """Same seed, same crowd; another seed, another crowd."""
    a = simulate_crowd(table, seed=5).votes
    pd.testing.assert_frame_equal(a, simulate_crowd(table, seed=5).votes)
    assert not a["vote"].equals(simulate_crowd(table, seed=6).votes["vote"])


def test_export_round_trip(table, tmp_path):
    """The written export reads back through the real parser: votes, gold, metadata, repeats."""
    sim = simulate_crowd(
        table.iloc[:800], config=CrowdConfig(n_volunteers=60, repeat_rate=0.02), seed=4
    )
    path = write_export(sim, tmp_path / "export.csv")
    c = read_classifications(path)
    expect = sim.votes[~sim.votes["already_seen"]]
    assert c.dropped["already_seen"] == int(sim.votes["already_seen"].sum()) > 0
    assert len(c.votes) + c.dropped["duplicate"] == len(expect)
    merged = c.votes.merge(expect, on="classification_id", suffixes=("", "_sim"))
    assert (merged["vote"] == merged["vote_sim"]).all() and (
        merged["volunteer"] == merged["volunteer_sim"]
    ).all()
    assert c.gold.sort_index().to_dict() == sim.gold.sort_index().to_dict()
    subj = c.subjects.merge(sim.subjects, on="subject_id", suffixes=("", "_sim"))
    assert (subj["diaSourceId"] == subj["diaSourceId_sim"]).all() and (
        subj["origin"] == subj["origin_sim"]
    ).all()
    assert (c.votes["logged_in"] == ~c.votes["volunteer"].str.startswith("not-logged-in-")).all()
    labels = aggregate(c.votes, c.gold, method="swap")
    assert labels.subjects["unstable"].any()
    direct = aggregate(sim.clean_votes, sim.gold, method="swap").subjects
    pd.testing.assert_frame_equal(labels.subjects, direct)  # the export loses nothing


def test_bad_config_and_table(table):
    """Options and tables are validated."""
    with pytest.raises(ConfigError, match="n_volunteers"):
        CrowdConfig(n_volunteers=3)
    with pytest.raises(ConfigError, match="kind_fractions"):
        CrowdConfig(kind_fractions={"wizard": 1.0})
    with pytest.raises(InputError, match="label column"):
        simulate_crowd(table.drop(columns="label"))
