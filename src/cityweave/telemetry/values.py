"""Turning a Reading's value into the (value_type, num, text) triple the tables store, and back.

See :mod:`cityweave.telemetry.models` for the layout and why booleans are numbers.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from cityweave.devices.capabilities import Value

BOOL, NUMBER, TEXT, OBJECT, NULL = "bool", "number", "text", "object", "null"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class UnstorableValue(ValueError):
    """A value the store refuses (NaN, infinity, a type no capability has)."""


def encode(value: Value) -> tuple[str, float | None, str | None]:
    """``(value_type, num, text)`` for one value. ``bool`` is tested before ``int`` because
    ``True`` is an ``int`` in Python."""
    if value is None:
        return NULL, None, None
    if isinstance(value, bool):
        return BOOL, 1.0 if value else 0.0, None
    if isinstance(value, int | float):
        number = float(value)
        if not math.isfinite(number):
            raise UnstorableValue(f"not a finite number: {value!r}")
        return NUMBER, number, None
    if isinstance(value, str):
        return TEXT, None, value
    if isinstance(value, dict | list):
        return OBJECT, None, json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    raise UnstorableValue(f"unsupported value type {type(value).__name__}")


def decode(value_type: str | None, num: float | None, text: str | None) -> Any:
    """The typed value back; with an unknown ``value_type`` the stored column decides."""
    if value_type == BOOL:
        return None if num is None else num != 0.0
    if value_type == OBJECT:
        return None if text is None else json.loads(text)
    if num is not None:
        return num
    return text


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch; exact (no float rounding) for aware datetimes."""
    if moment.tzinfo is None:
        raise UnstorableValue("naive timestamp; readings carry aware UTC datetimes")
    return (moment - EPOCH) // _ONE_MS


def from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


_ONE_MS = timedelta(milliseconds=1)
