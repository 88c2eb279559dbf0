"""A preview figure of a simulated dataset: example triplets for each truth kind, labelled."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..io.atomic import atomic_path
from ..io.dataset import open_dataset
from ..render import gallery_figure

__all__ = ["write_preview"]


def write_preview(
    dataset_dir: str | os.PathLike, path: str | os.PathLike, *, per_kind: int = 2, seed: int = 0
) -> Path:
    """Write a PNG with `per_kind` random triplets of every truth kind in the dataset.

    Each triplet is difference | science | template, drawn by the report galleries' renderer
    (`realbogus.render`, zscale per panel, NaN in magenta), titled with kind,
    label, polarity and SNR.
    """
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
    captions = []
    for i in order:
        row = table.iloc[i]
        cls = "Real" if row["label"] == 1 else "Bogus"
        sign = "-" if row["isNegative"] else "+"
        captions.append(f"{row['truthKind']} ({cls}{sign}) snr {row['snr']:.0f}")
    stack = np.stack([stamps[i] for i in order]) if order else np.zeros((0, 3, 1, 1))
    fig = gallery_figure(stack, captions, ncol=2)  # the report galleries' renderer
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=150, format="png")
    return Path(path)
