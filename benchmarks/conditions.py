"""What the observing-condition correction costs when scoring (`ztf-v0.3` against `ztf-v0.2`).

The same network scores the same stamps three ways, timed interleaved (method after method,
repeat after repeat; best of `--repeat`, median beside it):
  * eager PyTorch, batch 64, under torch.no_grad(): Rubin's production way (the peer baseline),
    with the card's preprocessing in torch;
  * our Scorer on `ztf-v0.2` (network only);
  * our Scorer on `ztf-v0.3` (the same network, then `realbogus.model.conditions`: two robust noises
    and a central sum per stamp, and the correction where the noise ratio is below the knee).
Stamps: the real ZTF alert stamps of `../shared/data` (in nJy) repeated to `--n`, so the share of
stamps below the knee is the real one (~12 %); random noise stamps when the data is absent.

    python benchmarks/conditions.py [--n 20000] [--repeat 3] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from realbogus.inference.scorer import Scorer
from realbogus.model.package import load_package
from realbogus.model.transforms import preprocess


def real_stamps(data: Path, n: int) -> tuple[np.ndarray, str]:
    alerts = data / "ztf" / "alerts"
    if not alerts.is_dir():
        rng = np.random.default_rng(0)
        return rng.normal(size=(n, 3, 63, 63)).astype(np.float32), "random noise stamps"
    from realbogus.alerts import read_alerts
    from realbogus.alerts.units import to_units

    batch = read_alerts(sorted(alerts.glob("*.avro")), stamp_size=63, workers=None)
    batch, _ = to_units(batch, "nJy", "benchmark")
    stamps = batch.stamps.data
    return np.ascontiguousarray(
        np.resize(stamps, (n, *stamps.shape[1:]))
    ), f"{len(stamps)} real ZTF alert stamps, repeated"


def eager_batch64(package, stamps: np.ndarray) -> np.ndarray:
    model = package.model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(stamps), 64):
            batch = torch.from_numpy(stamps[start : start + 64])
            out.append(model(preprocess(package.card, batch)).numpy())
    return np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    args = parser.parse_args()

    stamps, what = real_stamps(args.data, args.n)
    v02, v03 = load_package("ztf-v0.2"), load_package("ztf-v0.3")
    methods = {
        "eager PyTorch, batch 64 (Rubin's way), ztf-v0.2": lambda: eager_batch64(v02, stamps),
        "Scorer, ztf-v0.2 (network only)": Scorer(v02).predict,
        "Scorer, ztf-v0.3 (network + condition correction)": Scorer(v03).predict,
    }
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(args.repeat):
        for name, method in methods.items():
            start = time.perf_counter()
            method(stamps) if name.startswith("Scorer") else method()
            times[name].append(time.perf_counter() - start)
    print(
        f"{args.n:,} stamps ({what}); {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}; best (median) of {args.repeat}"
    )
    print("| method | stamps/s | ms per 1,000 stamps |\n|---|---|---|")
    for name, t in times.items():
        best, median = min(t), float(np.median(t))
        print(
            f"| {name} | {args.n / best:,.0f} ({args.n / median:,.0f}) | {1000 * best / args.n * 1000:.1f} |"
        )
    extra = min(times["Scorer, ztf-v0.3 (network + condition correction)"]) - min(
        times["Scorer, ztf-v0.2 (network only)"]
    )
    print(
        f"the correction adds {1e6 * extra / args.n:.1f} us per stamp "
        f"({extra / min(times['Scorer, ztf-v0.2 (network only)']):+.0%} of the network's time)"
    )


if __name__ == "__main__":
    main()
