"""Writing alert packets back with our reliability filled in, every other field unchanged.

The output has the input's format: a Confluent message stays a Confluent message with the same
schema id; a container file stays a container file with the same writer schema and codec.
Rubin schemas have `diaSource.reliability` (and, from v11, `diaSource.reliabilityVersion`), which
we fill. ZTF schemas have no such field: like brokers that annotate ZTF alerts, we add top-level
nullable fields `reliability` (float) and `reliabilityVersion` (string) to the writer schema.
Writes are atomic (temporary file, then `os.replace`).
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
from ._avro import (
    CONFLUENT_MAGIC,
    CONTAINER_MAGIC,
    decode_confluent,
    encode_confluent,
    read_container,
)
from .reader import AlertFailure

__all__ = ["ZTF_ADDED_FIELDS", "rewrite_alert_bytes", "write_alerts"]

#: Top-level fields added to ZTF writer schemas to carry our score.
ZTF_ADDED_FIELDS = (
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

Scores = Mapping[int, tuple[float, str]]


def _fill(record: dict, score: tuple[float, str], *, where: str) -> None:
    reliability, version = float(score[0]), str(score[1])
    if "diaSource" in record:
        source = record["diaSource"]
        if "reliability" not in source:
            msg = f"{where}: this Rubin schema has no diaSource.reliability field to fill"
            raise InputError(msg)
        source["reliability"] = reliability
        if "reliabilityVersion" in source:
            source["reliabilityVersion"] = version
    else:
        record["reliability"] = reliability
        record["reliabilityVersion"] = version


def _with_ztf_fields(schema_json: bytes) -> dict:
    schema = json.loads(schema_json)
    names = {f["name"] for f in schema["fields"]}
    schema["fields"] = schema["fields"] + [
        dict(f) for f in ZTF_ADDED_FIELDS if f["name"] not in names
    ]
    return fastavro.parse_schema(schema)


def rewrite_alert_bytes(
    buf: bytes, scores: Scores, *, where: str
) -> tuple[bytes, list[AlertFailure]]:
    """Re-encode one alert file or message with `scores` {record index: (reliability, version)}.

    Records without a score are written unchanged (ZTF ones with null `reliability`); records
    that do not decode are dropped from the output and reported.

    Returns
    -------
    (bytes, failures)
        The new file or message, and the records that could not be carried over.
    """
    failures: list[AlertFailure] = []
    if buf[:1] == CONFLUENT_MAGIC:
        schema_id, record = decode_confluent(buf, where=where)
        if 0 in scores:
            _fill(record, scores[0], where=where)
        return encode_confluent(record, schema_id), failures
    if buf[:4] != CONTAINER_MAGIC:
        msg = f"{where}: neither an Avro container file nor a Confluent message"
        raise InputError(msg)
    container = read_container(buf, where=where)
    records = []
    for index, record in container.records():
        if isinstance(record, InputError):
            failures.append(AlertFailure(where, index, f"{record}; not written"))
            continue
        if index in scores:
            _fill(record, scores[index], where=f"{where} record {index}")
        records.append(record)
    schema = container.schema
    if any("candidate" in r and "diaSource" not in r for r in records):
        schema = _with_ztf_fields(container.metadata["avro.schema"])
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
    """Write every scored alert file again under `out_dir` with our reliability filled in.

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
            msg = f"{len(existing)} output file(s) exist, e.g. {existing[0]}; pass overwrite=True or another folder"
            raise ConfigError(msg)
    written = []
    for file in on_disk:
        try:
            with open(file, "rb") as handle:
                data, bad = rewrite_alert_bytes(handle.read(), groups[file], where=file)
        except (InputError, OSError) as exc:
            failures.append(AlertFailure(file, None, f"not written: {exc}"))
            continue
        failures.extend(bad)
        write_bytes(targets[file], data)
        written.append(targets[file])
    return written, failures
