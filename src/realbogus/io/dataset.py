"""The on-disk dataset of (labelled) stamps: a directory of Parquet parts plus `manifest.json`.

Each row is one detection: the detection-table columns (docs/design.md) plus `stamp`, a
fixed-size list of 3*S*S float32 (channels in `stamps.CHANNELS` order, row-major), and the
stamp quality columns `valid_fraction` and `edge`. Readable by pandas, pyarrow, DuckDB, Dask.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputError
from ..stamps import CHANNELS, Stamps
from .atomic import atomic_directory
from .jsonfile import dumps_strict

__all__ = [
    "MANIFEST",
    "SCHEMA_VERSION",
    "Dataset",
    "open_dataset",
    "write_dataset",
    "stamps_to_arrow",
    "read_part",
    "SPLITS",
    "split_by_group",
    "balance_by_subsampling",
    "concat_datasets",
    "sample_check_stamps",
]

MANIFEST = "manifest.json"
SCHEMA_VERSION = 1
_PART = "part-{:05d}.parquet"
_STAMP_COLUMNS = ("stamp", "valid_fraction", "edge")


def stamps_to_arrow(data: np.ndarray) -> pa.FixedSizeListArray:
    """(N, 3, S, S) float32 stamps -> Arrow fixed-size lists of 3*S*S float32 (no copy)."""
    flat = np.ascontiguousarray(data, dtype=np.float32).reshape(len(data), -1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat.ravel()), flat.shape[1])


def _arrow_to_stamps(column: pa.ChunkedArray | pa.Array, size: int) -> np.ndarray:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    values = column.flatten().to_numpy(zero_copy_only=False)
    return values.astype(np.float32, copy=False).reshape(len(column), len(CHANNELS), size, size)


def write_dataset(
    path: str | os.PathLike,
    table: pd.DataFrame,
    stamps: Stamps,
    *,
    provenance: dict | None = None,
    rows_per_part: int = 50_000,
    overwrite: bool = False,
) -> Path:
    """Write a dataset directory atomically (temporary directory, then rename).

    Parameters
    ----------
    path : path-like
        Output directory; must not exist unless `overwrite`.
    table : DataFrame of N rows
        Detection-table columns (docs/design.md); `label`, `origin` are counted in the manifest.
    stamps : Stamps of N stamps
        Stamp pixels, `valid_fraction` and `edge` are stored as columns.
    provenance : dict, optional
        JSON-serialisable record of how the data were made (seeds, configs, sources).
    rows_per_part : int
        Rows per Parquet part file (the unit of distributed work).
    """
    path = Path(path)
    if len(table) != len(stamps):
        msg = f"table has {len(table)} rows but there are {len(stamps)} stamps"
        raise InputError(msg)
    clash = [c for c in _STAMP_COLUMNS if c in table.columns]
    if clash:
        msg = f"table must not already hold the stamp columns {clash}"
        raise InputError(msg)
    if path.exists() and not overwrite:
        msg = f"{path} already exists; choose another path or pass --overwrite (from Python: overwrite=True)"
        raise InputError(msg)

    with atomic_directory(path) as tmp:
        digest = hashlib.sha256()
        base = pa.Table.from_pandas(table.reset_index(drop=True), preserve_index=False)
        n_parts = max(1, -(-len(table) // rows_per_part))
        for part in range(n_parts):
            lo, hi = part * rows_per_part, min(len(table), (part + 1) * rows_per_part)
            piece = base.slice(lo, hi - lo)
            piece = piece.append_column("stamp", stamps_to_arrow(stamps.data[lo:hi]))
            piece = piece.append_column("valid_fraction", pa.array(stamps.valid_fraction[lo:hi]))
            piece = piece.append_column("edge", pa.array(stamps.edge[lo:hi]))
            part_path = tmp / _PART.format(part)
            pq.write_table(piece, part_path, row_group_size=4096)
            digest.update(part_path.read_bytes())
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "n_rows": len(table),
            "stamp_size": stamps.size,
            "channels": list(CHANNELS),
            "parts": [_PART.format(p) for p in range(n_parts)],
            "counts": _counts(table),
            "provenance": provenance or {},
            "content_hash": "sha256:" + digest.hexdigest(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        (tmp / MANIFEST).write_text(dumps_strict(manifest, default=_json_default))
    return path


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (Path, datetime)):
        return str(value)
    msg = f"provenance value of type {type(value).__name__} is not JSON-serialisable"
    raise TypeError(msg)


def _counts(table: pd.DataFrame) -> dict:
    counts: dict = {}
    if "label" in table:
        labels = table["label"].map({1: "real", 0: "bogus"}).fillna("unknown")
        counts["label"] = {str(k): int(v) for k, v in labels.value_counts().items()}
    if "origin" in table:
        counts["origin"] = {str(k): int(v) for k, v in table["origin"].value_counts().items()}
    return counts


@dataclass(frozen=True)
class Dataset:
    """An opened dataset directory. Stamps are read on demand, part by part."""

    path: Path
    manifest: dict

    @property
    def stamp_size(self) -> int:
        """Stamp side S, pixels."""
        return int(self.manifest["stamp_size"])

    @property
    def parts(self) -> list[Path]:
        """Parquet part files in order."""
        return [self.path / p for p in self.manifest["parts"]]

    def __len__(self) -> int:
        return int(self.manifest["n_rows"])

    def table(self, columns: list[str] | None = None) -> pd.DataFrame:
        """The detection table (without stamp pixels), N rows in dataset order."""
        if columns is None:
            schema = pq.read_schema(self.parts[0])
            columns = [c for c in schema.names if c != "stamp"]
        frames = [pq.read_table(p, columns=columns).to_pandas() for p in self.parts]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)

    def iter_parts(self) -> Iterator[tuple[pd.DataFrame, Stamps]]:
        """Yield (table, Stamps) for each part; memory stays bounded by one part."""
        for part in self.parts:
            yield read_part(part, self.stamp_size)

    def stamps(self) -> Stamps:
        """All stamps in memory, (N, 3, S, S) float32. Prefer `iter_parts` for big datasets."""
        return Stamps.concat([s for _, s in self.iter_parts()], self.stamp_size)


def read_part(path: str | os.PathLike, size: int) -> tuple[pd.DataFrame, Stamps]:
    """Read one Parquet part into (detection table, Stamps)."""
    try:
        arrow = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        msg = f"{path}: not a readable Parquet part ({exc})"
        raise InputError(msg) from exc
    missing = [c for c in _STAMP_COLUMNS if c not in arrow.column_names]
    if missing:
        msg = f"{path}: missing stamp columns {missing}"
        raise InputError(msg)
    data = _arrow_to_stamps(arrow.column("stamp"), size)
    stamps = Stamps(
        data=data,
        valid_fraction=arrow.column("valid_fraction").to_numpy().astype(np.float32),
        edge=arrow.column("edge").to_numpy(zero_copy_only=False).astype(bool),
    )
    table = arrow.drop_columns(list(_STAMP_COLUMNS)).to_pandas()
    return table, stamps


def open_dataset(path: str | os.PathLike) -> Dataset:
    """Open a dataset directory, validating its manifest and parts."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        msg = f"{path}: not a realbogus dataset (no {MANIFEST})"
        raise InputError(msg)
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        msg = f"{manifest_path}: unreadable manifest ({exc})"
        raise InputError(msg) from exc
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        msg = f"{manifest_path}: unknown dataset schema_version {version!r}; this realbogus reads {SCHEMA_VERSION}"
        raise InputError(msg)
    if list(manifest.get("channels", [])) != list(CHANNELS):
        msg = f"{manifest_path}: channel order {manifest.get('channels')} is not {list(CHANNELS)}"
        raise InputError(msg)
    missing = [p for p in manifest.get("parts", []) if not (path / p).is_file()]
    if missing:
        msg = f"{path}: manifest lists missing part files {missing}"
        raise InputError(msg)
    return Dataset(path=path, manifest=manifest)


# --- splits and balancing ------------------------------------------------------------------

SPLITS = ("train", "validation", "test")


def split_by_group(
    table: pd.DataFrame,
    *,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    group: str = "field",
    stratify: tuple[str, ...] = ("label", "origin"),
    seed: int = 0,
) -> np.ndarray:
    """Assign each row to train / validation / test so that no group spans two splits.

    Groups (e.g. simulated fields) are visited in a seeded random order and each goes to the
    split whose stratum counts (label x origin) lag furthest behind its target fraction, so
    the splits keep the table's class and origin mix.

    Returns
    -------
    ndarray of shape (N,), str
        One of `SPLITS` per row.
    """
    if group not in table:
        msg = f"table has no {group!r} column to group the split by"
        raise InputError(msg)
    fractions = np.asarray(fractions, dtype=float)
    if fractions.shape != (3,) or (fractions < 0).any() or not np.isclose(fractions.sum(), 1.0):
        msg = f"fractions must be three non-negative numbers summing to 1; got {fractions.tolist()}"
        raise InputError(msg)
    present = [c for c in stratify if c in table]
    strata = (
        table[present].astype(str).agg("|".join, axis=1)
        if present
        else pd.Series("all", index=table.index)
    )
    counts = pd.crosstab(table[group], strata)  # groups x strata
    order = np.random.default_rng(seed).permutation(len(counts))
    target = np.outer(fractions, counts.sum(axis=0).to_numpy(float))  # splits x strata
    have = np.zeros_like(target)
    assignment = {}
    for g in order:
        row = counts.iloc[g].to_numpy(float)
        # Deficit of each split in this group's strata, relative to its target.
        deficit = ((target - have) * row).sum(axis=1) / np.maximum(target.sum(axis=1), 1)
        deficit[fractions == 0] = -np.inf
        choice = int(np.argmax(deficit))
        have[choice] += row
        assignment[counts.index[g]] = SPLITS[choice]
    return table[group].map(assignment).to_numpy(dtype=object).astype(str)


def balance_by_subsampling(labels: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Indices of a class-balanced subsample (DMTN-337): every class cut to the smallest one.

    Parameters
    ----------
    labels : array-like of shape (N,)
        Class labels (e.g. 0/1); rows with missing labels are left out.

    Returns
    -------
    ndarray of int64, sorted
    """
    labels = pd.Series(labels)
    known = labels.dropna()
    if known.empty:
        return np.empty(0, dtype=np.int64)
    smallest = int(known.value_counts().min())
    rng = np.random.default_rng(seed)
    keep = [
        rng.choice(np.flatnonzero((labels == value).to_numpy()), smallest, replace=False)
        for value in sorted(known.unique())
    ]
    return np.sort(np.concatenate(keep)).astype(np.int64)


def concat_datasets(
    sources: list[tuple[Dataset, str | None]],
    out: str | os.PathLike,
    *,
    provenance: dict | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the rows of several datasets (optionally filtered) as one new dataset.

    Parameters
    ----------
    sources : list of (Dataset, query or None)
        Each dataset with a pandas `DataFrame.query` string selecting its rows (None: all).
        Stamp sizes must agree; columns missing in a source are filled with nulls.
    """
    sizes = {ds.stamp_size for ds, _ in sources}
    if len(sizes) != 1:
        msg = f"datasets to concatenate have different stamp sizes {sorted(sizes)}"
        raise InputError(msg)
    tables, pieces = [], []
    for ds, query in sources:
        for table, stamps in ds.iter_parts():
            keep = np.ones(len(table), bool) if query is None else table.eval(query).to_numpy(bool)
            tables.append(table[keep].drop(columns=["valid_fraction", "edge"], errors="ignore"))
            pieces.append(Stamps(stamps.data[keep], stamps.valid_fraction[keep], stamps.edge[keep]))
    stamps = Stamps.concat(pieces, sizes.pop())
    record = {
        "concatenated": [
            {"path": str(ds.path), "content_hash": ds.manifest["content_hash"], "query": q}
            for ds, q in sources
        ]
    }
    units = {ds.manifest.get("provenance", {}).get("pixel_units") for ds, _ in sources}
    if len(units) == 1 and None not in units:
        record["pixel_units"] = units.pop()
    return write_dataset(
        out,
        pd.concat(tables, ignore_index=True),
        stamps,
        provenance={**record, **(provenance or {})},
        overwrite=overwrite,
    )


def sample_check_stamps(dataset: Dataset, n: int = 2048) -> np.ndarray:
    """Up to `n` check stamps for `quantize_int8`: evenly spaced rows of a dataset's first parts.

    Returns
    -------
    ndarray of shape (min(n, len(dataset)), 3, S, S), float32
    """
    pieces, have = [], 0
    for _, stamps in dataset.iter_parts():
        step = max(1, len(stamps) // (n - have))
        pieces.append(stamps.data[::step][: n - have].copy())
        have += len(pieces[-1])
        if have >= n:
            break
    size = dataset.stamp_size
    return np.concatenate(pieces) if pieces else np.empty((0, 3, size, size), np.float32)
