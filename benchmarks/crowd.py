"""Aggregation speed: SWAP (online and offline), majority vote and Dawid-Skene on 1,000,000
simulated classifications of 250,000 subjects by 4,000 volunteers (issue 6 target: SWAP <= 20 s
on 2 cores).

The crowd comes from `realbogus.crowd.simulate` (retire at 2 if the first two agree, else 7;
heavy-tailed activity; 5 % reference subjects plus feedback views); surplus feedback views are
dropped at random to leave exactly 1,000,000 classifications. Times are wall-clock, best of `--repeat`, and include
`prepare_votes` (validation, time ordering, integer encoding) where marked.

    PYTHONPATH=src python benchmarks/crowd.py [--classifications 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from realbogus.crowd import aggregate, prepare_votes
from realbogus.crowd.accuracy import label_accuracy
from realbogus.crowd.core import grouped_cumsum, scatter
from realbogus.crowd.panoptes import read_classifications
from realbogus.crowd.simulate import CrowdConfig, SimulatedCrowd, simulate_crowd, write_export


def best_of(repeat: int, func) -> tuple[float, object]:
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = func()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classifications", type=int, default=1_000_000)
    parser.add_argument("--subjects", type=int, default=250_000)
    parser.add_argument("--volunteers", type=int, default=4_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--export-rows",
        type=int,
        default=100_000,
        help="also time writing and parsing a Panoptes export of this many rows (0 = skip)",
    )
    args = parser.parse_args()

    rng = np.random.default_rng([args.seed, 99])
    n = args.subjects
    table = pd.DataFrame(
        {
            "diaSourceId": np.arange(n),
            "label": rng.integers(0, 2, n),
            "snr": rng.lognormal(2.3, 0.6, n),
            "origin": "sim",
        }
    )
    t0 = time.perf_counter()
    config = CrowdConfig(n_volunteers=args.volunteers, reference_rate=0.05, repeat_rate=0.0)
    sim = simulate_crowd(table, config=config, seed=args.seed)
    t_sim = time.perf_counter() - t0
    votes = sim.votes
    extra = len(votes) - args.classifications
    if extra > 0:  # drop surplus feedback views at random (every subject stays), else the latest
        fb = np.flatnonzero(votes["feedback_view"].to_numpy())
        drop = rng.choice(fb, min(extra, len(fb)), replace=False)
        votes = votes.drop(index=votes.index[drop]).iloc[: args.classifications]
    if len(votes) < args.classifications:
        raise SystemExit(f"the simulation gave only {len(votes)} classifications")
    gold = sim.gold
    truth = sim.subjects.set_index("subject_id")["truth"]

    t_prep, pv = best_of(args.repeat, lambda: prepare_votes(votes, gold))
    rows = [("prepare_votes (sort, encode)", t_prep, None)]
    cases = [
        ("swap online (DMTN defaults)", "swap", {}),
        ("swap online, gamma = 1", "swap", {"pseudo_count": 1.0}),
        ("swap offline (EM)", "swap", {"mode": "offline"}),
        ("majority vote", "majority", {}),
        ("dawid-skene (gold clamped)", "dawid-skene", {}),
    ]
    quality = []
    held_truth = truth[~sim.subjects.set_index("subject_id")["reference"]]
    held_truth = held_truth[held_truth.index.isin(votes["subject_id"])]
    for name, method, opts in cases:
        t, labels = best_of(args.repeat, lambda m=method, o=opts: aggregate(pv, method=m, **o))
        s = labels.subjects
        held = s[s["reference"].isna() & s["label"].notna()]
        acc = float(
            (
                held["label"].astype(int).to_numpy() == truth.loc[held["subject_id"]].to_numpy()
            ).mean()
        )
        rows.append((name, t, acc))
        for label_set, r in label_accuracy(s, held_truth).iterrows():
            quality.append((name, label_set, r["coverage"], r["accuracy"], r["balanced_accuracy"]))
    t_e2e, _ = best_of(args.repeat, lambda: aggregate(votes, gold, method="swap"))
    rows.insert(2, ("swap online incl. prepare_votes", t_e2e, None))

    if args.export_rows:
        part = votes.iloc[: args.export_rows]
        small = SimulatedCrowd(
            votes=part,
            subjects=sim.subjects[sim.subjects["subject_id"].isin(part["subject_id"])],
            volunteers=sim.volunteers,
            config=sim.config,
        )
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "export.csv"
            t0 = time.perf_counter()
            write_export(small, path)
            rows.append(
                (
                    f"write_export ({len(part):,} rows, {path.stat().st_size / 1e6:.0f} MB)",
                    time.perf_counter() - t0,
                    None,
                )
            )
            t_parse, parsed = best_of(1, lambda: read_classifications(path))
            rows.append((f"read_classifications ({len(part):,} rows)", t_parse, None))
            assert len(parsed.votes) == len(part)

    print(
        f"{len(votes):,} classifications, {votes['subject_id'].nunique():,} subjects, "
        f"{votes['volunteer'].nunique():,} volunteers, {len(gold):,} reference subjects "
        f"(simulated in {t_sim:.1f} s)"
    )
    isref = (pv.gold[pv.s] >= 0).astype(float)
    order, before = grouped_cumsum(pv.v, isref, exclusive=True)
    n_ref = np.bincount(pv.v, weights=isref, minlength=pv.n_volunteers)
    print(
        f"votes cast before the volunteer's first reference answer: {np.mean(scatter(order, before) == 0):.3f}; "
        f"median reference answers per volunteer: {np.median(n_ref):.0f}"
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs visible, numpy {np.__version__}; best of {args.repeat}"
    )
    print(f"{'step':46s} {'seconds':>8s} {'accuracy (held-out, labelled)':>30s}")
    for name, t, acc in rows:
        print(f"{name:46s} {t:8.2f} {'' if acc is None else f'{acc:.3f}':>30s}")
    print("\nlabel quality on the held-out (non-reference) subjects vs simulation truth")
    print(f"{'method':30s} {'set':9s} {'coverage':>9s} {'accuracy':>9s} {'bal. acc':>9s}")
    for name, label_set, cov, acc, bal in quality:
        print(f"{name:30s} {label_set:9s} {cov:9.3f} {acc:9.3f} {bal:9.3f}")


if __name__ == "__main__":
    main()
