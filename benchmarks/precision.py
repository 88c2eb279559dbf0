"""Kernels per CPU-second: one thread, network only, fp32 / int8 / bf16 at 51 and 63 px.

What each precision buys on this CPU, without the Scorer's threads or preprocessing: the
built-in `rubin-v0.1` (51 px) and `ztf-v0.1` (63 px) on preprocessed stamps (noise with a
Gaussian source, `benchmarks/score.py`'s `make_stamps`, through the card's 'asinh-noise'),
4,096 stamps in batches, timed by the thread's CPU time (steady under load from other
processes), best of `--repeat`, rows interleaved. Rows:

  * ONNX Runtime fp32, the Scorer's cropped graph (batch 32);
  * ONNX Runtime int8: `quantize_int8` (QDQ, per-channel weights, first conv block and dense
    tail fp32), batch 32;
  * torch bf16, plain: `Bf16Network`'s convolutions with `max_pool2d` after `relu` (batch 64);
  * torch bf16 as `inference.bf16.Bf16Network` runs it (pool before ReLU, strided maxima).

    python benchmarks/precision.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from score import make_stamps

from realbogus.inference.bf16 import Bf16Network
from realbogus.inference.onnx import _session, export_onnx, quantize_int8
from realbogus.model.architectures import get_architecture, multiply_adds
from realbogus.model.package import load_package
from realbogus.model.transforms import preprocess_array


def plain_bf16(network: Bf16Network, data: np.ndarray) -> np.ndarray:
    """The first bf16 version: ReLU, then torch's max_pool2d."""
    with torch.inference_mode():
        x = torch.from_numpy(data).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
        for kind, arg in network.steps:
            if kind == "conv":
                name, used = arg
                x = network.blocks[name](x[:, :, :used, :used])
            elif kind in ("pool_relu", "pool"):
                x = torch.nn.functional.max_pool2d(torch.relu(x) if kind == "pool_relu" else x, arg)
            elif kind == "relu":
                x = torch.relu(x)
            elif kind == "flatten":
                x = torch.flatten(x.float().contiguous(), 1)
            else:
                x = network.blocks[arg](x)
        return torch.sigmoid(x.squeeze(1)).numpy()


def batched(fn, data: np.ndarray, batch: int) -> np.ndarray:
    return np.concatenate([fn(data[i : i + batch]) for i in range(0, len(data), batch)])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--n", type=int, default=4096)
    args = parser.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()
    print(
        "| row | 51 px stamps/CPU-s | 63 px stamps/CPU-s | max dev 51 / 63 | GMAC/CPU-s 51 / 63 |"
    )
    print("|---|---|---|---|---|")
    results: dict[str, list[str]] = {}
    for model in ("rubin-v0.1", "ztf-v0.1"):
        package = load_package(model)
        card = package.card
        size = card.stamp_size
        data = preprocess_array(card, make_stamps(args.n, size, seed=1))
        check = make_stamps(1024, size, seed=2)
        fp32 = _session(export_onnx(package, preprocessed_input=True), 1)
        int8 = _session(quantize_int8(package, check, tolerance=0.999).onnx, 1)
        network = Bf16Network(package.model)
        rows = {
            "ONNX Runtime fp32 (cropped graph)": (
                lambda x: fp32.run(None, {"stamps": x})[0],
                32,
            ),
            "ONNX Runtime int8 (quantize_int8)": (
                lambda x: int8.run(None, {"stamps": x})[0],
                32,
            ),
            "torch bf16, ReLU then max_pool2d": (lambda x: plain_bf16(network, x), 64),
            "torch bf16, Bf16Network": (network.predict, 64),
        }
        reference = batched(rows["ONNX Runtime fp32 (cropped graph)"][0], data, 32)
        best = dict.fromkeys(rows, np.inf)
        for _ in range(args.repeat):
            for name, (fn, batch) in rows.items():
                start = time.thread_time()
                batched(fn, data, batch)
                best[name] = min(best[name], time.thread_time() - start)
        macs = multiply_adds(get_architecture(card.architecture), size)
        for name, (fn, batch) in rows.items():
            deviation = float(np.abs(batched(fn, data, batch) - reference).max())
            rate = args.n / best[name]
            results.setdefault(name, []).append((rate, deviation, rate * macs / 1e9))
    for name, ((r51, d51, g51), (r63, d63, g63)) in results.items():
        print(
            f"| {name} | {r51:,.0f} | {r63:,.0f} | {d51:.4f} / {d63:.4f} | {g51:.0f} / {g63:.0f} |"
        )
    print(
        f"\ntorch {torch.__version__}, one thread; load average before "
        + ", ".join(f"{x:.1f}" for x in load)
        + ", after "
        + ", ".join(f"{x:.1f}" for x in os.getloadavg())
    )


if __name__ == "__main__":
    main()
