"""Tests of SWAP: the worked one-reference cases (crowd-labels.md 2.7), a slow reference loop,
options, stability rules and skill."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from realbogus.crowd import SwapConfig, aggregate, prepare_votes, skill_bits
from realbogus.errors import ConfigError


def _votes(rows):
    return pd.DataFrame(rows, columns=["volunteer", "subject_id", "vote"])


# (reference answer on a Real(1)/Bogus(0) reference, then a vote on a new subject)
@pytest.mark.parametrize(
    ("ref_truth", "ref_vote", "gamma", "pl", "pd_", "p_after_real", "p_after_bogus", "skill"),
    [
        (1, 1, 0.0, 0.95, 0.5, 0.655, 0.091, 0.205),  # raw fraction + DMTN clip
        (1, 1, 1.0, 0.667, 0.5, 0.571, 0.400, 0.021),  # Laplace
        (1, 1, 2.0, 0.6, 0.5, 0.545, 0.444, 0.007),  # Space Warps code
        (0, 1, 0.0, 0.5, 0.05, 0.345, 0.909, 0.205),  # wrong on a Bogus reference
    ],
)
def test_worked_one_reference_cases(
    ref_truth, ref_vote, gamma, pl, pd_, p_after_real, p_after_bogus, skill
):
    """The table of crowd-labels.md section 2.7, p0 = 0.5."""
    for vote, expected in ((1, p_after_real), (0, p_after_bogus)):
        v = _votes([("k", "ref", ref_vote), ("k", "new", vote)])
        out = aggregate(v, {"ref": ref_truth}, method="swap", pseudo_count=gamma)
        s = out.subjects.set_index("subject_id")
        assert s.at["new", "p_real"] == pytest.approx(expected, abs=5e-4)
        vol = out.volunteers.iloc[0]
        assert vol["PL"] == pytest.approx(pl, abs=5e-4) and vol["PD"] == pytest.approx(
            pd_, abs=5e-4
        )
        assert vol["skill_bits"] == pytest.approx(skill, abs=5e-4)
    # the reference subject itself was updated before the volunteer learned: PL = PD = 0.5 then
    assert s.at["ref", "p_real"] == pytest.approx(0.5)


def test_one_vote_crosses_threshold_but_is_not_stable():
    """Row 1 of 2.7: one Bogus vote gives 0.091 <= 0.10 (unstable set), never the stable set."""
    out = aggregate(_votes([("k", "ref", 1), ("k", "new", 0)]), {"ref": 1}, method="swap")
    row = out.subjects.set_index("subject_id").loc["new"]
    assert bool(row["unstable"]) and not bool(row["stable"]) and row["label"] == 0


def test_expert_and_always_real_rows():
    """Clipped expert: 0.95 / 0.05 after one vote, skill 0.714; always-Real: no information."""
    assert skill_bits(0.95, 0.95) == pytest.approx(0.714, abs=5e-4)
    assert skill_bits(0.95, 0.05) == pytest.approx(0.0, abs=1e-12)
    rows = [
        ("e", "r1", 1),
        ("e", "r2", 0),
        ("e", "new", 1),
        ("o", "r1", 1),
        ("o", "r2", 1),
        ("o", "x", 0),
    ]
    s = aggregate(_votes(rows), {"r1": 1, "r2": 0}, method="swap").subjects.set_index("subject_id")
    assert s.at["new", "p_real"] == pytest.approx(0.95)
    assert s.at["x", "p_real"] == pytest.approx(0.5)  # always-Real volunteer: LR = 1


def _slow_swap(votes: pd.DataFrame, gold: dict, *, prior=0.5, gamma=0.0, clip=(0.05, 0.95)):
    """Plain loop over classifications in time order: the subject first, then the volunteer learns."""
    n_ref = votes[votes["subject_id"].isin(gold)].groupby("volunteer").size()
    counts: dict = {}
    p = {}
    for vol, sid, y in votes[["volunteer", "subject_id", "vote"]].itertuples(index=False):
        p.setdefault(sid, prior)
        if n_ref.get(vol, 0) < 1:
            continue
        nr, tr, nb, tb = counts.get(vol, (0, 0, 0, 0))
        pl = 0.5 if nr + 2 * gamma == 0 else (tr + gamma) / (nr + 2 * gamma)
        pd_ = 0.5 if nb + 2 * gamma == 0 else (tb + gamma) / (nb + 2 * gamma)
        pl, pd_ = min(max(pl, clip[0]), clip[1]), min(max(pd_, clip[0]), clip[1])
        q = p[sid]
        p[sid] = (
            pl * q / (pl * q + (1 - pd_) * (1 - q))
            if y == 1
            else (1 - pl) * q / ((1 - pl) * q + pd_ * (1 - q))
        )
        if sid in gold:
            g = gold[sid]
            counts[vol] = (
                nr + (g == 1),
                tr + (g == 1 and y == 1),
                nb + (g == 0),
                tb + (g == 0 and y == 0),
            )
    return p


@pytest.mark.parametrize("gamma", [0.0, 1.0])
def test_vectorised_online_matches_plain_loop(rng, gamma):
    """The grouped-cumsum implementation equals the textbook sequential update."""
    n = 3000
    votes = (
        pd.DataFrame(
            {
                "volunteer": rng.integers(0, 40, n).astype(str),
                "subject_id": rng.integers(0, 600, n),
                "vote": rng.integers(0, 2, n),
            }
        )
        .drop_duplicates(["volunteer", "subject_id"])
        .reset_index(drop=True)
    )
    gold = {int(s): int(rng.integers(0, 2)) for s in range(0, 600, 7)}
    expected = _slow_swap(votes, gold, gamma=gamma)
    got = aggregate(votes, gold, method="swap", pseudo_count=gamma).subjects.set_index(
        "subject_id"
    )["p_real"]
    np.testing.assert_allclose(
        got.loc[list(expected)].to_numpy(), list(expected.values()), rtol=1e-9, atol=1e-12
    )


def test_time_order_from_created_at_then_id():
    """Rows out of order are sorted by (created_at, classification_id) before the online pass."""
    t = pd.Timestamp("2025-11-12", tz="UTC")
    rows = pd.DataFrame(
        {
            "volunteer": ["k", "k"],
            "subject_id": ["new", "ref"],
            "vote": [0, 1],
            "created_at": [t, t],
            "classification_id": [2, 1],
        }
    )
    s = aggregate(rows, {"ref": 1}, method="swap").subjects.set_index("subject_id")
    assert s.at["new", "p_real"] == pytest.approx(0.0909, abs=1e-4)  # learned first
    rows["classification_id"] = [1, 2]
    s = aggregate(rows, {"ref": 1}, method="swap").subjects.set_index("subject_id")
    assert s.at["new", "p_real"] == pytest.approx(0.5)  # voted before any reference


def test_volunteers_without_reference_are_ignored():
    """min_reference = 1 (DMTN): a volunteer with no reference classification has no effect."""
    rows = [("a", "r", 1), ("a", "s", 1), ("b", "s", 0), ("b", "t", 0)]
    out = aggregate(_votes(rows), {"r": 1}, method="swap")
    s = out.subjects.set_index("subject_id")
    assert s.at["t", "p_real"] == 0.5 and s.at["t", "n_used"] == 0 and s.at["s", "n_used"] == 1
    assert out.volunteers.set_index("volunteer")["used"].to_dict() == {"a": True, "b": False}
    s0 = aggregate(_votes(rows), {"r": 1}, method="swap", min_reference=0).subjects.set_index(
        "subject_id"
    )
    assert s0.at["t", "n_used"] == 1


def test_prior_shifts_log_odds():
    """Changing p0 adds log(p0/(1-p0)) to every subject's log-odds."""
    rows = [("a", "r", 1), ("a", "r2", 0), ("a", "s", 1), ("a", "t", 0)]
    gold = {"r": 1, "r2": 0}
    a = aggregate(_votes(rows), gold, method="swap").subjects.set_index("subject_id")["p_real"]
    b = aggregate(_votes(rows), gold, method="swap", prior=0.3).subjects.set_index("subject_id")[
        "p_real"
    ]
    lo = lambda p: np.log(p / (1 - p))  # noqa: E731
    np.testing.assert_allclose(lo(b) - lo(a), np.log(0.3 / 0.7), atol=1e-12)


def test_stability_rules():
    """DMTN rule: the last three values over threshold; analysis-code: the signed-step variant."""
    # three experts say Real on "s": 0.95, 0.997, 0.9999 -> stable; two votes only -> not
    rows = []
    gold = {}
    for k in "abc":
        rows += [(k, f"r{k}1", 1), (k, f"r{k}2", 1), (k, f"r{k}3", 0), (k, f"r{k}4", 0)]
        gold.update({f"r{k}1": 1, f"r{k}2": 1, f"r{k}3": 0, f"r{k}4": 0})
    rows += [("a", "s", 1), ("b", "s", 1), ("c", "s", 1), ("a", "u", 1), ("b", "u", 1)]
    rows += [
        ("a", "w", 0),
        ("b", "w", 1),
        ("c", "w", 1),
    ]  # 0.05 -> 0.5 -> 0.95: only the last >= 0.9
    s = aggregate(_votes(rows), gold, method="swap").subjects.set_index("subject_id")
    assert s.at["s", "stable"] and s.at["s", "unstable"]
    assert not s.at["u", "stable"] and s.at["u", "unstable"]
    assert not s.at["w", "stable"] and s.at["w", "unstable"]
    s2 = aggregate(_votes(rows), gold, method="swap", stability="analysis-code").subjects.set_index(
        "subject_id"
    )
    assert not s2.at["s", "stable"]  # rising chain: steps of +0.45, +0.05 are not < 0.01
    # falling chain passes the notebook's signed test (any drop counts as stable)
    fall = [(k, "f", 0) for k in "abc"]
    s3 = aggregate(
        _votes(rows + fall), gold, method="swap", stability="analysis-code"
    ).subjects.set_index("subject_id")
    assert s3.at["f", "stable"]


def test_offline_em_uses_unlabelled_votes(rng):
    """Offline SWAP learns from all votes: a reliable volunteer with few references gains skill."""
    n_s = 400
    truth = rng.integers(0, 2, n_s)
    rows = []
    for k, acc in (("good", 0.95), ("good2", 0.9), ("bad", 0.6)):
        said = np.where(rng.random(n_s) < acc, truth, 1 - truth)
        rows += [(k, i, int(y)) for i, y in enumerate(said)]
    gold = {0: int(truth[0]), 1: int(truth[1])}
    on = aggregate(_votes(rows), gold, method="swap")
    off = aggregate(_votes(rows), gold, method="swap", mode="offline")
    held = np.arange(2, n_s)

    def acc(out):  # unlabelled (Pr = 0.5) counts as wrong
        lab = out.subjects.set_index("subject_id").loc[held, "label"].astype("Float64")
        return (lab.to_numpy(dtype=float, na_value=-1.0) == truth[held]).mean()

    assert acc(off) > 0.9
    assert acc(off) >= acc(on)
    vols = off.volunteers.set_index("volunteer")
    assert vols.at["good", "skill_bits"] > vols.at["bad", "skill_bits"]


def test_bad_options_and_inputs():
    """Options are validated up front; unknown names are listed."""
    v = _votes([("a", 1, 1)])
    with pytest.raises(ConfigError, match="clip"):
        aggregate(v, method="swap", clip=(0.6, 0.9))
    with pytest.raises(ConfigError, match="prior"):
        SwapConfig(prior=1.0)
    with pytest.raises(ConfigError, match="valid options"):
        aggregate(v, method="swap", gamma=1)
    with pytest.raises(ConfigError, match="unknown aggregation method 'swapp'"):
        aggregate(v, method="swapp")
    with pytest.raises(Exception, match="votes must be 1"):
        aggregate(_votes([("a", 1, 2)]), method="swap")


def test_prepared_votes_are_reusable():
    """Prepared votes give the same labels as the table, for every method."""
    rows = _votes([("a", "r", 1), ("a", "s", 1), ("b", "r", 0), ("b", "s", 0)])
    pv = prepare_votes(rows, {"r": 1})
    for m in ("swap", "majority", "dawid-skene"):
        a = aggregate(pv, method=m).subjects
        b = aggregate(rows, {"r": 1}, method=m).subjects
        pd.testing.assert_frame_equal(a, b)
