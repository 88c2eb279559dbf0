"""Write independent-test metrics from `realbogus evaluate` reports into a package's card.

    python scripts/card_metrics.py PACKAGE_DIR NAME=REPORT_DIR [NAME=REPORT_DIR ...] [--seeds JSON]

For each report, the card's `metrics[NAME]` gets the headline numbers of the package's model:
AUC, purity and completeness at the card's cutoff, the P = C crossing and the OSS-REQ-0353
window, overall (SNR > 5) and at the requirement's SNR 5.5-6.5, with bootstrap intervals.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from realbogus.model.package import load_package, save_package


def headline(model_metrics: dict) -> dict:
    keep = (
        "n",
        "n_real",
        "n_bogus",
        "auc",
        "purity_at_cutoff",
        "completeness_at_cutoff",
        "crossing",
        "window",
        "intervals",
    )
    return {
        name: ({k: summary.get(k) for k in keep} if summary else None)
        for name, summary in model_metrics["populations"].items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("package", type=Path)
    parser.add_argument("reports", nargs="*", help="NAME=REPORT_DIR")
    parser.add_argument(
        "--seeds", default=None, help="JSON object of simulation seeds to record in training_data"
    )
    parser.add_argument(
        "--pixel-units",
        default=None,
        help="set the card's pixel_units (e.g. nJy) when the training data did not record it",
    )
    args = parser.parse_args()
    package = load_package(args.package)
    metrics = dict(package.card.metrics)
    for item in args.reports or []:
        name, report = item.split("=", 1)
        data = json.loads((Path(report) / "metrics.json").read_text())
        metrics[name] = headline(data["models"][package.version])
    training = dict(package.card.training_data)
    if args.seeds is not None:
        training["simulation_seeds"] = json.loads(args.seeds)
    update = {"metrics": metrics, "training_data": training}
    if args.pixel_units:
        update["pixel_units"] = args.pixel_units
    card = package.card.model_copy(update=update)
    save_package(args.package, package.model, card, overwrite=True)


if __name__ == "__main__":
    main()
