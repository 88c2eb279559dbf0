"""Our models on real alert packets, beside the survey's own scores (issue 7, part 4).

Rubin (126 alerts from LSSTCam and HSC images, `../shared/data/rubin/alerts`): `rubin-v0.1`
against Rubin's production `reliability`: ROC AUC of our score for Rubin reliability >= 0.5,
Spearman rank correlation, and recall on alerts associated with a known solar-system object
(`ssObjectId`) at our cutoff and at 0.5, beside Rubin's recall at 0.5.
ZTF (`../shared/data/ztf/alerts`): the same against braai's `drb`, with asteroid alerts
(`ssdistnr` within 2"), with `ztf-v0.3`; ZTF stamps (DN) are converted to the model's nJy with
each alert's `magzpsci` (`realbogus.alerts.units`).

    python benchmarks/real_data.py [--rubin-model rubin-v0.1] [--ztf-model ztf-v0.3] [--data ../shared/data] [--orientations]

For a model with an observing-condition correction (`ztf-v0.3`) it also gives the AUC on the
alerts whose scores the correction changes (noise ratio below its knee) and on the rest.
`--orientations` also scores the ZTF stamps in all 8 orientations (quarter turns and mirror
images) and reports the AUC of each and of their mean (test-time averaging; not what the Scorer does).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from realbogus.alerts import read_alerts, score_alerts
from realbogus.alerts.units import to_units
from realbogus.errors import PackageError
from realbogus.evaluation.metrics import roc_auc
from realbogus.inference.scorer import Scorer
from realbogus.model.conditions import cloud_depth, noise_ratio
from realbogus.model.package import load_package


def report(name: str, table, survey_score: str, asteroid: np.ndarray, failures: list) -> None:
    print(f"\n{name}: {len(table)} alerts scored, {len(failures)} not scored")
    for failure in failures:
        print(f"  not scored: {Path(failure.file).name}: {failure.reason}")
    ours = table["reliability"].to_numpy(float)
    theirs = table[survey_score].to_numpy(float, na_value=np.nan)
    has = np.isfinite(theirs)
    n_without = "" if has.all() else f"; {int((~has).sum())} alerts without {survey_score} left out"
    label = (theirs[has] >= 0.5).astype(int)
    print(
        f"  ROC AUC of ours against {survey_score} >= 0.5: {roc_auc(label, ours[has]):.3f} "
        f"({int(label.sum())} of {int(has.sum())} at >= 0.5{n_without})"
    )
    print(f"  Spearman rank correlation: {spearmanr(ours[has], theirs[has]).statistic:.3f}")
    masked = table["valid_fraction"].to_numpy() < 0.999
    subsets = [("stamps partly masked or off-chip", masked), ("whole stamps", ~masked)]
    negative = (
        table["differenceNegated"].to_numpy(bool)
        if "differenceNegated" in table
        else np.zeros(len(table), bool)
    )
    if negative.any():  # ZTF: negative candidates are those whose difference was negated
        subsets += [("negative candidates", negative), ("positive candidates", ~negative)]
    for name, sel in subsets:
        sel = sel & has
        if 0 < (theirs[sel] >= 0.5).sum() < sel.sum():
            print(
                f"    AUC on {name}: {roc_auc((theirs[sel] >= 0.5).astype(int), ours[sel]):.3f} (n={int(sel.sum())})"
            )
    theirs_on = asteroid & has
    print(
        f"  known-asteroid alerts: {int(asteroid.sum())}; recall ours at cutoff {table['passes_cutoff'].to_numpy()[asteroid].mean():.3f}, "
        f"ours at 0.5 {(ours[asteroid] >= 0.5).mean():.3f}; {survey_score} at 0.5 {(theirs[theirs_on] >= 0.5).mean():.3f} "
        f"(on the {int(theirs_on.sum())} with {survey_score})"
    )


def exposure_costs(table: pd.DataFrame, alerts_csv: Path, top: int = 3) -> None:
    """Which ZTF exposures cost the most AUC: the share of misordered (real at or below bogus,
    by drb >= 0.5) pairs whose bogus alert comes from each exposure (field, night), and its depth."""
    if not alerts_csv.exists():
        return
    meta = pd.read_csv(alerts_csv, usecols=["candid", "field", "jd", "diffmaglim"])
    t = table.merge(meta, on="candid", how="left").dropna(subset=["drb"])
    t["exposure"] = t["field"].astype("Int64").astype(str) + " JD " + t["jd"].round(4).astype(str)
    real = t["drb"].to_numpy(float) >= 0.5
    ours = t["reliability"].to_numpy(float)
    reals = np.sort(ours[real])
    bogus = t[~real].assign(
        misordered=lambda d: np.searchsorted(reals, d["reliability"].to_numpy(float), side="right")
    )
    cost = bogus.groupby("exposure").agg(
        pairs=("misordered", "sum"), bogus=("candid", "size"), diffmaglim=("diffmaglim", "median")
    )
    cost = cost.sort_values("pairs", ascending=False)
    alerts = t["exposure"].value_counts()
    total = len(reals) * len(bogus)
    print(
        f"  misordered pairs: {cost['pairs'].sum() / total:.3f} of all (1 - AUC); the exposures costing most:"
    )
    for exposure, row in cost.head(top).iterrows():
        print(
            f"    field {exposure}: {row['pairs'] / total:.3f} of AUC from its {row['bogus']} drb-bogus "
            f"({alerts[exposure]} alerts in all, diffmaglim {row['diffmaglim']:.1f})"
        )
    deep = t["diffmaglim"].to_numpy(float) >= 18
    for name, sel in (("exposures with diffmaglim >= 18", deep), ("shallower", ~deep)):
        if 0 < real[sel].sum() < sel.sum():
            print(
                f"    AUC on alerts from {name}: {roc_auc(real[sel].astype(int), ours[sel]):.3f} (n={int(sel.sum())})"
            )


def _ztf_stamps(card, alerts: Path):
    batch = read_alerts(sorted(alerts.glob("*.avro")), stamp_size=card.stamp_size, workers=None)
    batch, _ = to_units(batch, card.pixel_units, card.version)
    return batch


def condition_split(scorer: Scorer, batch) -> None:
    """For a model with an observing-condition correction: AUC against drb >= 0.5 on the alerts
    of `batch` below its knee (the scores it corrects) and on the rest (the parent network's)."""
    conditions = scorer.card.conditions
    below = cloud_depth(noise_ratio(batch.stamps.data), conditions.knee) > 0
    drb = batch.table["drb"].to_numpy(float, na_value=np.nan)
    score = scorer.predict(batch.stamps.data)
    network = replace(scorer.package, card=scorer.card.model_copy(update={"conditions": None}))
    uncorrected = Scorer(network).predict(batch.stamps.data)
    has = np.isfinite(drb)
    print(
        f"  without the correction: AUC {roc_auc((drb[has] >= 0.5).astype(int), uncorrected[has]):.3f}"
    )
    for name, sel in ((f"below the knee {conditions.knee:g}", below), ("at or above it", ~below)):
        sel = sel & has
        label = (drb[sel] >= 0.5).astype(int)
        if 0 < label.sum() < sel.sum():
            print(
                f"    AUC on the alerts {name}: {roc_auc(label, score[sel]):.3f}, without the correction "
                f"{roc_auc(label, uncorrected[sel]):.3f} (n={int(sel.sum())}, {int(label.sum())} drb-real)"
            )


def orientation_aucs(scorer: Scorer, batch) -> None:
    """AUC against drb >= 0.5 of each of the 8 orientations of the ZTF stamps and of their mean score."""
    drb = batch.table["drb"].to_numpy(float, na_value=np.nan)
    has = np.isfinite(drb)
    label = (drb[has] >= 0.5).astype(int)
    scores = []
    for k in range(4):
        for mirror in (False, True):
            turned = np.rot90(batch.stamps.data, k, axes=(2, 3))
            scores.append(
                scorer.predict(np.ascontiguousarray(turned[..., ::-1] if mirror else turned))
            )
    each = [roc_auc(label, s[has]) for s in scores]
    print(
        f"  8 orientations: AUC {min(each):.3f}-{max(each):.3f}; of the mean score {roc_auc(label, np.mean(scores, axis=0)[has]):.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rubin-model", default="rubin-v0.1")
    parser.add_argument("--ztf-model", default="ztf-v0.3")
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    parser.add_argument(
        "--orientations", action="store_true", help="also score ZTF stamps in all 8 orientations"
    )
    args = parser.parse_args()

    rubin = score_alerts(Scorer(load_package(args.rubin_model)), args.data / "rubin" / "alerts")
    table = rubin.table
    asteroid = table["ssObjectId"].fillna(0).astype("int64").to_numpy() > 0
    report(
        f"Rubin alerts, {args.rubin_model}", table, "surveyReliability", asteroid, rubin.failures
    )

    try:
        ztf_package = load_package(args.ztf_model)
    except PackageError as exc:
        print(f"\nZTF: skipped ({exc})")
        return
    ztf_scorer = Scorer(ztf_package)
    ztf = score_alerts(ztf_scorer, args.data / "ztf" / "alerts")
    table = ztf.table
    distance = table["ssdistnr"].to_numpy(float)
    report(
        f"ZTF alerts, {args.ztf_model}",
        table,
        "drb",
        (distance >= 0) & (distance <= 2),
        ztf.failures,
    )
    exposure_costs(table, args.data / "ztf" / "alerts.csv")
    if ztf_scorer.card.conditions is None and not args.orientations:
        return
    batch = _ztf_stamps(ztf_scorer.card, args.data / "ztf" / "alerts")  # decoded once for both
    if ztf_scorer.card.conditions is not None:
        condition_split(ztf_scorer, batch)
    if args.orientations:
        orientation_aucs(ztf_scorer, batch)


if __name__ == "__main__":
    main()
