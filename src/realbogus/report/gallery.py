"""Stamp galleries: which detections to show, and the triplets drawn with the one renderer.

The report shows, per model, the most confident mistakes at its cutoff and a seeded random
sample of each class (:func:`select_gallery`), each as a [difference, science, template]
triplet PNG from :func:`realbogus.render.render_triplet_png`. ``simulate``'s
preview draws its example detections with :func:`gallery_figure`, on the same renderer.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..render import gallery_figure, render_triplet_png

__all__ = [
    "GALLERIES",
    "MIN_WIDTH_PX",
    "StampLoader",
    "dataset_loader",
    "gallery_figure",
    "select_gallery",
    "write_galleries",
]

#: Gallery PNGs are enlarged (nearest neighbour) to at least this width, pixels.
MIN_WIDTH_PX = 800

#: Gallery kinds, in report order: (key, title).
GALLERIES: tuple[tuple[str, str], ...] = (
    ("false_positives", "most confident false positives (Bogus, highest reliability >= cutoff)"),
    ("false_negatives", "most confident false negatives (Real, lowest reliability < cutoff)"),
    ("random_real", "random Real detections"),
    ("random_bogus", "random Bogus detections"),
)

#: Reads the stamps of some table rows: rows (k,) int64 ascending -> ndarray (k, 3, S, S).
StampLoader = Callable[[np.ndarray], np.ndarray]


def select_gallery(
    labels: np.ndarray,
    scores: np.ndarray,
    cutoff: float,
    *,
    n_confident: int = 8,
    n_random: int = 4,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Rows of each gallery (:data:`GALLERIES`) for one model.

    Parameters
    ----------
    labels : ndarray of shape (N,), float
        1 Real, 0 Bogus, NaN unknown (never shown).
    scores : ndarray of shape (N,), float
        Reliability in [0, 1].
    cutoff : float
        A detection passes when ``reliability >= cutoff``.
    n_confident : int
        False positives (highest scores first) and false negatives (lowest first) shown.
    n_random : int
        Random Real and random Bogus detections shown (seeded; rows ascending).
    seed : int
        Seed of the random samples.

    Returns
    -------
    dict gallery key -> ndarray of int64 row indices
        Fewer rows than asked where fewer exist; ties broken by row order.
    """
    real = labels == 1.0
    bogus = labels == 0.0
    passes = scores >= cutoff
    fp = np.flatnonzero(bogus & passes)
    fn = np.flatnonzero(real & ~passes)
    fp = fp[np.argsort(-scores[fp], kind="stable")][:n_confident]
    fn = fn[np.argsort(scores[fn], kind="stable")][:n_confident]
    rng = np.random.default_rng([seed, 20])

    def sample(rows: np.ndarray) -> np.ndarray:
        k = min(n_random, len(rows))
        return np.sort(rng.choice(rows, size=k, replace=False)) if k else rows[:0]

    return {
        "false_positives": fp.astype(np.int64),
        "false_negatives": fn.astype(np.int64),
        "random_real": sample(np.flatnonzero(real)).astype(np.int64),
        "random_bogus": sample(np.flatnonzero(bogus)).astype(np.int64),
    }


def dataset_loader(dataset: object) -> StampLoader:
    """A :data:`StampLoader` over a realbogus dataset (reads only the parts holding the rows).

    Parameters
    ----------
    dataset : realbogus.io.dataset.Dataset or path-like

    Returns
    -------
    StampLoader
    """
    from ..io.dataset import Dataset, open_dataset

    ds = dataset if isinstance(dataset, Dataset) else open_dataset(os.fspath(dataset))

    def load(rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), 3, ds.stamp_size, ds.stamp_size), np.float32)
        offset = 0
        for part, stamps in ds.iter_parts():
            n = len(part)
            hit = np.flatnonzero((rows >= offset) & (rows < offset + n))
            out[hit] = stamps.data[rows[hit] - offset]
            offset += n
            if offset > rows.max(initial=-1):
                break
        return out

    return load


def _value(table: pd.DataFrame, column: str, row: int) -> object:
    if column not in table.columns:
        return None
    v = table[column].iat[row]
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    return v.item() if hasattr(v, "item") else v


def write_galleries(
    directory: str | os.PathLike,
    table: pd.DataFrame,
    labels: np.ndarray,
    scores: Mapping[str, np.ndarray],
    cutoffs: Mapping[str, float],
    loader: StampLoader,
    *,
    folder_names: Mapping[str, str] | None = None,
    n_confident: int = 8,
    n_random: int = 4,
    seed: int = 0,
) -> dict[str, dict[str, list[dict]]]:
    """Select and draw every model's galleries as triplet PNGs under `directory`.

    Parameters
    ----------
    directory : path-like
        Existing directory; files go to ``<folder>/<gallery>-<row>.png``.
    table : DataFrame of N rows
        Detection table (``diaSourceId``, ``truthKind``/``origin``, ``snr`` shown when present).
    labels : ndarray of shape (N,)
        1 Real, 0 Bogus, NaN unknown.
    scores : mapping model -> ndarray of shape (N,)
    cutoffs : mapping model -> float
    loader : StampLoader
        Called once with every selected row.
    folder_names : mapping model -> str, optional
        File-system-safe folder per model (default: the model name).
    n_confident, n_random, seed : int
        As :func:`select_gallery`.

    Returns
    -------
    dict model -> gallery key -> list of dict
        One dict per triplet, in display order: ``row, diaSourceId, label, kind, snr,
        reliability, file`` (file relative to `directory`'s parent: ``galleries/...``).
    """
    directory = Path(directory)
    picks = {
        m: select_gallery(
            labels, r, cutoffs[m], n_confident=n_confident, n_random=n_random, seed=seed
        )
        for m, r in scores.items()
    }
    rows = np.unique(np.concatenate([g for p in picks.values() for g in p.values()] or [[]]))
    rows = rows.astype(np.int64)
    stamps = loader(rows) if len(rows) else np.zeros((0, 3, 1, 1), np.float32)
    if len(stamps) != len(rows):
        msg = f"the stamp loader returned {len(stamps)} stamps for {len(rows)} rows"
        raise InputError(msg)
    by_row = {int(r): k for k, r in enumerate(rows)}
    kind_col = "truthKind" if "truthKind" in table.columns else "origin"
    out: dict[str, dict[str, list[dict]]] = {}
    for m, galleries in picks.items():
        folder = (folder_names or {}).get(m, m)
        (directory / folder).mkdir(parents=True, exist_ok=True)
        out[m] = {}
        for key, _title in GALLERIES:
            entries = []
            for row in galleries[key].tolist():
                stamp = stamps[by_row[row]]
                size = stamp.shape[-1]
                scale = max(1, math.ceil(MIN_WIDTH_PX / (3 * size + 4)))
                name = f"{folder}/{key}-{row}.png"
                (directory / name).write_bytes(render_triplet_png(stamp, scale=scale, gap=2))
                entries.append(
                    {
                        "row": row,
                        "diaSourceId": _value(table, "diaSourceId", row),
                        "label": _value(table, "label", row),
                        "kind": _value(table, kind_col, row),
                        "snr": _value(table, "snr", row),
                        "reliability": float(scores[m][row]),
                        "file": f"{directory.name}/{name}",
                    }
                )
            out[m][key] = entries
    return out
