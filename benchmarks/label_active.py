"""Active learning in the labelling queue, measured with the simulated crowd (issue 22).

A simulated Rubin survey (`realbogus.sim`) is split by field into a pool (to be labelled) and a
test set. Both arms start from the same seeded random --seed-subjects pool subjects. Each round
the queue picks --batch more pool subjects, either by BALD from MC dropout of the current model
(`realbogus.label.queue.mc_dropout_model`: the service's ``bald`` strategy) or at random (the
``random`` strategy); `realbogus.crowd.simulate` volunteers classify them under the DMTN-337
retirement rule (2 agreeing, else 7) and SWAP (`crowd.aggregate`) turns their votes into labels
(Pr(Real) > 0.5). The crowd (200 volunteers, `CrowdConfig` defaults otherwise) is simulated once
per repeat over the whole pool, so the same volunteers answer every round; 10 % of the pool are
gold subjects (never picked; their votes are revealed, counted and used by SWAP from the start,
and their true labels train the model in both arms). A DMTN-337 CNN is then trained on every label so far (same seeded start
weights, --epochs epochs, Adam, flips, asinh-noise inputs) and scored on the test set: P = C
(`realbogus.metrics.crossing`). The x axis is the number of crowd classifications spent.

Prints one JSON object (curves, classifications needed to reach the random arm's final P = C,
load average) and, with --plot, writes the curve as a PNG.

    python benchmarks/label_active.py [--visits 30 --rounds 8 --batch 150 --repeats 2 --plot docs/labelling-active.png]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from realbogus.crowd.aggregate import aggregate
from realbogus.crowd.simulate import CrowdConfig, simulate_crowd
from realbogus.evaluation.metrics import crossing, purity_completeness
from realbogus.io.dataset import open_dataset
from realbogus.label.queue import mc_dropout_model
from realbogus.model.network import build_model
from realbogus.model.transforms import preprocess_pixels
from realbogus.sim import simulate_survey
from realbogus.training.train import robust_channel_scale


def _crowd_labels(crowd, chosen_ids: np.ndarray) -> tuple[np.ndarray, int]:
    """SWAP labels of the chosen subjects from the votes revealed so far: every vote on a chosen
    or gold subject (the same persistent volunteers throughout, so SWAP learns their skill from
    the gold subjects as the live service does). Returns labels (NaN where Pr = 0.5) and the
    number of classifications spent."""
    votes = crowd.clean_votes
    gold = crowd.gold
    shown = votes[votes["subject_id"].isin(chosen_ids) | votes["subject_id"].isin(gold.index)]
    labels = aggregate(shown, gold, method="swap").subjects.set_index("subject_id")
    p = labels["p_real"].reindex(chosen_ids).to_numpy()
    y = np.where(p > 0.5, 1.0, np.where(p < 0.5, 0.0, np.nan))
    return y, len(shown)


def _train(
    stamps: np.ndarray,
    y: np.ndarray,
    prepare,
    *,
    init: dict,
    epochs: int,
    seed: int,
) -> torch.nn.Module:
    model = build_model("dmtn337-cnn", stamps.shape[-1])
    model.load_state_dict(init)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng([seed, 7])
    x_all = torch.from_numpy(prepare(stamps))
    t_all = torch.from_numpy(y.astype(np.float32))
    loss_fn = torch.nn.BCEWithLogitsLoss()
    model.train()
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for start in range(0, len(y), 64):
            idx = torch.from_numpy(order[start : start + 64])
            xb = x_all[idx]
            if rng.random() < 0.5:
                xb = torch.flip(xb, dims=[3])
            if rng.random() < 0.5:
                xb = torch.flip(xb, dims=[2])
            opt.zero_grad()
            loss = loss_fn(model.logits(xb), t_all[idx])
            loss.backward()
            opt.step()
    return model.eval()


def _pc(model: torch.nn.Module, x: torch.Tensor, y: np.ndarray) -> float:
    with torch.inference_mode():
        s = model(x).numpy()
    c = crossing(purity_completeness(y, s))
    return float("nan") if c is None else c.value


def run_arm(
    strategy: str,
    table: pd.DataFrame,
    stamps: np.ndarray,
    pool: np.ndarray,
    test: np.ndarray,
    *,
    prepare,
    args: argparse.Namespace,
    repeat: int,
) -> list[dict]:
    """One arm (``bald`` or ``random``): P = C after each round against classifications."""
    torch.manual_seed(1000 + repeat)
    init = build_model("dmtn337-cnn", stamps.shape[-1]).state_dict()
    rng = np.random.default_rng([repeat, 3])
    crowd = simulate_crowd(
        table.iloc[pool].reset_index(drop=True),
        config=CrowdConfig(n_volunteers=200, reference_fraction=0.1, reference_rate=0.05),
        seed=repeat,
    )
    sid = crowd.subjects["subject_id"].to_numpy()  # row i of the pool
    is_gold = crowd.subjects["reference"].to_numpy()
    gold_rows = pool[is_gold]
    candidates = pool[~is_gold]
    row_to_sid = dict(zip(pool.tolist(), sid.tolist(), strict=True))
    truth_all = table["label"].to_numpy()

    def labels_for(rows: np.ndarray) -> tuple[np.ndarray, int]:
        y, n = _crowd_labels(crowd, np.array([row_to_sid[r] for r in rows]))
        return y, n

    chosen = rng.choice(candidates, args.seed_subjects, replace=False)
    y_chosen, n_votes = labels_for(chosen)
    x_test = torch.from_numpy(prepare(stamps[test]))
    y_test = table["label"].to_numpy()[test].astype(int)
    curve = []
    for rnd in range(args.rounds + 1):
        ok = np.isfinite(y_chosen)
        train_rows = np.concatenate([chosen[ok], gold_rows])
        train_y = np.concatenate([y_chosen[ok], truth_all[gold_rows]])
        model = _train(
            stamps[train_rows], train_y, prepare, init=init, epochs=args.epochs, seed=repeat
        )
        truth = truth_all[chosen[ok]]
        curve.append(
            {
                "arm": strategy,
                "repeat": repeat,
                "round": rnd,
                "subjects": len(chosen),
                "gold": len(gold_rows),
                "classifications": int(n_votes),
                "pc": round(_pc(model, x_test, y_test), 4),
                "label_accuracy": round(float((y_chosen[ok] == truth).mean()), 4),
                "real_fraction": round(float(y_chosen[ok].mean()), 3),
            }
        )
        print(json.dumps(curve[-1]), file=sys.stderr, flush=True)  # noqa: T201 - progress
        if rnd == args.rounds:
            break
        left = np.setdiff1d(candidates, chosen)
        if strategy == "random":
            pick = rng.choice(left, args.batch, replace=False)
        else:
            mc = mc_dropout_model(
                model, stamps[left], prepare=prepare, n_samples=args.mc_samples, seed=rnd
            )
            pick = left[np.argsort(-mc.bald, kind="stable")[: args.batch]]
        chosen = np.concatenate([chosen, pick])
        y_chosen, n_votes = labels_for(chosen)
    return curve


def _needed(curve: list[dict], target: float) -> float:
    """Classifications at which P = C first reaches `target` (linear between rounds)."""
    prev = None
    for point in curve:
        if point["pc"] >= target:
            if prev is None:
                return float(point["classifications"])
            f = (target - prev["pc"]) / (point["pc"] - prev["pc"])
            return prev["classifications"] + f * (
                point["classifications"] - prev["classifications"]
            )
        prev = point
    return float("nan")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="an existing simulated dataset (else simulate)")
    ap.add_argument("--visits", type=int, default=30)
    ap.add_argument("--sim-seed", type=int, default=21)
    ap.add_argument("--seed-subjects", type=int, default=100)
    ap.add_argument("--batch", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--mc-samples", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--test-fraction", type=float, default=0.3)
    ap.add_argument("--max-pool", type=int, default=2000, help="seeded subsample of the pool")
    ap.add_argument("--max-test", type=int, default=1000, help="seeded subsample of the test set")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--plot", type=Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.monotonic()
    data = args.data
    if data is None or not data.exists():
        data = simulate_survey(
            None,
            n_visits=args.visits,
            seed=args.sim_seed,
            out=data or Path("/tmp") / f"label-active-sim-{args.sim_seed}-{args.visits}",
            workers=1,
            preview=False,
        )
    ds = open_dataset(data)
    table = ds.table()
    stamps = np.ascontiguousarray(ds.stamps().data)
    keep = table["label"].notna().to_numpy()
    table, stamps = table[keep].reset_index(drop=True), stamps[keep]
    fields = table["field"].to_numpy()
    frng = np.random.default_rng(5)
    uniq = np.unique(fields)
    test_fields = frng.choice(
        uniq, max(1, int(round(args.test_fraction * len(uniq)))), replace=False
    )
    is_test = np.isin(fields, test_fields)
    pool, test = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    pool = np.sort(frng.choice(pool, min(args.max_pool, len(pool)), replace=False))
    test = np.sort(frng.choice(test, min(args.max_test, len(test)), replace=False))
    scale = robust_channel_scale(stamps, pool)

    def prepare(x: np.ndarray) -> np.ndarray:
        return preprocess_pixels(x, "asinh-noise", scale)

    result: dict = {
        "data": str(data),
        "detections": len(table),
        "pool": len(pool),
        "test": len(test),
        "test_real_fraction": round(float(table["label"].to_numpy()[test].mean()), 3),
        "args": {k: str(v) for k, v in vars(args).items()},
        "arms": {"bald": [], "random": []},
    }
    for repeat in range(args.repeats):
        for arm in ("bald", "random"):
            result["arms"][arm].append(
                run_arm(arm, table, stamps, pool, test, prepare=prepare, args=args, repeat=repeat)
            )
    summary = []
    for repeat in range(args.repeats):
        rnd_curve, al_curve = result["arms"]["random"][repeat], result["arms"]["bald"][repeat]
        target = rnd_curve[-1]["pc"]
        need_random, need_bald = _needed(rnd_curve, target), _needed(al_curve, target)
        summary.append(
            {
                "repeat": repeat,
                "target_pc": target,
                "random_classifications": round(need_random, 1),
                "bald_classifications": round(need_bald, 1),
                "saving": round(1 - need_bald / need_random, 3),
            }
        )
    result["summary"] = summary
    result["cpu_s"] = round(time.process_time(), 1)
    result["wall_s"] = round(time.monotonic() - t0, 1)
    result["load_average"] = os.getloadavg()
    result["cpus"] = os.cpu_count()
    text = json.dumps(result, indent=1)
    print(text)  # noqa: T201 - a benchmark's report
    if args.out:
        args.out.write_text(text)
    if args.plot:
        _plot(result, args.plot)
    return result


def _plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for arm, color in (("bald", "tab:blue"), ("random", "tab:orange")):
        for i, curve in enumerate(result["arms"][arm]):
            ax.plot(
                [p["classifications"] for p in curve],
                [p["pc"] for p in curve],
                "o-",
                color=color,
                alpha=0.9 if i == 0 else 0.5,
                label=f"{arm} (repeat {i})",
            )
    ax.set_xlabel("crowd classifications (simulated volunteers)")
    ax.set_ylabel("P = C on the test fields")
    ax.set_title("Active (BALD, MC dropout) vs random queue order")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
