"""Tables by extension (.parquet, .csv, .fits), read with errors that name the file, written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from .atomic import atomic_path

__all__ = ["TABLE_FORMATS", "check_table_path", "read_table", "write_table"]

TABLE_FORMATS = (".parquet", ".csv", ".fits")


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".fit", ".fts"):
        suffix = ".fits"
    if suffix not in TABLE_FORMATS:
        msg = f"{path}: unknown table format {path.suffix!r}; use one of {TABLE_FORMATS}"
        raise InputError(msg)
    return suffix


def check_table_path(path: str | os.PathLike, *, flag: str = "--out") -> Path:
    """Check, before any work, that a table can be written at `path` (given as CLI `flag`).

    The extension must name a format (`TABLE_FORMATS`) and the nearest existing folder on the way
    must be a writable folder (missing folders are made when writing). Raises `InputError`.
    """
    path = Path(path)
    try:
        _format(path)
    except InputError as exc:
        msg = f"{flag} {exc}"
        raise InputError(msg) from exc
    if path.is_dir():
        msg = f"{flag} {path}: is a folder; give a file name ending in one of {TABLE_FORMATS}"
        raise InputError(msg)
    return check_writable_folder(path, flag=flag)


def check_writable_folder(path: str | os.PathLike, *, flag: str = "--out") -> Path:
    """Check that `path` can be created: its nearest existing ancestor is a writable folder and
    `path` itself is not an existing folder when a file is meant (raises `InputError`)."""
    path = Path(path)
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        msg = f"{flag} {path}: {parent} is not a folder; choose another path"
        raise InputError(msg)
    if not os.access(parent, os.W_OK | os.X_OK):
        msg = f"{flag} {path}: the folder {parent} is not writable; choose another path"
        raise InputError(msg)
    return path


def write_table(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a table atomically, the format chosen by the extension of `path`."""
    path = Path(path)
    suffix = _format(path)
    with atomic_path(path) as tmp:
        if suffix == ".parquet":
            table.to_parquet(tmp, index=False)
        elif suffix == ".csv":
            table.to_csv(tmp, index=False)
        else:
            from astropy.table import Table

            Table.from_pandas(table).write(tmp, format="fits", overwrite=True)
    return path


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a Parquet, CSV or FITS table into pandas; errors name the file."""
    path = Path(path)
    suffix = _format(path)
    if not path.is_file():
        msg = f"{path}: no such file"
        raise InputError(msg)
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix == ".csv":
            return pd.read_csv(path)
        from astropy.table import Table

        table = Table.read(path, format="fits")
        columns = {
            name: np.asarray(table[name]).astype(table[name].dtype.newbyteorder("="))
            for name in table.colnames
            if table[name].ndim == 1
        }
        return pd.DataFrame(columns)
    except InputError:
        raise
    except Exception as exc:  # pandas/pyarrow/astropy raise many types for corrupt files
        msg = f"{path}: cannot read table ({type(exc).__name__}: {exc})"
        raise InputError(msg) from exc
