"""A preview figure of a simulated dataset: example triplets for each truth kind, labelled."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from ..io.dataset import open_dataset
from ..stamps import CHANNELS

__all__ = ["write_preview"]


def write_preview(
    dataset_dir: str | os.PathLike, path: str | os.PathLike, *, per_kind: int = 2, seed: int = 0
) -> Path:
    """Write a PNG with `per_kind` random triplets of every truth kind in the dataset.

    Each row is one detection: difference, science and template stamps (each scaled to its own
    robust range), titled with kind, label, polarity and SNR.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ds = open_dataset(dataset_dir)
    table = ds.table(columns=["truthKind", "label", "isNegative", "snr", "origin"])
    rng = np.random.default_rng(seed)
    picks: list[int] = []
    kinds = sorted(
        table["truthKind"].unique(),
        key=lambda k: (table.loc[table.truthKind == k, "label"].iat[0] == 0, k),
    )
    for kind in kinds:
        rows = np.flatnonzero(table["truthKind"].to_numpy() == kind)
        picks.extend(rng.choice(rows, size=min(per_kind, len(rows)), replace=False).tolist())
    picks = sorted(picks)
    wanted = set(picks)
    stamps = {}
    offset = 0
    for part_table, part_stamps in ds.iter_parts():
        for j in range(len(part_table)):
            if offset + j in wanted:
                stamps[offset + j] = part_stamps.data[j]
        offset += len(part_table)
    # Order rows by kind (Real kinds first) for reading.
    order = sorted(picks, key=lambda i: (kinds.index(table["truthKind"].iat[i]), i))
    n = len(order)
    ncol = 2
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, 3 * ncol, figsize=(3 * ncol * 1.25, nrow * 1.35), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for slot, i in enumerate(order):
        r, c0 = divmod(slot, ncol)
        row = table.iloc[i]
        for ch in range(3):
            ax = axes[r, 3 * c0 + ch]
            img = stamps[i][ch]
            lo, hi = np.percentile(img, [1, 99.5])
            if ch == 0:
                lim = max(abs(lo), abs(hi), 1e-9)
                ax.imshow(img, origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim)
            else:
                ax.imshow(img, origin="lower", cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1)
            if ch == 0:
                cls = "Real" if row["label"] == 1 else "Bogus"
                sign = "-" if row["isNegative"] else "+"
                ax.set_title(
                    f"{row['truthKind']} ({cls}{sign}) snr {row['snr']:.0f}", fontsize=6, loc="left"
                )
            if r == 0:
                ax.text(
                    0.5,
                    -0.08,
                    CHANNELS[ch],
                    transform=ax.transAxes,
                    fontsize=5,
                    ha="center",
                    va="top",
                )
    fig.tight_layout(pad=0.2, h_pad=0.4, w_pad=0.1)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
