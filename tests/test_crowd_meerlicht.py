"""SWAP, majority vote and Dawid-Skene on the real MeerLICHT volunteer votes (DEV split)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from realbogus.crowd import aggregate, prepare_votes
from realbogus.crowd.accuracy import label_accuracy, reference_split


@pytest.fixture(scope="module")
def meerlicht(shared_data):
    votes = pd.read_csv(shared_data / "crowd/meerlicht/votes.csv", index_col="transientid")
    truth = pd.read_csv(shared_data / "crowd/meerlicht/consensus.csv", index_col="transientid")[
        "label"
    ]
    return votes, truth.loc[votes.index]


def _long(votes, seed):
    rng = np.random.default_rng([seed, 1])
    order = rng.permutation(len(votes))
    wide = votes.iloc[order]
    out = wide.reset_index().melt(id_vars="transientid", var_name="volunteer", value_name="vote")
    out["rank"] = np.tile(np.arange(len(wide)), votes.shape[1])
    return out.sort_values(["rank", "volunteer"], kind="mergesort").rename(
        columns={"transientid": "subject_id"}
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_swap_at_least_majority_on_held_out(meerlicht, seed):
    """20 % of the consensus as reference; on the held-out 80 %, SWAP's label sets are at least
    as accurate (balanced) as majority vote's and cover more candidates."""
    votes, truth = meerlicht
    ref = reference_split(truth.index.to_numpy(), fraction=0.2, seed=seed)
    pv = prepare_votes(_long(votes, seed), truth[ref])
    held = truth[~ref]
    sw = label_accuracy(aggregate(pv, method="swap").subjects, held)
    mv = label_accuracy(aggregate(pv, method="majority").subjects, held)
    ds = label_accuracy(aggregate(pv, method="dawid-skene").subjects, held)
    for label_set in ("unstable", "stable"):
        assert sw.loc[label_set, "balanced_accuracy"] >= mv.loc[label_set, "balanced_accuracy"]
        assert sw.loc[label_set, "coverage"] > mv.loc[label_set, "coverage"]
        assert ds.loc[label_set, "balanced_accuracy"] > 0.99
    assert sw.loc["all", "balanced_accuracy"] > 0.995 and sw.loc["all", "coverage"] > 0.99
    vols = aggregate(pv, method="swap").volunteers
    assert (vols["n_reference"] > 300).all() and (vols["skill_bits"] > 0.3).all()
