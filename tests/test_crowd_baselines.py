"""Tests of majority vote and Dawid-Skene (same inputs/outputs as SWAP) and of label scoring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from realbogus.crowd import aggregate, aggregator_names, register_aggregator
from realbogus.crowd.evaluate import reference_split, score_labels
from realbogus.errors import ConfigError


def _votes(rows):
    return pd.DataFrame(rows, columns=["volunteer", "subject_id", "vote"])


def test_registry_lists_builtins():
    """The three built-ins are registered; a second registration under a taken name fails."""
    assert set(aggregator_names()) >= {"swap", "majority", "dawid-skene"}
    with pytest.raises(ConfigError, match="already registered"):
        register_aggregator("swap")(lambda votes: None)


def test_majority_fraction_ties_and_stability():
    """p = Real fraction; a 1-1 tie stays unlabelled; stable needs the last three >= 0.9."""
    rows = [("a", 1, 1), ("b", 1, 0), ("a", 2, 1), ("b", 2, 1), ("c", 2, 1)]
    out = aggregate(_votes(rows), method="majority")
    s = out.subjects.set_index("subject_id")
    assert s.at[1, "p_real"] == 0.5 and pd.isna(s.at[1, "label"])
    assert s.at[2, "p_real"] == 1.0 and s.at[2, "stable"] and s.at[2, "label"] == 1
    v = out.volunteers.set_index("volunteer")
    assert v.at["b", "PL"] == 1.0  # agreed with the majority on subject 2 (1 is a tie)


def test_majority_matches_simple_vote_count(rng):
    """Against a plain groupby on random votes."""
    v = pd.DataFrame({"volunteer": rng.integers(0, 30, 2000).astype(str), "subject_id": rng.integers(0, 300, 2000),
                      "vote": rng.integers(0, 2, 2000)})
    s = aggregate(v, method="majority").subjects.set_index("subject_id")
    frac = v.groupby("subject_id")["vote"].mean()
    np.testing.assert_allclose(s.loc[frac.index, "p_real"], frac.to_numpy())


def _crowd(rng, n_s=600, skills=(0.95, 0.9, 0.85, 0.6, 0.55), optimist=True):
    truth = rng.integers(0, 2, n_s)
    rows = []
    for k, acc in enumerate(skills):
        said = np.where(rng.random(n_s) < acc, truth, 1 - truth)
        rows += [(f"v{k}", i, int(y)) for i, y in enumerate(said)]
    if optimist:
        rows += [("opt", i, 1) for i in range(n_s)]
        rows += [("opt2", i, 1) for i in range(n_s)]
    return _votes(rows), truth


def test_dawid_skene_beats_majority_with_biased_volunteers(rng):
    """Two always-Real volunteers sway the majority; Dawid-Skene learns to discount them."""
    votes, truth = _crowd(rng)
    gold = pd.Series(truth[:60], index=np.arange(60))
    held = pd.Series(truth[60:], index=np.arange(60, len(truth)))
    ds = score_labels(aggregate(votes, gold, method="dawid-skene").subjects, held).loc["all"]
    mv = score_labels(aggregate(votes, method="majority").subjects, held).loc["all"]
    sw = score_labels(aggregate(votes, gold, method="swap").subjects, held).loc["all"]
    assert ds["balanced_accuracy"] > mv["balanced_accuracy"] + 0.02
    assert sw["balanced_accuracy"] > mv["balanced_accuracy"] + 0.02
    vols = aggregate(votes, gold, method="dawid-skene").volunteers.set_index("volunteer")
    assert vols.at["opt", "PD"] < 0.05 and vols.at["opt", "skill_bits"] < 0.05
    assert vols.at["v0", "skill_bits"] > 0.5


def test_dawid_skene_gold_clamping(rng):
    """Clamping changes the fit and its reference subjects still report vote-based p_real."""
    votes, truth = _crowd(rng, n_s=200)
    gold = pd.Series(1 - truth[:100], index=np.arange(100))  # deliberately wrong gold
    a = aggregate(votes, gold, method="dawid-skene", clamp_gold=True).volunteers.set_index("volunteer")
    b = aggregate(votes, gold, method="dawid-skene", clamp_gold=False).volunteers.set_index("volunteer")
    assert a.at["v0", "PL"] < 0.6 < b.at["v0", "PL"]
    with pytest.raises(ConfigError, match="smoothing"):
        aggregate(votes, method="dawid-skene", smoothing=-1)
    with pytest.raises(ConfigError, match="stability"):
        aggregate(votes, method="majority", stability="nope")


def test_score_labels_and_split():
    """Coverage, accuracy and balanced accuracy by hand; the split is seeded and sized."""
    subjects = pd.DataFrame({"subject_id": [1, 2, 3, 4], "label": pd.array([1, 0, 1, None], dtype="Int8"),
                             "unstable": [True, True, False, False], "stable": [True, False, False, False]})
    truth = pd.Series([1, 0, 0, 1], index=[1, 2, 3, 4])
    r = score_labels(subjects, truth)
    assert r.loc["all", "coverage"] == 0.75 and r.loc["all", "accuracy"] == pytest.approx(2 / 3)
    assert r.loc["all", "balanced_accuracy"] == pytest.approx(0.75)
    assert r.loc["unstable", "accuracy"] == 1.0 and r.loc["unstable", "coverage"] == 0.5
    assert np.isnan(r.loc["stable", "balanced_accuracy"])  # one class only
    m = reference_split(np.arange(100), fraction=0.2, seed=3)
    assert m.sum() == 20 and (m == reference_split(np.arange(100), fraction=0.2, seed=3)).all()
