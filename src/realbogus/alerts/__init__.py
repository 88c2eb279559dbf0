"""Rubin and ZTF alert packets: reading them into stamps and a table, scoring, writing them back.

No torch here: decoding runs in worker processes that never load a model.
"""

from ._avro import rubin_schema, rubin_schema_ids
from ._fits import decode_fits, decode_fits_hdus
from .formats import ALERT_FORMATS, AlertFormat, register_alert_format
from .reader import (
    ALERT_SUFFIXES,
    AlertBatch,
    AlertFailure,
    expand_sources,
    iter_alert_batches,
    read_alerts,
)
from .score import PASS_THROUGH, AlertScores, score_alerts, score_batch
from .writer import rewrite_alert_bytes, write_alerts

__all__ = [
    "ALERT_FORMATS",
    "AlertFormat",
    "register_alert_format",
    "ALERT_SUFFIXES",
    "AlertBatch",
    "AlertFailure",
    "AlertScores",
    "PASS_THROUGH",
    "rewrite_alert_bytes",
    "score_alerts",
    "score_batch",
    "write_alerts",
    "decode_fits",
    "decode_fits_hdus",
    "expand_sources",
    "iter_alert_batches",
    "read_alerts",
    "rubin_schema",
    "rubin_schema_ids",
]
