"""Writing alert packets back with our reliability beside the survey's, every other field unchanged.

The output has the input's format: a Confluent message stays a Confluent message with the same
schema id; a container file stays a container file with the same codec. The survey's own score
(Rubin's `diaSource.reliability` and `reliabilityVersion`, ZTF's `rb`, `drb`) is never touched.
Where the format lets us extend the schema, a container file (its writer schema travels with it),
we add top-level nullable fields `reliability` (float) and `reliabilityVersion` (string, our
model's version), as brokers that annotate ZTF alerts do. A Confluent message's schema is fixed by
its id (the official `lsst-alert-packet` schemas), with no field for a second score: it is
copied unchanged. Either way `SIDE_TABLE` in the output folder lists every score written: the
output `file`, the `source` file, `index`, `diaSourceId`, `reliability`, `reliabilityVersion`
and `in_packet` (whether the packet carries it too). Writes are atomic.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path

import fastavro
import pandas as pd

from ..errors import ConfigError, InputError
from ..io.atomic import write_bytes
from ..io.tables import write_table
from ._avro import (
    CONFLUENT_MAGIC,
    CONTAINER_MAGIC,
    decode_confluent,
    read_container,
)
from .reader import AlertFailure

__all__ = ["ADDED_FIELDS", "SIDE_TABLE", "ZTF_ADDED_FIELDS", "rewrite_alert_bytes", "write_alerts"]

#: The table of every score written, in the output folder of `write_alerts`.
SIDE_TABLE = "realbogus-reliability.parquet"

#: Top-level fields added to container files' writer schemas to carry our score.
ADDED_FIELDS = (
    {
        "name": "reliability",
        "type": ["null", "float"],
        "default": None,
        "doc": "realbogus reliability in [0, 1]",
    },
    {
        "name": "reliabilityVersion",
        "type": ["null", "string"],
        "default": None,
        "doc": "realbogus model version",
    },
)

#: The former name (ZTF files were the first to get them).
ZTF_ADDED_FIELDS = ADDED_FIELDS

Scores = Mapping[int, tuple[float, str]]


def _with_added_fields(schema_json: bytes, where: str) -> dict:
    schema = json.loads(schema_json)
    names = {f["name"] for f in schema["fields"]}
    taken = [f["name"] for f in ADDED_FIELDS if f["name"] in names]
    if taken:
        msg = f"{where}: the schema already has top-level field(s) {taken}; not overwritten"
        raise InputError(msg)
    schema["fields"] = schema["fields"] + [dict(f) for f in ADDED_FIELDS]
    return fastavro.parse_schema(schema)


def rewrite_alert_bytes(
    buf: bytes, scores: Scores, *, where: str
) -> tuple[bytes, list[AlertFailure]]:
    """Re-encode one alert container file with `scores` {record index: (reliability, version)}
    in `ADDED_FIELDS`; a Confluent message comes back unchanged (its schema has no field for it).

    Records without a score get null fields; records that do not decode are dropped from the
    output and reported.

    Returns
    -------
    (bytes, failures)
        The new file or message, and the records that could not be carried over.
    """
    failures: list[AlertFailure] = []
    if buf[:1] == CONFLUENT_MAGIC:
        decode_confluent(buf, where=where)  # a message that does not decode is not copied
        return bytes(buf), failures
    if buf[:4] != CONTAINER_MAGIC:
        msg = f"{where}: neither an Avro container file nor a Confluent message"
        raise InputError(msg)
    container = read_container(buf, where=where)
    records = []
    for index, record in container.records():
        if isinstance(record, InputError):
            failures.append(AlertFailure(where, index, f"{record}; not written"))
            continue
        reliability, version = scores.get(index, (None, None))
        record["reliability"] = None if reliability is None else float(reliability)
        record["reliabilityVersion"] = None if version is None else str(version)
        records.append(record)
    schema = _with_added_fields(container.metadata["avro.schema"], where)
    stream = io.BytesIO()
    extra = {
        k: v.decode("utf-8", "replace")
        for k, v in container.metadata.items()
        if not k.startswith("avro.")
    }
    fastavro.writer(stream, schema, records, codec=container.codec, metadata=extra)
    return stream.getvalue(), failures


def write_alerts(
    scores: pd.DataFrame, out_dir: str | os.PathLike, *, overwrite: bool = False
) -> tuple[list[Path], list[AlertFailure]]:
    """Write every scored alert file again under `out_dir`, our reliability beside the survey's
    (module docstring), and `SIDE_TABLE` listing every score written and its model version.

    Parameters
    ----------
    scores : pandas.DataFrame
        A score table from `score_alerts` (columns `file`, `index`, `reliability`,
        `reliabilityVersion`); files are re-read from their paths.
    out_dir : path
        Output folder; files keep their path relative to the inputs' common folder.
    overwrite : bool
        Replace existing output files (default: an existing file is an error, checked first).

    Returns
    -------
    (paths, failures)
        Files written, and records or files that could not be written (with the reason).
    """
    missing = {"file", "index", "reliability", "reliabilityVersion"} - set(scores.columns)
    if missing:
        msg = f"scores lack column(s) {sorted(missing)}; pass the table from score_alerts"
        raise ConfigError(msg)
    out_dir = Path(out_dir)
    groups: dict[str, dict[int, tuple[float, str]]] = {}
    for file, index, reliability, version in zip(
        scores["file"],
        scores["index"],
        scores["reliability"],
        scores["reliabilityVersion"],
        strict=True,
    ):
        if reliability is None or not math.isfinite(float(reliability)):
            continue
        groups.setdefault(str(file), {})[int(index)] = (float(reliability), str(version))
    on_disk = [f for f in groups if os.path.isfile(f)]
    failures = [
        AlertFailure(f, None, "not a file on disk (an in-memory message); use rewrite_alert_bytes")
        for f in groups
        if f not in on_disk
    ]
    if not on_disk:
        return [], failures
    root = os.path.commonpath([os.path.dirname(os.path.abspath(f)) for f in on_disk])
    targets = {f: out_dir / os.path.relpath(os.path.abspath(f), root) for f in on_disk}
    if not overwrite:
        existing = [str(t) for t in targets.values() if t.exists()]
        if existing:
            msg = (
                f"{len(existing)} output file(s) exist, e.g. {existing[0]}; choose another "
                "--write-alerts folder (from Python: overwrite=True)"
            )
            raise ConfigError(msg)
    written, side = [], []
    ids = _ids_by_record(scores)
    for file in on_disk:
        try:
            with open(file, "rb") as handle:
                buf = handle.read()
            data, bad = rewrite_alert_bytes(buf, groups[file], where=file)
        except (InputError, OSError) as exc:
            failures.append(AlertFailure(file, None, f"not written: {exc}"))
            continue
        failures.extend(bad)
        write_bytes(targets[file], data)
        written.append(targets[file])
        lost = {f.index for f in bad}
        for index, (reliability, version) in sorted(groups[file].items()):
            if index in lost:
                continue
            side.append(
                {
                    "file": str(targets[file].relative_to(out_dir)),
                    "source": file,
                    "index": index,
                    "diaSourceId": ids.get((file, index)),
                    "reliability": reliability,
                    "reliabilityVersion": version,
                    "in_packet": buf[:1] != CONFLUENT_MAGIC,
                }
            )
    if side:
        table = pd.DataFrame(side).astype({"diaSourceId": "Int64", "reliability": "float32"})
        write_table(table, out_dir / SIDE_TABLE)
    return written, failures


def _ids_by_record(scores: pd.DataFrame) -> dict[tuple[str, int], int]:
    """{(file, index): diaSourceId} of the scored rows of a score table (empty without ids)."""
    if "diaSourceId" not in scores:
        return {}
    return {
        (str(f), int(i)): int(d)
        for f, i, d in zip(scores["file"], scores["index"], scores["diaSourceId"], strict=True)
        if not (pd.isna(i) or pd.isna(d))
    }
