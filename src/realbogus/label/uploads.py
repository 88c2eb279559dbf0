"""Alert packets an admin uploads while the service runs (``POST /api/admin/alerts``).

An upload is the bytes of one Avro alert file (ZTF, or Rubin's: a container or Confluent wire
format, any number of records), read by `realbogus.alerts.reader.read_alerts` before anything is
kept. A packet that adds subjects is saved in the ``serve --uploads`` folder, named by its SHA-256
(never by anything the client sends), written atomically with the umask's permissions, so a
restart finds its subjects again; a restart reads every ``*.avro`` of the folder.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..alerts.reader import AlertBatch, read_alerts
from ..errors import InputError
from ..io.atomic import file_mode, write_bytes

__all__ = ["UPLOAD_SUFFIX", "decode_upload", "read_uploads", "save_upload", "uploads_folder"]

UPLOAD_SUFFIX = ".avro"


def _reasons(batch: AlertBatch, limit: int = 3) -> str:
    return "; ".join(f.reason for f in batch.failures[:limit]) or "no records"


def decode_upload(payload: bytes, *, stamp_size: int) -> AlertBatch:
    """Read an uploaded alert file.

    Parameters
    ----------
    payload : bytes
        The file's bytes.
    stamp_size : int
        Stamp side S of the service's subjects, pixels.

    Returns
    -------
    AlertBatch
        At least one alert; `failures` lists the records that did not read.

    Raises
    ------
    InputError
        No record of the file reads as an alert packet (the reasons are in the message).
    """
    if not payload:
        msg = "the upload is empty: send the bytes of one Avro alert file"
        raise InputError(msg)
    batch = read_alerts(payload, stamp_size=stamp_size, workers=0)
    if len(batch) == 0:
        msg = f"no alert packet in the upload could be read: {_reasons(batch)}"
        raise InputError(msg)
    return batch


def uploads_folder(folder: str | os.PathLike, data: str | os.PathLike) -> Path:
    """The ``--uploads`` folder, made (umask permissions) if missing; it may not lie in DATA,
    whose alert folders are read recursively."""
    folder, data = Path(folder).resolve(), Path(data).resolve()
    if folder == data or data in folder.parents:
        msg = f"--uploads {folder} lies inside DATA {data}; give a folder outside it"
        raise InputError(msg)
    if folder.exists() and not folder.is_dir():
        msg = f"--uploads {folder} is not a folder"
        raise InputError(msg)
    folder.mkdir(parents=True, exist_ok=True, mode=file_mode(directory=True))
    return folder


def save_upload(payload: bytes, folder: Path) -> Path:
    """Keep an accepted upload as ``<sha256>.avro`` in `folder` (atomic); returns its path."""
    path = folder / (hashlib.sha256(payload).hexdigest() + UPLOAD_SUFFIX)
    if not path.exists():
        write_bytes(path, payload)
    return path


def read_uploads(folder: Path, *, stamp_size: int) -> AlertBatch | None:
    """Every saved upload of `folder`, in name order; None when there is none.

    Raises
    ------
    InputError
        A saved upload no longer reads (it was checked when it was accepted).
    """
    files = sorted(folder.glob("*" + UPLOAD_SUFFIX))
    if not files:
        return None
    batch = read_alerts([str(f) for f in files], stamp_size=stamp_size, workers=0)
    if batch.failures:
        first = batch.failures[0]
        msg = (
            f"--uploads {folder}: {first.file} no longer reads ({first.reason}); move it out "
            "of the folder and serve again"
        )
        raise InputError(msg)
    return batch
