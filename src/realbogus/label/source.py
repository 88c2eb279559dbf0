"""What the labelling service shows: detections and their stamps from a dataset or alert folder.

DATA is a realbogus dataset (a directory with ``manifest.json``, labelled or not) or a folder of
alert packets (Rubin or ZTF, read by `realbogus.alerts.reader.read_alerts`). Alert packets an
admin uploaded while serving (`realbogus.label.uploads`) are read from their folder beside DATA.
The stamps are copied once into a memory-mapped ``.npy`` cache (its file removed at once: the
mapping stays), so memory stays bounded while images are rendered on demand by
`realbogus.crowd.subjects.render_subject`; subjects uploaded while serving are held in memory
(their packets are bounded by the request body limit).
"""

from __future__ import annotations

import io
import itertools
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ..alerts.reader import read_alerts
from ..crowd.subjects import render_subject
from ..errors import InputError
from ..io.dataset import MANIFEST, open_dataset
from .uploads import read_uploads

__all__ = ["METADATA_COLUMNS", "SubjectSource", "load_source", "subject_rows"]

#: Detection-table columns shown to labellers (never a label or a model score).
METADATA_COLUMNS = (
    "diaSourceId",
    "origin",
    "survey",
    "ra",
    "dec",
    "snr",
    "band",
    "fid",
    "magpsf",
    "sigmapsf",
    "psfFlux",
    "psfFluxErr",
    "midpointMjdTai",
    "jd",
    "x",
    "y",
    "visit",
    "detector",
    "isNegative",
)
MAX_SCALE = 12


@dataclass
class SubjectSource:
    """Detections and their stamps.

    Attributes
    ----------
    path : Path
        The DATA argument.
    table : DataFrame of N rows
        The detection table (`diaSourceId` unique), in stamp order.
    stamps : ndarray of shape (N, 3, S, S), float32 (memory-mapped)
        Stamps in (difference, science, template) order, pixel units of the source.
    """

    path: Path
    table: pd.DataFrame
    stamps: np.ndarray
    _rows: dict[int, tuple[int, int]] = field(default_factory=dict)
    _chunks: list[np.ndarray] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._chunks = [self.stamps]
        self._rows = {int(d): (0, i) for i, d in enumerate(self.table["diaSourceId"])}
        self.png = lru_cache(maxsize=512)(self._png)

    @property
    def stamp_size(self) -> int:
        """Stamp side S, pixels."""
        return int(self.stamps.shape[-1])

    def __contains__(self, dia_source_id: object) -> bool:
        return int(dia_source_id) in self._rows  # type: ignore[call-overload]

    def stamp(self, dia_source_id: int) -> np.ndarray:
        """The (3, S, S) stamp of a detection; `KeyError` if no subject has it."""
        chunk, row = self._rows[int(dia_source_id)]
        return self._chunks[chunk][row]

    def extend(self, table: pd.DataFrame, stamps: np.ndarray) -> None:
        """Add detections (new `diaSourceId` values, stamps of shape (N, 3, S, S)) while serving.

        Raises
        ------
        InputError
            A `diaSourceId` is already a subject, repeated, or the stamps are not (N, 3, S, S).
        """
        ids = table["diaSourceId"].astype("int64").to_numpy()
        if stamps.shape != (len(table), 3, self.stamp_size, self.stamp_size):
            msg = (
                f"stamps of shape {stamps.shape} do not fit {len(table)} detections of "
                f"{self.stamp_size} px subjects"
            )
            raise InputError(msg)
        if len(np.unique(ids)) != len(ids) or any(int(i) in self._rows for i in ids):
            msg = "detections to add need diaSourceId values that are not subjects yet"
            raise InputError(msg)
        self._chunks.append(np.ascontiguousarray(stamps, dtype=np.float32))
        chunk = len(self._chunks) - 1
        self._rows.update({int(d): (chunk, i) for i, d in enumerate(ids)})
        self.table = pd.concat([self.table, table], ignore_index=True)

    def _png(self, dia_source_id: int, scale: int) -> bytes:
        """The subject image (template | science | difference, zscale) as PNG bytes."""
        stamp = np.asarray(self.stamp(dia_source_id), dtype=np.float32)
        buf = io.BytesIO()
        # zlib level 1: a third of the default's (6) time for a 63x63 triplet at scale 4
        # (1.2 vs 3.6 ms) and no bigger a file (20 kB) for noisy stamps
        image = Image.fromarray(render_subject(stamp, scale=scale), mode="L")
        image.save(buf, format="PNG", compress_level=1)
        return buf.getvalue()

    def close(self) -> None:
        """Release the stamp mapping."""
        self.stamps = np.empty((0, 3, 1, 1), np.float32)
        self._chunks = [self.stamps]
        self.png.cache_clear()


def load_source(
    path: str | os.PathLike, *, stamp_size: int = 63, uploads: Path | None = None
) -> SubjectSource:
    """Open DATA: a dataset directory or a folder of alert packets, plus saved uploads.

    Parameters
    ----------
    path : path-like
        The dataset or alert folder.
    stamp_size : int
        Stamp side S for alert packets, pixels (datasets keep their own).
    uploads : Path, optional
        The ``serve --uploads`` folder (`uploads.uploads_folder`): its saved packets become
        subjects too (those whose `diaSourceId` DATA already holds are left out).
    """
    path = Path(path)
    if not path.exists():
        msg = f"DATA {path} does not exist; give a realbogus dataset or a folder of alerts"
        raise InputError(msg)
    if (path / MANIFEST).is_file():
        ds = open_dataset(path)
        table, size = ds.table(), ds.stamp_size
        parts = (part.data for _, part in ds.iter_parts())
    elif path.is_dir():
        batch = read_alerts(path, stamp_size=stamp_size, workers=0)
        if len(batch) == 0:
            msg = f"DATA {path}: no readable alert packets ({len(batch.failures)} failures)"
            raise InputError(msg)
        table, size, parts = batch.table, stamp_size, iter([batch.stamps.data])
    else:
        msg = f"DATA {path} is neither a realbogus dataset nor a folder of alert packets"
        raise InputError(msg)
    if "diaSourceId" not in table.columns or table["diaSourceId"].duplicated().any():
        msg = f"DATA {path}: detections need unique diaSourceId values to become subjects"
        raise InputError(msg)
    extra = read_uploads(uploads, stamp_size=size) if uploads is not None else None
    if extra is not None:
        ids = extra.table["diaSourceId"]
        keep = (~ids.isin(table["diaSourceId"]) & ~ids.duplicated()).to_numpy()
        table = pd.concat([table, extra.table[keep]], ignore_index=True)
        parts = itertools.chain(parts, [extra.stamps.data[keep]])
    cache = Path(tempfile.mkdtemp(prefix="realbogus-label-"))
    try:
        stamps = np.lib.format.open_memmap(
            cache / "stamps.npy", mode="w+", dtype=np.float32, shape=(len(table), 3, size, size)
        )
        start = 0
        for part in parts:
            stamps[start : start + len(part)] = part
            start += len(part)
        stamps.flush()
    finally:
        # The mapping outlives its file: nothing is left on disk, even after a SIGKILL.
        shutil.rmtree(cache, ignore_errors=True)
    return SubjectSource(path=path, table=table.reset_index(drop=True), stamps=stamps)


def _jsonable(value: object) -> object:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return str(value)


def subject_rows(table: pd.DataFrame, *, gold_fraction: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """Rows for `Store.add_subjects`: id, origin, shown metadata, and a seeded gold draw.

    Parameters
    ----------
    table : DataFrame
        The detection table (`diaSourceId`; `label` 1/0 makes detections eligible for gold).
    gold_fraction : float
        Fraction of the labelled detections made gold (reference) subjects, in [0, 1].
    seed : int
        Seed of the gold draw (``default_rng([seed, 0])``, as `crowd subjects` draws).

    Returns
    -------
    DataFrame
        `diaSourceId`, `origin`, `metadata_json`, `gold` (float 1/0/NaN), `priority` (0).
    """
    if not 0 <= gold_fraction <= 1:
        msg = f"--gold-fraction must be in [0, 1]; got {gold_fraction}"
        raise InputError(msg)
    shown = [c for c in METADATA_COLUMNS if c in table.columns]
    meta = [
        json.dumps({c: _jsonable(v) for c, v in zip(shown, vals, strict=True)})
        for vals in table[shown].itertuples(index=False, name=None)
    ]
    rng = np.random.default_rng([seed, 0])
    gold = np.full(len(table), np.nan)
    if "label" in table.columns:
        labelled = table["label"].notna().to_numpy()
        pick = labelled & (rng.random(len(table)) < gold_fraction)
        gold[pick] = table["label"].to_numpy()[pick].astype(float)
    return pd.DataFrame(
        {
            "diaSourceId": table["diaSourceId"].astype("int64").to_numpy(),
            "origin": table["origin"].astype(str).to_numpy() if "origin" in table else "unknown",
            "metadata_json": meta,
            "gold": gold,
            "priority": 0.0,
        }
    )
