"""SWAP vs majority vote vs Dawid-Skene on the real MeerLICHT volunteer votes (issue 6).

10 volunteers voted on every MeerLICHT candidate; the published latent-class consensus is the
truth. A seeded 20 % of the candidates is the reference set (their consensus label is given to
the aggregators); all numbers are on the other 80 %, which no aggregator sees labels of. The
votes carry no timestamps: classifications are ordered candidate by candidate in a seeded
random order (volunteer order within a candidate shuffled too), which is what online SWAP's
running PL/PD depend on.

    PYTHONPATH=src python benchmarks/meerlicht.py [--data ../shared/data] [--seeds 0 1 2 3 4]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from realbogus.crowd import aggregate, prepare_votes
from realbogus.crowd.accuracy import label_accuracy, reference_split

METHODS = {
    "swap (DMTN defaults)": ("swap", {}),
    "swap gamma=1": ("swap", {"pseudo_count": 1.0}),
    "swap offline": ("swap", {"mode": "offline"}),
    "majority": ("majority", {}),
    "dawid-skene": ("dawid-skene", {}),
}


def load(data: Path) -> tuple[pd.DataFrame, pd.Series]:
    votes = pd.read_csv(data / "crowd/meerlicht/votes.csv", index_col="transientid")
    truth = pd.read_csv(data / "crowd/meerlicht/consensus.csv", index_col="transientid")["label"]
    return votes, truth.loc[votes.index]


def long_votes(votes: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng([seed, 1])
    cand = votes.index.to_numpy()[rng.permutation(len(votes))]
    frames = []
    for tid in cand:
        row = votes.loc[tid]
        order = rng.permutation(len(row))
        frames.append(
            pd.DataFrame(
                {
                    "volunteer": row.index.to_numpy()[order],
                    "subject_id": tid,
                    "vote": row.to_numpy()[order],
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)
    out["classification_id"] = np.arange(len(out))
    return out


def run(data: Path, seeds: list[int]) -> pd.DataFrame:
    votes, truth = load(data)
    rows = []
    for seed in seeds:
        ref = reference_split(truth.index.to_numpy(), fraction=0.2, seed=seed)
        gold, held = truth[ref], truth[~ref]
        pv = prepare_votes(long_votes(votes, seed), gold)
        for name, (method, opts) in METHODS.items():
            scores = label_accuracy(aggregate(pv, method=method, **opts).subjects, held)
            for label_set, r in scores.iterrows():
                rows.append({"seed": seed, "method": name, "set": label_set, **r.to_dict()})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = parser.parse_args()
    table = run(args.data, args.seeds)
    summary = table.groupby(["set", "method"], sort=False)[
        ["coverage", "accuracy", "balanced_accuracy"]
    ].agg(["mean", "std"])
    pd.set_option("display.width", 160)
    print(
        f"MeerLICHT DEV votes, 20 % reference, held-out candidates; seeds {args.seeds} (mean, std)"
    )
    print(summary.round(4).to_string())
    votes, truth = load(args.data)
    for seed in args.seeds:
        ref = reference_split(truth.index.to_numpy(), fraction=0.2, seed=seed)
        held = truth[~ref]
        s = aggregate(prepare_votes(long_votes(votes, seed), truth[ref]), method="swap").subjects
        s = s.set_index("subject_id").loc[held.index]
        tie = (votes.loc[held.index].sum(axis=1) * 2 == votes.shape[1]).to_numpy()
        right = (
            s["label"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)[tie]
            == held.to_numpy()[tie]
        ).sum()
        print(
            f"seed {seed}: {tie.sum()} held-out 5-5 ties (majority abstains); SWAP labels "
            f"{int(s['label'].notna().to_numpy()[tie].sum())}, {int(right)} agree with the consensus"
        )


if __name__ == "__main__":
    main()
