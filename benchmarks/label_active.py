"""Active learning in the labelling queue, measured with the simulated crowd (issue 22).

The realistic use of a labelling service: a team starts from a PRETRAINED built-in package
(--model, default rubin-v0.1) and fine-tunes it on crowd labels of a domain it is weak on. The
pool is one real-image injection dataset (--pool: SAAO injections of three nights, labelled
truth) and the test set another that shares no night with it (--test: the 19 other nights);
both are seeded subsamples (--max-pool, --max-test). Without --pool a simulated Rubin survey is
split by field instead.

Per repeat (--repeats; the repeat seeds the crowd, the gold subjects and the start subjects):
one simulated crowd (`realbogus.crowd.simulate`; --crowd: ``team``, 30 volunteers, 30 % experts,
50 % good, 20 % noisy, or ``zooniverse``, the `CrowdConfig` defaults; both with faint Reals
called Bogus more often, a subject retired after 2 agreeing votes else 7, 5 % gold) classifies the whole pool once, so every arm meets the same volunteers and a
subject costs the same votes in every arm. The gold subjects are never picked: their votes are
revealed and counted from the start and their true labels train every arm. Every arm starts from
the same --seed-subjects random subjects; each of --rounds rounds adds --batch subjects in the
arm's queue order (`realbogus.label.queue.static_priority`, the service's own definition of each
strategy: ``likely-real`` (the default), ``bald``, ``entropy`` from MC dropout of the
current fine-tuned model, ``random``; --arms),
and SWAP (`crowd.aggregate`) over all revealed votes labels them (Pr(Real) > 0.5). After each
round the package is fine-tuned from its pretrained weights on every label so far (--epochs,
Adam --lr, batches of 32, flips, class-weighted BCE so that the class mix of a queue does not
move the loss) with --train-seeds seeds, and each fine-tune is scored on the test set: P = C
(`evaluation.metrics.crossing`), averaged over the seeds. The x axis is the number of crowd
classifications revealed (gold included: the same in every arm).

Prints one JSON object (curves, the classifications each arm needs to reach the random arm's
final P = C on the repeat-mean curves, load average) and, with --plot, writes the curve (mean and
min-max band over repeats) as a PNG.

    python benchmarks/label_active.py --plot docs/labelling-active.png
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
from realbogus.label.queue import MC_STRATEGIES, STRATEGIES, mc_dropout_model, static_priority
from realbogus.model.package import load_package
from realbogus.model.transforms import preprocess_array
from realbogus.sim import simulate_survey

SAAO = Path(
    "build/real-images"
)  # DATA_ONLY=1 bash scripts/real_images.sh writes saao-train, saao-heldout

#: The simulated crowds: the issue's own case, a small team of experts and trained vetters who
#: must vet a few thousand detections, and DMTN-337's Zooniverse mix (`CrowdConfig` defaults).
CROWDS = {
    "team": CrowdConfig(n_volunteers=30, kind_fractions={"expert": 0.3, "good": 0.5, "noisy": 0.2}),
    "zooniverse": CrowdConfig(),
}


def _crowd_labels(crowd, chosen_ids: np.ndarray) -> tuple[np.ndarray, int]:
    """SWAP labels of the chosen subjects from the votes revealed so far: every vote on a chosen
    or gold subject (the same persistent volunteers throughout, so SWAP learns their skill from
    the gold subjects as the live service does). Returns labels (NaN where Pr = 0.5) and the
    number of classifications revealed."""
    votes = crowd.clean_votes
    gold = crowd.gold
    shown = votes[votes["subject_id"].isin(chosen_ids) | votes["subject_id"].isin(gold.index)]
    labels = aggregate(shown, gold, method="swap").subjects.set_index("subject_id")
    p = labels["p_real"].reindex(chosen_ids).to_numpy()
    y = np.where(p > 0.5, 1.0, np.where(p < 0.5, 0.0, np.nan))
    return y, len(shown)


def fine_tune(
    init: dict,
    model: torch.nn.Module,
    x: torch.Tensor,
    y: np.ndarray,
    *,
    epochs: int,
    lr: float,
    seed: int,
) -> torch.nn.Module:
    """Fine-tune `model` from the state `init` on prepared stamps x (N, 3, S, S) and labels y (N,)
    in {0, 1}: Adam, batches of 32, random flips, BCE with the Real class weighted by
    n_bogus / n_real. Returns the model in eval mode."""
    model.load_state_dict(init)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng([seed, 7])
    t_all = torch.from_numpy(y.astype(np.float32))
    n_real = max(float(y.sum()), 1.0)
    pos_weight = torch.tensor(max(len(y) - n_real, 1.0) / n_real)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    model.train()
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for start in range(0, len(y), 32):
            idx = torch.from_numpy(order[start : start + 32])
            xb = x[idx]
            if rng.random() < 0.5:
                xb = torch.flip(xb, dims=[3])
            if rng.random() < 0.5:
                xb = torch.flip(xb, dims=[2])
            opt.zero_grad()
            loss_fn(model.logits(xb), t_all[idx]).backward()
            opt.step()
    return model.eval()


def _scores(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return np.concatenate([model(x[i : i + 512]).numpy() for i in range(0, len(x), 512)])


def _pc(scores: np.ndarray, y: np.ndarray) -> float:
    c = crossing(purity_completeness(y, scores))
    return float("nan") if c is None else c.value


def run_arm(
    strategy: str,
    table: pd.DataFrame,
    x_pool: torch.Tensor,
    x_test: torch.Tensor,
    y_test: np.ndarray,
    *,
    package,
    init: dict,
    crowd,
    args: argparse.Namespace,
    repeat: int,
) -> list[dict]:
    """One arm: mean P = C of the fine-tunes after each round against classifications. `init`
    is the pretrained state every fine-tune starts from (taken once, before any arm)."""
    model = package.model
    sid = crowd.subjects["subject_id"].to_numpy()  # pool row i -> subject id
    is_gold = crowd.subjects["reference"].to_numpy()
    gold_rows = np.flatnonzero(is_gold)
    candidates = np.flatnonzero(~is_gold)
    truth = table["label"].to_numpy().astype(int)
    chosen = np.random.default_rng([repeat, 3]).choice(
        candidates, args.seed_subjects, replace=False
    )
    curve = []
    for rnd in range(args.rounds + 1):
        y_chosen, n_votes = _crowd_labels(crowd, sid[chosen])
        ok = np.isfinite(y_chosen)
        rows = np.concatenate([chosen[ok], gold_rows])
        y_train = np.concatenate([y_chosen[ok], truth[gold_rows]])
        pcs = []
        for s in range(args.train_seeds):
            fine_tune(
                init,
                model,
                x_pool[torch.from_numpy(rows)],
                y_train,
                epochs=args.epochs,
                lr=args.lr,
                seed=1000 * repeat + 10 * rnd + s,
            )
            pcs.append(_pc(_scores(model, x_test), y_test))
            if s == 0:
                state0 = {k: v.clone() for k, v in model.state_dict().items()}
        curve.append(
            {
                "arm": strategy,
                "repeat": repeat,
                "round": rnd,
                "subjects": len(chosen),
                "classifications": int(n_votes),
                "pc": round(float(np.mean(pcs)), 4),
                "pc_seeds": [round(p, 4) for p in pcs],
                "label_accuracy": round(float((y_chosen[ok] == truth[chosen[ok]]).mean()), 4),
                "real_fraction": round(float(y_chosen[ok].mean()), 3),
                "true_real_fraction": round(float(truth[chosen].mean()), 3),
            }
        )
        print(json.dumps(curve[-1]), file=sys.stderr, flush=True)  # noqa: T201 - progress
        if rnd == args.rounds:
            break
        left = np.setdiff1d(candidates, chosen)
        mc = None
        if strategy in MC_STRATEGIES:
            model.load_state_dict(state0)  # the first seed's fine-tune serves the queue
            mc = mc_dropout_model(
                model,
                x_pool[torch.from_numpy(left)].numpy(),
                prepare=lambda b: b,
                n_samples=args.mc_samples,
                seed=rnd,
            )
        priority = static_priority(strategy, table.iloc[left], mc=mc, seed=1000 * repeat + rnd)
        pick = left[np.argsort(-priority, kind="stable")[: args.batch]]
        chosen = np.concatenate([chosen, pick])
    return curve


def needed(xs: np.ndarray, ys: np.ndarray, target: float) -> float:
    """Classifications at which a curve (xs ascending, ys) first reaches `target`, linear
    between points; NaN if it never does."""
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        if y >= target:
            if i == 0:
                return float(x)
            f = (target - ys[i - 1]) / (y - ys[i - 1])
            return float(xs[i - 1] + f * (x - xs[i - 1]))
    return float("nan")


def _data(args: argparse.Namespace):
    """(pool table, pool stamps, test table, test stamps) as seeded subsamples."""
    rng = np.random.default_rng(5)
    if args.pool is not None:
        pool_ds, test_ds = open_dataset(args.pool), open_dataset(args.test)
        tp, sp = pool_ds.table(), pool_ds.stamps().data
        tt, st = test_ds.table(), test_ds.stamps().data
    else:
        data = args.data or Path("build") / f"label-active-sim-{args.sim_seed}-{args.visits}"
        if not data.exists():
            simulate_survey(
                None, n_visits=args.visits, seed=args.sim_seed, out=data, workers=1, preview=False
            )
        ds = open_dataset(data)
        table, stamps = ds.table(), ds.stamps().data
        uniq = np.unique(table["field"])
        test_fields = rng.choice(uniq, max(1, round(0.3 * len(uniq))), replace=False)
        is_test = table["field"].isin(test_fields).to_numpy()
        tp, sp, tt, st = table[~is_test], stamps[~is_test], table[is_test], stamps[is_test]
    keep_p = np.flatnonzero(tp["label"].notna().to_numpy())
    keep_t = np.flatnonzero(tt["label"].notna().to_numpy())
    keep_p = np.sort(rng.choice(keep_p, min(args.max_pool, len(keep_p)), replace=False))
    keep_t = np.sort(rng.choice(keep_t, min(args.max_test, len(keep_t)), replace=False))
    return (
        tp.iloc[keep_p].reset_index(drop=True),
        np.nan_to_num(sp[keep_p]),
        tt.iloc[keep_t].reset_index(drop=True),
        np.nan_to_num(st[keep_t]),
    )


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="rubin-v0.1", help="pretrained package to fine-tune")
    ap.add_argument("--pool", type=Path, default=SAAO / "saao-train" if SAAO.exists() else None)
    ap.add_argument("--test", type=Path, default=SAAO / "saao-heldout")
    ap.add_argument("--data", type=Path, help="without --pool: a simulated dataset (else simulate)")
    ap.add_argument("--visits", type=int, default=30)
    ap.add_argument("--sim-seed", type=int, default=21)
    ap.add_argument("--arms", default="likely-real,random", help="comma-separated queue strategies")
    ap.add_argument("--crowd", choices=sorted(CROWDS), default="team")
    ap.add_argument("--seed-subjects", type=int, default=200)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--train-seeds", type=int, default=1)
    ap.add_argument("--mc-samples", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--first-repeat", type=int, default=0)
    ap.add_argument("--max-pool", type=int, default=3000, help="seeded subsample of the pool")
    ap.add_argument("--max-test", type=int, default=2000, help="seeded subsample of the test")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--plot", type=Path)
    args = ap.parse_args(argv)
    arms = args.arms.split(",")
    bad = [a for a in arms if a not in STRATEGIES or a in ("swap", "ensemble")]
    if bad:
        ap.error(f"--arms: random and any of {', '.join(MC_STRATEGIES)}; got {args.arms!r}")
    torch.set_num_threads(int(os.environ.get("AL_THREADS", "1")))
    t0 = time.monotonic()
    table, sp, ttest, st = _data(args)
    package = load_package(args.model)
    init = {k: v.clone() for k, v in package.model.state_dict().items()}
    x_pool = torch.from_numpy(np.ascontiguousarray(preprocess_array(package.card, sp)))
    x_test = torch.from_numpy(np.ascontiguousarray(preprocess_array(package.card, st)))
    y_test = ttest["label"].to_numpy().astype(int)
    result: dict = {
        "model": args.model,
        "pool": len(table),
        "pool_real_fraction": round(float(table["label"].mean()), 3),
        "test": len(ttest),
        "test_real_fraction": round(float(y_test.mean()), 3),
        "pretrained_pc": round(_pc(_scores(package.model.eval(), x_test), y_test), 4),
        "args": {k: str(v) for k, v in vars(args).items()},
        "arms": {a: [] for a in arms},
    }
    for repeat in range(args.first_repeat, args.first_repeat + args.repeats):
        crowd = simulate_crowd(table, config=CROWDS[args.crowd], seed=repeat)
        for arm in arms:
            result["arms"][arm].append(
                run_arm(
                    arm,
                    table,
                    x_pool,
                    x_test,
                    y_test,
                    package=package,
                    init=init,
                    crowd=crowd,
                    args=args,
                    repeat=repeat,
                )
            )
    result["summary"] = summarise(result["arms"]) if "random" in arms else None
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


def _mean_curve(curves: list[list[dict]]) -> tuple[np.ndarray, np.ndarray]:
    xs = np.array([[p["classifications"] for p in c] for c in curves], dtype=float)
    ys = np.array([[p["pc"] for p in c] for c in curves], dtype=float)
    return xs.mean(axis=0), ys.mean(axis=0)


def summarise(arms: dict[str, list[list[dict]]]) -> dict:
    """Classifications each arm needs to reach the random arm's final P = C, on the curves
    averaged over repeats (round by round), and the saving against random."""
    rx, ry = _mean_curve(arms["random"])
    target = float(ry[-1])
    need_random = needed(rx, ry, target)
    out = {"target_pc": round(target, 4), "random_classifications": round(need_random, 1)}
    for arm, curves in arms.items():
        x, y = _mean_curve(curves)
        out[arm] = {
            "mean_classifications": [round(v, 1) for v in x],
            "mean_pc": [round(v, 4) for v in y],
            "classifications_to_target": round(needed(x, y, target), 1),
            "saving": round(1 - needed(x, y, target) / need_random, 3),
        }
    return out


def _plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    colors = {
        "bald": "tab:blue",
        "entropy": "tab:green",
        "likely-real": "tab:red",
        "random": "tab:orange",
    }
    for arm, curves in result["arms"].items():
        x, y = _mean_curve(curves)
        ys = np.array([[p["pc"] for p in c] for c in curves], dtype=float)
        color = colors.get(arm, "tab:gray")
        ax.fill_between(x, ys.min(axis=0), ys.max(axis=0), color=color, alpha=0.2)
        ax.plot(x, y, "o-", color=color, label=f"{arm} (mean of {len(curves)} repeats)")
    ax.axhline(result["pretrained_pc"], color="k", ls=":", lw=1, label="pretrained, no labels")
    ax.set_xlabel("crowd classifications (simulated volunteers, gold included)")
    ax.set_ylabel("P = C on the test set")
    ax.set_title(f"Fine-tuning {result['model']}: queue order vs random (band: min-max)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
