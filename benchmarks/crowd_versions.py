"""Completeness of injected fakes by SNR for rubin-v0.1 / v0.2 / v0.3 (DMTN-337 Fig. 7 in numbers).

Does the crowd-fine-tuned v0.2 inherit the volunteers' low-SNR bias, and does v0.3 (crowd labels +
injections) remove it? Scores rubin-v0.1's independent simulated test set with each built-in model.

    python benchmarks/crowd_versions.py [build/rubin-v0.1-test]
"""

from __future__ import annotations

import sys

from realbogus.inference.scorer import Scorer
from realbogus.io.dataset import open_dataset
from realbogus.model.package import load_package


def main() -> None:
    dataset = open_dataset(sys.argv[1] if len(sys.argv) > 1 else "build/rubin-v0.1-test")
    table, stamps = dataset.table(), dataset.stamps()
    fakes = ((table["origin"] == "injection") & (table["label"] == 1)).to_numpy()
    snr = table["snr"].to_numpy()
    print(f"{dataset.path}: {int(fakes.sum())} detected Real injections")
    print(
        "| model | cutoff | SNR 5-8 at cutoff | SNR 5-8 at 0.5 | SNR 8-12 at 0.5 | SNR >= 20 at 0.5 |"
    )
    print("|---|---|---|---|---|---|")
    for version in ("rubin-v0.1", "rubin-v0.2", "rubin-v0.3"):
        package = load_package(version)
        scores = Scorer(package).predict(stamps.data)

        def completeness(lo: float, hi: float, threshold: float) -> str:
            chosen = fakes & (snr >= lo) & (snr < hi)
            return f"{(scores[chosen] >= threshold).mean():.3f} (n={int(chosen.sum())})"

        print(
            f"| {version} | {package.card.cutoff:.3f} | {completeness(5, 8, package.card.cutoff)} | "
            f"{completeness(5, 8, 0.5)} | {completeness(8, 12, 0.5)} | {completeness(20, float('inf'), 0.5)} |"
        )


if __name__ == "__main__":
    main()
