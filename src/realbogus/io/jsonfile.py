"""Strict JSON: what realbogus writes is standard JSON (RFC 8259), never NaN or Infinity.

Undefined numbers (a purity with nothing selected, an infinite loss) are written as null; numpy
scalars and arrays become Python numbers and lists. Every JSON file realbogus writes (card.json,
manifest.json, metrics.json, summaries) goes through `dumps_strict`.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

__all__ = ["dumps_strict", "jsonable"]


def jsonable(value: Any) -> Any:
    """NaN and +-inf -> None, numpy scalars and arrays -> Python, tuples -> lists, recursively."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return number if math.isfinite(number) else None
    return value


def dumps_strict(value: Any, *, indent: int | None = 2, **kwargs: Any) -> str:
    """`json.dumps` of `jsonable(value)`; raises ValueError if a non-finite number got through."""
    return json.dumps(jsonable(value), indent=indent, allow_nan=False, **kwargs)
