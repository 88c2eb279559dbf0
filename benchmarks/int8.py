"""int8 calibrations against the precision gate: deviation, passes_cutoff flips and kernel speed.

For the built-in `rubin-v0.1` (51 px) and `ztf-v0.1` (63 px), each variant of ONNX Runtime's
static QDQ quantisation (per-channel int8 weights; activations uint8 'U8S8' or int8 'S8S8';
calibration MinMax, Percentile or Entropy; the first conv block quantised or kept fp32; the
dense tail always fp32) is calibrated as the Scorer calibrates: on the card's preprocessing of
the first half of the check stamps, here the real dev alerts of `../shared/data`. Each is then
compared with the fp32 graph on three sets of stamps, as the gate (`inference.precision`)
compares: the real dev alerts (Rubin 126, ZTF 608), a small simulated survey of the survey
(`benchmarks/identity.py`'s, cached in `.bench/identity/`) and 1,024 noise stamps with a
Gaussian source (`benchmarks/score.py`'s `make_stamps`). Speed: the network alone, one
single-threaded session (as each of the Scorer's), batch 32, stamps per CPU-second of the thread,
best of 2, on the real stamps tiled to 2,048. The row marked `quantize_int8` is the Scorer's.

    python benchmarks/int8.py
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from identity import simulated
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.quant_utils import add_pre_process_metadata
from score import DATA, make_stamps, real_stamps

from realbogus import open_dataset
from realbogus.inference.onnx import _session, export_onnx, quantize_int8
from realbogus.inference.precision import check_precision
from realbogus.model.package import load_package
from realbogus.model.transforms import preprocess_array

SURVEY = {"rubin-v0.1": "rubin", "ztf-v0.1": "ztf"}
#: (calibration, first conv block fp32, activation type)
VARIANTS = [
    ("MinMax", False, "U8S8"),
    ("Percentile", False, "U8S8"),
    ("Entropy", False, "U8S8"),
    ("MinMax", True, "U8S8"),
    ("Percentile", True, "U8S8"),
    ("Entropy", True, "U8S8"),
    ("MinMax", True, "S8S8"),
]


def quantized(fp32: bytes, calibration: np.ndarray, method: str, first_fp32: bool, act: str):
    """One static QDQ quantisation of the fp32 graph (preprocessed input)."""
    batches = np.array_split(calibration, max(1, len(calibration) // 128))

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(batches)

        def get_next(self) -> dict | None:
            batch = next(self.batches, None)
            return None if batch is None else {"stamps": np.ascontiguousarray(batch)}

    model = onnx.load_from_string(fp32)
    add_pre_process_metadata(model)
    nodes = list(model.graph.node)
    for i, node in enumerate(nodes):
        node.name = node.name or f"{node.op_type}_{i}"
    keep = [n.name for n in nodes if n.op_type in ("Gemm", "Sigmoid", "Flatten", "Squeeze")]
    if first_fp32:
        second = [i for i, n in enumerate(nodes) if n.op_type == "Conv"][1]
        keep += [n.name for n in nodes[: second - 1]]  # up to the second block's crop
    logging.getLogger().setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "int8.onnx"
        quantize_static(
            model,
            out,
            Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8 if act == "U8S8" else QuantType.QInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            calibrate_method=getattr(CalibrationMethod, method),
            nodes_to_exclude=keep,
        )
        return out.read_bytes()


def scores(session, data: np.ndarray) -> np.ndarray:
    return np.concatenate(
        [session.run(None, {"stamps": data[i : i + 32]})[0] for i in range(0, len(data), 32)]
    )


def speed(session, data: np.ndarray) -> float:
    best = np.inf
    for _ in range(2):
        start = time.thread_time()
        scores(session, data)
        best = min(best, time.thread_time() - start)
    return len(data) / best


def main() -> None:
    load = os.getloadavg()
    print(
        "| model | int8 variant | network stamps/CPU-s (fp32) | real: max dev, flips | "
        "simulated: max dev, flips | noise: max dev, flips | gate on real |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, survey in SURVEY.items():
        package = load_package(name)
        card = package.card
        real, _ = real_stamps(card.stamp_size, DATA)
        sets = {
            "real": real,
            "simulated": open_dataset(simulated(survey)).stamps().data,
            "noise": make_stamps(1024, card.stamp_size, seed=2),
        }
        sets = {k: preprocess_array(card, np.ascontiguousarray(v)) for k, v in sets.items()}
        tiled = np.tile(sets["real"], (-(-2048 // len(real)), 1, 1, 1))[:2048]
        bench = np.ascontiguousarray(tiled)
        fp32 = export_onnx(package, preprocessed_input=True)
        reference = _session(fp32, 1)
        want = {k: scores(reference, v) for k, v in sets.items()}
        base = speed(reference, bench)
        calibration = sets["real"][: len(real) // 2]
        rows = [
            (
                f"{m}, first block {'fp32' if f else 'int8'}, {a}",
                quantized(fp32, calibration, m, f, a),
            )
            for m, f, a in VARIANTS
        ]
        rows.append(("quantize_int8", quantize_int8(package, real, tolerance=0.999).onnx))
        for label, graph in rows:
            session = _session(graph, 1)
            cells, gate = [], None
            for key, data in sets.items():
                check = check_precision("int8", want[key], scores(session, data), card.cutoff)
                cells.append(f"{check.max_deviation:.4f}, {100 * check.flip_rate:.2f} %")
                gate = gate or check
            verdict = "accepted" if gate.accepted else "refused"
            print(
                f"| {name} | {label} | {speed(session, bench):,.0f} ({base:,.0f}) | "
                + " | ".join(cells)
                + f" | {verdict} |",
                flush=True,
            )
    print(
        "\nload average before "
        + ", ".join(f"{x:.1f}" for x in load)
        + ", after "
        + ", ".join(f"{x:.1f}" for x in os.getloadavg())
    )


if __name__ == "__main__":
    main()
