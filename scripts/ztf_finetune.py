"""Fine-tune a ZTF model on samples made from real alert cutouts plus its simulated training data,
and measure it on the real ZTF alerts without ever scoring an alert with a model that saw its cutout.

    python scripts/ztf_finetune.py [--samples stars|alerts] [--model ztf-v0.1] [--sim build/ztf-v0.1-train] \\
        [--sim-query QUERY] [--alerts ../shared/data/ztf/alerts] [--out build/ztf-stars] [--epochs 3] \\
        [--copies 8] [--folds 2]

`--samples stars`: the field stars of the cutouts, as they are (Bogus) and made variable (Real).
`--samples alerts`: the alerts themselves, labelled by braai (drb >= 0.5 Real; alerts within 2" of
a known asteroid Real whatever drb says; alerts without drb left out), `--copies` times each:
a distillation of braai, to see whether the DEV labels teach what the simulation does not.

Cross-fitting: the alerts are split in `--folds` folds by sha1(objectId) (as the data's DEV/hold-out
split); the model fine-tuned on the samples of the other folds' cutouts scores a fold's alerts.
The ROC AUC against braai's drb >= 0.5 and the recall on known-asteroid alerts (ssdistnr <= 2")
at the model's cutoff are computed on all alerts so scored, beside the parent's on the same
alerts. Then the final model is fine-tuned on the samples of every cutout (`OUT/final`).
`realbogus.alerts.stars` says how star samples are made; `--copies` draws that many injections per
star (each with its own SNR and sign), or repeats each labelled alert that many times.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from realbogus.alerts import read_alerts
from realbogus.alerts.stars import find_stars, star_samples
from realbogus.alerts.units import to_units
from realbogus.evaluation.metrics import roc_auc
from realbogus.inference.scorer import Scorer
from realbogus.io.dataset import concat_datasets, open_dataset, write_dataset
from realbogus.model.package import load_package
from realbogus.stamps import Stamps
from realbogus.training.train import TrainConfig, train

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def fold_of(object_id: str, folds: int) -> int:
    return int(hashlib.sha1(str(object_id).encode()).hexdigest(), 16) % folds


def star_dataset(
    stamps: np.ndarray, objects: np.ndarray, keep: np.ndarray, out: Path, copies: int
) -> Path:
    """Star samples of the cutouts `keep`, `copies` injections each, as a dataset at `out`."""
    stars = find_stars(stamps)
    stars = stars[keep[stars["cutout"].to_numpy()]].reset_index(drop=True)
    tables, pieces = [], []
    for seed in range(copies):
        table, samples = star_samples(stamps, stars, size=stamps.shape[-1], seed=seed)
        tables.append(table)
        pieces.append(samples)
    table = pd.concat(tables, ignore_index=True)
    # One split group per object, far from the simulation's field numbers.
    table["field"] = 10_000_000 + np.array(
        [fold_of(o, 1_000_000) for o in objects[table["cutout"]]], np.int64
    )
    table["origin"] = "real-star"
    table["survey"] = "ztf"
    samples = Stamps.concat(pieces, stamps.shape[-1])
    return write_dataset(
        out,
        table,
        samples,
        provenance={"pixel_units": "nJy", "source": "ztf alert field stars"},
        overwrite=True,
    )


def alert_dataset(
    stamps: Stamps,
    objects: np.ndarray,
    labels: np.ndarray,
    keep: np.ndarray,
    out: Path,
    copies: int,
) -> Path:
    """The alerts `keep` with their `labels` (1 Real, 0 Bogus, -1 unlabelled: left out), `copies` times each."""
    rows = np.flatnonzero(keep & (labels >= 0))
    table = pd.DataFrame(
        {
            "label": np.repeat(labels[rows], copies),
            "field": np.repeat(
                10_000_000 + np.array([fold_of(o, 1_000_000) for o in objects[rows]], np.int64),
                copies,
            ),
            "origin": "real-alert",
            "survey": "ztf",
        }
    )
    samples = Stamps.concat(
        [Stamps(stamps.data[rows], stamps.valid_fraction[rows], stamps.edge[rows])] * copies,
        stamps.data.shape[-1],
    )
    return write_dataset(
        out,
        table,
        samples,
        provenance={"pixel_units": "nJy", "source": "ztf alerts labelled by drb"},
        overwrite=True,
    )


def fine_tune(
    parent: str, sim: Path, sim_query: str | None, real: Path, out: Path, epochs: int
) -> Path:
    mixed = out.with_name(out.name + "-data")
    shutil.rmtree(mixed, ignore_errors=True)
    concat_datasets(
        [(open_dataset(sim), sim_query), (open_dataset(real), None)],
        mixed,
        provenance={"pixel_units": "nJy"},
    )
    config = TrainConfig(
        epochs=epochs,
        lr=1e-4,
        weight_decay=1e-3,
        patience=epochs,
        seed=3,
        lr_schedule="cosine",
        mask_augment=0.15,
    )
    try:
        return train(mixed, out, config=config, parent=parent, name="ztf", version=out.name)
    finally:
        shutil.rmtree(mixed, ignore_errors=True)  # a copy of the simulation: gigabytes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", choices=["stars", "alerts"], default="stars")
    parser.add_argument("--model", default="ztf-v0.1")
    parser.add_argument("--sim", type=Path, default=Path("build/ztf-v0.1-train"))
    parser.add_argument(
        "--sim-query",
        default=None,
        help="rows of --sim to mix in (pandas query), e.g. 'field %% 3 == 0'",
    )
    parser.add_argument("--alerts", type=Path, default=DATA / "ztf" / "alerts")
    parser.add_argument("--out", type=Path, default=None, help="default build/ztf-SAMPLES")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--folds", type=int, default=2)
    args = parser.parse_args()
    out = args.out or Path(f"build/ztf-{args.samples}")
    parent = load_package(args.model)
    batch = read_alerts(
        sorted(args.alerts.glob("*.avro")), stamp_size=parent.card.stamp_size, workers=None
    )
    batch, refused = to_units(batch, parent.card.pixel_units, parent.card.version)
    objects = batch.table["objectId"].astype(str).to_numpy()
    drb = batch.table["drb"].to_numpy(float, na_value=np.nan)
    ssd = batch.table["ssdistnr"].to_numpy(float, na_value=np.nan)
    has = np.isfinite(drb)
    asteroid = (ssd >= 0) & (ssd <= 2)
    labels = np.where(asteroid, 1, np.where(has, (drb >= 0.5).astype(int), -1))

    def samples(keep: np.ndarray, path: Path) -> Path:
        if args.samples == "stars":
            return star_dataset(batch.stamps.data, objects, keep, path, args.copies)
        return alert_dataset(batch.stamps, objects, labels, keep, path, args.copies)

    folds = np.array([fold_of(o, args.folds) for o in objects])
    out.mkdir(parents=True, exist_ok=True)
    cross = np.full(len(objects), np.nan)
    cutoffs = np.full(len(objects), np.nan)
    for k in range(args.folds):
        real = samples(folds != k, out / f"{args.samples}-not-fold{k}")
        model = load_package(
            fine_tune(args.model, args.sim, args.sim_query, real, out / f"fold{k}", args.epochs)
        )
        held = folds == k
        cross[held] = Scorer(model).predict(batch.stamps.data[held])
        cutoffs[held] = model.card.cutoff
    base = Scorer(parent).predict(batch.stamps.data)
    print(
        f"{len(objects)} ZTF alerts ({len(refused)} refused), {has.sum()} with drb, {asteroid.sum()} near known asteroids"
    )
    for name, scores, cut in (
        ("parent " + parent.card.version, base, np.full(len(base), parent.card.cutoff)),
        (f"fine-tuned on the other folds' {args.samples} ({args.folds} folds)", cross, cutoffs),
    ):
        print(
            f"  {name}: AUC vs drb >= 0.5 {roc_auc((drb[has] >= 0.5).astype(int), scores[has]):.3f}, "
            f"asteroid recall at cutoff {np.mean(scores[asteroid] >= cut[asteroid]):.3f}"
        )
    final = fine_tune(
        args.model,
        args.sim,
        args.sim_query,
        samples(np.ones(len(objects), bool), out / f"{args.samples}-all"),
        out / "final",
        args.epochs,
    )
    print(f"final model ({args.samples} of every cutout) -> {final}")


if __name__ == "__main__":
    main()
