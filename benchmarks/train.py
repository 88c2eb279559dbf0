"""Training samples per second on this machine (DMTN-337 CNN, batch 128, Adam, flips).

Runs full training steps (forward, BCE, backward, Adam) on 51x51 stamps read from a dataset's
memory map through the same batch path `realbogus train` uses, and compares with the plain
PyTorch idiom (a DataLoader over an in-memory TensorDataset, per-item collation).

    python benchmarks/train.py [--samples 20000] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from rich.console import Console
from rich.table import Table

from realbogus.io.dataset import open_dataset, write_dataset
from realbogus.model.network import DMTN337CNN
from realbogus.stamps import Stamps
from realbogus.training.train import _batches, input_transform, robust_channel_scale, stamp_memmap


def run_steps(model, batches, n_samples):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=3.6e-2)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    model.train()
    done, start = 0, time.perf_counter()
    for x, y in batches:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model.logits(x), y).backward()
        optimizer.step()
        done += len(y)
        if done >= n_samples:
            break
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    n = args.samples
    data = rng.normal(size=(n, 3, 51, 51)).astype(np.float32)
    labels = rng.integers(0, 2, n).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        write_dataset(
            Path(tmp) / "ds",
            pd.DataFrame({"label": labels}),
            Stamps(data, np.ones(n, np.float32), np.zeros(n, bool)),
        )
        stamps = stamp_memmap(open_dataset(Path(tmp) / "ds"))
        rows = []
        torch.manual_seed(0)
        # The shipped recipe's input: 'asinh-noise' (each stamp's noise, then asinh), in the batch path.
        scale = robust_channel_scale(stamps, np.arange(n))
        transform = input_transform("asinh-noise", scale / scale[0])
        ours = run_steps(
            DMTN337CNN(),
            _batches(
                stamps,
                labels,
                np.arange(n),
                batch_size=128,
                rng=np.random.default_rng(1),
                flips=True,
                transform=transform,
            ),
            n,
        )
        rows.append(("realbogus train path (memmap batches, flips, asinh-noise)", ours))
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(torch.from_numpy(data), torch.from_numpy(labels)),
            batch_size=128,
            shuffle=True,
        )
        torch.manual_seed(0)
        rows.append(
            (
                "plain PyTorch DataLoader(TensorDataset), no flips",
                run_steps(DMTN337CNN(), iter(loader), n),
            )
        )
        del stamps
    table = Table(title=f"training steps, 51x51, batch 128, {args.threads} threads, {n} samples")
    table.add_column("path")
    table.add_column("samples/s", justify="right")
    for name, rate in rows:
        table.add_row(name, f"{rate:,.0f}")
    Console(width=120).print(table)
    Console().print(f"torch {torch.__version__}, {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
