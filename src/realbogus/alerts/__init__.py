"""Rubin and ZTF alert packets: reading them into stamps and a table, scoring, writing them back.

No torch here: decoding runs in worker processes that never load a model.
"""

from ._avro import rubin_schema, rubin_schema_ids
from ._fits import decode_fits, decode_fits_hdus
from .reader import ALERT_SUFFIXES, AlertBatch, AlertFailure, expand_sources, iter_alert_batches, read_alerts

__all__ = [
    "ALERT_SUFFIXES",
    "AlertBatch",
    "AlertFailure",
    "decode_fits",
    "decode_fits_hdus",
    "expand_sources",
    "iter_alert_batches",
    "read_alerts",
    "rubin_schema",
    "rubin_schema_ids",
]
