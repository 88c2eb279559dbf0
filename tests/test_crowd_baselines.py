"""Tests of majority vote and Dawid-Skene (same inputs/outputs as SWAP) and of label scoring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from realbogus.crowd import aggregate, aggregator_names, register_aggregator
from realbogus.crowd.accuracy import label_accuracy, reference_split
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
    v = pd.DataFrame(
        {
            "volunteer": rng.integers(0, 30, 2000).astype(str),
            "subject_id": rng.integers(0, 300, 2000),
            "vote": rng.integers(0, 2, 2000),
        }
    )
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
    ds = label_accuracy(aggregate(votes, gold, method="dawid-skene").subjects, held).loc["all"]
    mv = label_accuracy(aggregate(votes, method="majority").subjects, held).loc["all"]
    sw = label_accuracy(aggregate(votes, gold, method="swap").subjects, held).loc["all"]
    assert ds["balanced_accuracy"] > mv["balanced_accuracy"] + 0.02
    assert sw["balanced_accuracy"] > mv["balanced_accuracy"] + 0.02
    vols = aggregate(votes, gold, method="dawid-skene").volunteers.set_index("volunteer")
    assert vols.at["opt", "PD"] < 0.05 and vols.at["opt", "skill_bits"] < 0.05
    assert vols.at["v0", "skill_bits"] > 0.5


def test_dawid_skene_gold_clamping(rng):
    """Clamping changes the fit and its reference subjects still report vote-based p_real."""
    votes, truth = _crowd(rng, n_s=200)
    gold = pd.Series(1 - truth[:100], index=np.arange(100))  # deliberately wrong gold
    a = aggregate(votes, gold, method="dawid-skene", clamp_gold=True).volunteers.set_index(
        "volunteer"
    )
    b = aggregate(votes, gold, method="dawid-skene", clamp_gold=False).volunteers.set_index(
        "volunteer"
    )
    assert a.at["v0", "PL"] < 0.6 < b.at["v0", "PL"]
    with pytest.raises(ConfigError, match="smoothing"):
        aggregate(votes, method="dawid-skene", smoothing=-1)
    with pytest.raises(ConfigError, match="stability"):
        aggregate(votes, method="majority", stability="nope")


def test_score_labels_and_split():
    """Coverage, accuracy and balanced accuracy by hand; the split is seeded and sized."""
    subjects = pd.DataFrame(
        {
            "subject_id": [1, 2, 3, 4],
            "label": pd.array([1, 0, 1, None], dtype="Int8"),
            "unstable": [True, True, False, False],
            "stable": [True, False, False, False],
        }
    )
    truth = pd.Series([1, 0, 0, 1], index=[1, 2, 3, 4])
    r = label_accuracy(subjects, truth)
    assert r.loc["all", "coverage"] == 0.75 and r.loc["all", "accuracy"] == pytest.approx(2 / 3)
    assert r.loc["all", "balanced_accuracy"] == pytest.approx(0.75)
    assert r.loc["unstable", "accuracy"] == 1.0 and r.loc["unstable", "coverage"] == 0.5
    assert np.isnan(r.loc["stable", "balanced_accuracy"])  # one class only
    m = reference_split(np.arange(100), fraction=0.2, seed=3)
    assert m.sum() == 20 and (m == reference_split(np.arange(100), fraction=0.2, seed=3)).all()


def _slow_dawid_skene(votes, gold, smoothing=0.01, iters=100):
    """Textbook binary Dawid-Skene with dictionaries (reference for the vectorised one)."""
    subjects = sorted(votes["subject_id"].unique())
    vols = sorted(votes["volunteer"].unique())
    by_s = {s: [] for s in subjects}
    for v, s, y in votes[["volunteer", "subject_id", "vote"]].itertuples(index=False):
        by_s[s].append((v, y))
    p = {s: (np.mean([y for _, y in by_s[s]]) if s not in gold else gold[s]) for s in subjects}
    for _ in range(iters):
        num_l = dict.fromkeys(vols, smoothing)
        den_l = dict.fromkeys(vols, 2 * smoothing)
        num_d = dict.fromkeys(vols, smoothing)
        den_d = dict.fromkeys(vols, 2 * smoothing)
        for s in subjects:
            for v, y in by_s[s]:
                num_l[v] += y * p[s]
                den_l[v] += p[s]
                num_d[v] += (1 - y) * (1 - p[s])
                den_d[v] += 1 - p[s]
        pl = {v: num_l[v] / den_l[v] for v in vols}
        pdd = {v: num_d[v] / den_d[v] for v in vols}
        prior = np.mean([p[s] for s in subjects])
        new = {}
        for s in subjects:
            lr, lb = np.log(prior), np.log(1 - prior)
            for v, y in by_s[s]:
                lr += np.log(pl[v] if y else 1 - pl[v])
                lb += np.log(1 - pdd[v] if y else pdd[v])
            new[s] = gold[s] if s in gold else 1 / (1 + np.exp(lb - lr))
        p = new
    return p, pl, pdd


def test_dawid_skene_matches_slow_reference(rng):
    """Vectorised EM equals a dictionary-based textbook implementation."""
    votes, _ = _crowd(rng, n_s=120, skills=(0.9, 0.8, 0.7), optimist=False)
    votes = votes.sample(frac=0.7, random_state=1).sort_index()
    gold = {0: 1, 1: 0, 2: 1}
    p, pl, pdd = _slow_dawid_skene(votes, gold)
    out = aggregate(votes, gold, method="dawid-skene", tol=1e-12, max_iter=100)
    vols = out.volunteers.set_index("volunteer")
    for v in pl:
        assert vols.at[v, "PL"] == pytest.approx(pl[v], abs=1e-6)
        assert vols.at[v, "PD"] == pytest.approx(pdd[v], abs=1e-6)
    s = out.subjects.set_index("subject_id")
    free = [k for k in p if k not in gold]
    np.testing.assert_allclose(s.loc[free, "p_real"].to_numpy(), [p[k] for k in free], atol=1e-6)


@pytest.mark.parametrize(
    ("method", "opts"), [("majority", {}), ("dawid-skene", {}), ("swap", {"mode": "offline"})]
)
def test_batch_methods_ignore_vote_order(rng, method, opts):
    """Final Pr(Real) of the batch methods does not depend on the order of the votes."""
    votes, truth = _crowd(rng, n_s=150, skills=(0.9, 0.8, 0.7), optimist=True)
    gold = pd.Series(truth[:20], index=np.arange(20))
    a = aggregate(votes, gold, method=method, **opts).subjects.set_index("subject_id").sort_index()
    shuffled = votes.sample(frac=1.0, random_state=7).reset_index(drop=True)
    b = (
        aggregate(shuffled, gold, method=method, **opts)
        .subjects.set_index("subject_id")
        .sort_index()
    )
    np.testing.assert_allclose(a["p_real"].to_numpy(), b["p_real"].to_numpy(), atol=1e-9)
