"""Which pixel preprocessing and learning rate train the DMTN-337 CNN on raw nJy stamps?

One epoch (DMTN-337 batch 128, Adam, weight decay 3.6e-2, flips) on up to 25,000 stamps of a
simulated dataset, validated on up to 4,000 stamps of other fields (field % 10 == 0); prints the
validation ROC AUC per setting. "noise-scaled" = x / s_c (what `preprocessing="none"` trains on
before folding s_c into conv1); "asinh" = asinh(x / s_c), s_c the per-channel robust noise.

    python benchmarks/preprocessing.py build/rubin-v0.1-train
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from realbogus.evaluation.metrics import roc_auc
from realbogus.io.dataset import open_dataset
from realbogus.model.network import DMTN337CNN
from realbogus.training.train import _batches, robust_channel_scale, stamp_memmap


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data")
    parser.add_argument("--train", type=int, default=25_000)
    parser.add_argument("--validation", type=int, default=4_000)
    args = parser.parse_args()
    dataset = open_dataset(args.data)
    table = dataset.table(columns=["label", "field"])
    stamps = stamp_memmap(dataset)
    labels = table["label"].to_numpy(np.float32)
    field = table["field"].to_numpy()
    train_rows = np.flatnonzero(field % 10 != 0)[: args.train]
    val_rows = np.sort(np.flatnonzero(field % 10 == 0)[: args.validation])
    scale = robust_channel_scale(stamps, train_rows)[None, :, None, None]
    transforms = {"noise-scaled": lambda x: x / scale, "asinh": lambda x: np.arcsinh(x / scale)}
    print(
        f"{len(train_rows)} training, {len(val_rows)} validation stamps; noise scale {scale.ravel()}"
    )
    print(f"{'preprocessing':>14} {'lr':>8} {'weight decay':>12} {'val AUC':>8} {'s':>5}")
    for name, lr, decay in (
        ("noise-scaled", 1e-4, 3.6e-2),
        ("noise-scaled", 1e-3, 3.6e-2),
        ("noise-scaled", 1e-3, 0.0),
        ("asinh", 1e-4, 3.6e-2),
        ("asinh", 1e-3, 3.6e-2),
    ):
        torch.manual_seed(0)
        model = DMTN337CNN(dataset.stamp_size)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=decay)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        start = time.perf_counter()
        model.train()
        for x, y in _batches(
            stamps,
            labels,
            train_rows,
            batch_size=128,
            rng=np.random.default_rng(0),
            flips=True,
            transform=transforms[name],
        ):
            optimizer.zero_grad()
            loss_fn(model.logits(x), y).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            x = torch.from_numpy(
                np.ascontiguousarray(transforms[name](np.asarray(stamps[val_rows], np.float32)))
            )
            scores = torch.sigmoid(model.logits(x)).numpy()
        print(
            f"{name:>14} {lr:>8g} {decay:>12g} {roc_auc(labels[val_rows], scores):>8.4f} {time.perf_counter() - start:>5.0f}"
        )


if __name__ == "__main__":
    main()
