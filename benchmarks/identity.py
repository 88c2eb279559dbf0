"""Bit-identity of the built-in models' scores across a code change (issue 17).

Scores every built-in model on the real DEV alerts of its survey (`../shared/data`) and on a
small simulated survey of its survey (made once, cached in `.bench/identity/`), with both
backends (ONNX Runtime and torch on the CPU), and through a Rubin export -> import round trip for
models without an observing-condition correction. Each result is reduced to the sha256 of its
float32 reliabilities (and the ids, in order). Run it before a refactor with `--save`, after it
with `--compare`: every digest must be equal.

    python benchmarks/identity.py --save benchmarks/identity-baseline.json
    python benchmarks/identity.py --compare benchmarks/identity-baseline.json

The digests depend on the machine's CPU kernels (ONNX Runtime, oneDNN): compare on one machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from realbogus import Scorer, load_package, open_dataset, simulate_survey
from realbogus.alerts import score_alerts
from realbogus.model.package import builtin_models
from realbogus.model.rubin import export_rubin, import_rubin

CACHE = Path(".bench/identity")


def digest(ids: np.ndarray, reliability: np.ndarray) -> str:
    """sha256 of the ids (as text) and the float32 reliabilities, in order."""
    h = hashlib.sha256("\n".join(map(str, ids)).encode())
    h.update(np.ascontiguousarray(reliability, dtype=np.float32).tobytes())
    return h.hexdigest()


def simulated(survey: str) -> Path:
    out = CACHE / f"sim-{survey}"
    if not out.exists():
        simulate_survey(n_visits=2, seed=17, out=out, survey=survey, workers=1, preview=False)
    return out


def run(data: Path) -> dict[str, str]:
    results: dict[str, str] = {}
    for name in builtin_models():
        package = load_package(name)
        survey = "ztf" if name.startswith("ztf") else "rubin"
        dataset = open_dataset(simulated(survey))
        ids, stamps = dataset.table(["diaSourceId"])["diaSourceId"].to_numpy(), dataset.stamps()
        alerts = sorted((data / survey / "alerts").glob("*.avro" if survey == "ztf" else "*.msg"))
        for backend in ("onnx", "torch"):
            scorer = Scorer(package, backend=backend, device="cpu")
            results[f"{name}/sim/{backend}"] = digest(ids, scorer.predict(stamps.data))
            if alerts:
                table = score_alerts(scorer, [str(p) for p in alerts], workers=1).table
                if (
                    "status" in table
                ):  # since 0.2.0 refused alerts keep a NaN row; compare the scored
                    table = table[table["status"] == "scored"]
                results[f"{name}/alerts/{backend}"] = digest(
                    table["diaSourceId"].to_numpy(), table["reliability"].to_numpy()
                )
        if package.card.conditions is None:
            with tempfile.TemporaryDirectory() as tmp:
                export_rubin(package, Path(tmp) / "rubin")
                import_rubin(Path(tmp) / "rubin", Path(tmp) / "back", version=f"{name}-reimported")
                back = Scorer(load_package(Path(tmp) / "back"), backend="onnx")
                results[f"{name}/rubin-roundtrip/onnx"] = digest(ids, back.predict(stamps.data))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--save", type=Path, help="write the digests to this JSON file")
    group.add_argument("--compare", type=Path, help="compare with digests saved earlier")
    args = parser.parse_args()
    results = run(args.data)
    if args.save:
        args.save.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        print(f"{len(results)} digests written to {args.save}")
        return 0
    saved = json.loads(args.compare.read_text())
    differ = sorted(k for k in saved.keys() & results.keys() if saved[k] != results[k])
    missing = sorted(saved.keys() - results.keys())
    for key in sorted(saved.keys() | results.keys()):
        mark = "DIFFERS" if key in differ else ("missing" if key in missing else "same")
        print(f"{mark:8s} {key}")
    print(f"{len(saved) - len(differ) - len(missing)} of {len(saved)} identical")
    return 1 if differ or missing else 0


if __name__ == "__main__":
    sys.exit(main())
