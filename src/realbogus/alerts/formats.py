"""The registry of alert formats: how a decoded Avro record becomes a table row and three cutouts.

A format is told apart by one top-level field of its records (Rubin: ``diaSource``, ZTF:
``candidate``). Its `row` gives the DiaSource-named row (`alerts.reader.ALERT_COLUMNS`; other keys
are dropped) and its `cutouts` the three planes in [difference, science, template] order, where
the source sits in each, and their pixel unit (`alerts.units` converts to a model's). A new format
is one `register_alert_format(AlertFormat(...))` (docs/design.md, "Adding an alert format").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ConfigError, InputError
from .rubin import RUBIN_CUTOUTS, rubin_cutouts, rubin_row
from .ztf import ZTF_CUTOUTS, ztf_cutouts, ztf_row

__all__ = ["ALERT_FORMATS", "AlertFormat", "decode_record", "read_fields", "register_alert_format"]

Row = Callable[..., dict]
Cutouts = Callable[..., tuple[list, list, str]]


@dataclass(frozen=True)
class AlertFormat:
    """One alert format.

    Attributes
    ----------
    survey : str
        Written into the table's `survey` column (``"rubin"``, ``"ztf"``).
    marker : str
        A top-level record field only this format has.
    fields : frozenset of str
        Top-level fields the reader decodes (the others are skipped while decoding).
    row : callable (record, *, where) -> dict
        The table row; may set ``"schema"``.
    cutouts : callable (record, row, *, where) -> (planes, centres, unit)
        Three 2-d planes [difference, science, template], the (row, col) of the source in each,
        and their pixel unit (e.g. ``"nJy"``, ``"DN"``).
    """

    survey: str
    marker: str
    fields: frozenset[str]
    row: Row
    cutouts: Cutouts


#: Registered formats by survey name, tried in registration order.
ALERT_FORMATS: dict[str, AlertFormat] = {}


def register_alert_format(fmt: AlertFormat) -> AlertFormat:
    """Add a format (a survey name and a marker field are registered once); returns it."""
    for other in ALERT_FORMATS.values():
        if other != fmt and (other.survey == fmt.survey or other.marker == fmt.marker):
            msg = f"an alert format for survey {other.survey!r} with marker {other.marker!r} is already registered"
            raise ConfigError(msg)
    ALERT_FORMATS[fmt.survey] = fmt
    return fmt


def read_fields() -> frozenset[str]:
    """Top-level record fields any registered format needs."""
    return frozenset().union(*(fmt.fields for fmt in ALERT_FORMATS.values()))


def decode_record(record: dict, where: str) -> tuple[dict, list, list, str]:
    """One decoded Avro record -> (row, planes, centres, unit), by the format whose marker it has."""
    if not isinstance(record, dict):
        msg = f"{where}: record is not an Avro record"
        raise InputError(msg)
    for fmt in ALERT_FORMATS.values():
        if fmt.marker in record:
            row = fmt.row(record, where=where)
            planes, centres, unit = fmt.cutouts(record, row, where=where)
            row["survey"] = fmt.survey
            return row, planes, centres, unit
    known = ", ".join(f"{f.survey} (no {f.marker})" for f in ALERT_FORMATS.values())
    msg = f"{where}: record is not an alert of a registered format: not {known}"
    raise InputError(msg)


def _ztf_row(record: dict, *, where: str) -> dict:
    row = ztf_row(record, where=where)
    vsn = row.pop("schemavsn")
    row["schema"] = None if vsn is None else str(vsn)
    return row


register_alert_format(
    AlertFormat(
        "rubin",
        "diaSource",
        frozenset({"diaSourceId", "diaSource", *RUBIN_CUTOUTS}),
        rubin_row,
        rubin_cutouts,
    )
)
register_alert_format(
    AlertFormat(
        "ztf",
        "candidate",
        frozenset({"candid", "objectId", "schemavsn", "candidate", *ZTF_CUTOUTS}),
        _ztf_row,
        ztf_cutouts,
    )
)
