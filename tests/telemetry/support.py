"""Helpers for the telemetry tests: readings, brute-force aggregates from raw rows."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityweave.devices.reading import Reading
from cityweave.telemetry.models import readings

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def reading(device: str, capability: str, value: Any, seconds: float, endpoint: str | None = None,
            unit: str | None = None) -> Reading:
    return Reading(device, capability, value, at(seconds), unit=unit, endpoint=endpoint)


@dataclass
class Expected:
    count: int = 0
    min: float | None = None
    max: float | None = None
    sum: float | None = None
    last_ts: int = -1
    last_num: float | None = None
    last_text: str | None = None

    def add(self, ts: int, num: float | None, text: str | None) -> None:
        self.count += 1
        if num is not None:
            self.min = num if self.min is None else min(self.min, num)
            self.max = num if self.max is None else max(self.max, num)
            self.sum = num if self.sum is None else self.sum + num
        if ts >= self.last_ts:
            self.last_ts, self.last_num, self.last_text = ts, num, text


def raw_rows(session: Session) -> list[Any]:
    c = readings.c
    return list(session.execute(select(c.device_key, c.capability, c.endpoint, c.ts_ms, c.num, c.text)))


def brute_force(rows: list[Any], origin_ms: int, width_ms: int, end_ms: int | None = None) -> dict[tuple, Expected]:
    """{(device, capability, endpoint, bucket_start_ms): Expected} straight from raw rows."""
    out: dict[tuple, Expected] = defaultdict(Expected)
    for device, capability, endpoint, ts, num, text in rows:
        if ts < origin_ms or (end_ms is not None and ts >= end_ms) or (num is None and text is None):
            continue
        bucket = origin_ms + (ts - origin_ms) // width_ms * width_ms
        out[(device, capability, endpoint, bucket)].add(ts, num, text)
    return dict(out)
