"""Tables by extension (.parquet, .csv, .fits), read with errors that name the file, written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from .atomic import atomic_path

__all__ = ["TABLE_FORMATS", "read_table", "write_table"]

TABLE_FORMATS = (".parquet", ".csv", ".fits")


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".fit", ".fts"):
        suffix = ".fits"
    if suffix not in TABLE_FORMATS:
        msg = f"{path}: unknown table format {path.suffix!r}; use one of {TABLE_FORMATS}"
        raise InputError(msg)
    return suffix


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
