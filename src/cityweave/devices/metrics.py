"""Counters for what the adapters accepted and refused, and the log line for every refusal.

Kept free of any metrics library: the API layer renders :meth:`DecodeMetrics.prometheus` on its
``/metrics`` endpoint, tests read :meth:`snapshot`. Every refusal is logged once, with the adapter,
topic and reason as structured fields, so an operator can find the device that sends garbage.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

from cityweave.devices.reading import DecodeResult

log = logging.getLogger("cityweave.devices")


class DecodeMetrics:
    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._lock = threading.Lock()
        self._log = logger or log
        self.messages: Counter[str] = Counter()
        self.readings: Counter[str] = Counter()
        self.discovered: Counter[str] = Counter()
        self.rejections: Counter[tuple[str, str]] = Counter()
        self.dropped: Counter[str] = Counter()
        self.unknown_fields: Counter[str] = Counter()

    def observe(self, result: DecodeResult) -> None:
        with self._lock:
            self.messages[result.adapter] += 1
            self.readings[result.adapter] += len(result.readings)
            self.discovered[result.adapter] += len(result.discovered)
            if result.dropped:
                self.dropped[result.adapter] += 1
            # Not a refusal: the data is kept with the raw message. Counted so that a firmware
            # update that renames fields shows up on a dashboard.
            self.unknown_fields[result.adapter] += len(result.unknown)
            for rejection in result.rejections:
                self.rejections[(result.adapter, str(rejection.reason))] += 1
        for rejection in result.rejections:
            self._log.warning(
                "device message refused: %s (%s)", rejection.reason, rejection.detail,
                extra={"adapter": result.adapter, "topic": result.topic, "reason": str(rejection.reason),
                       "field": rejection.field, "device_key": result.device_key},
            )

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {
                "messages": dict(self.messages),
                "readings": dict(self.readings),
                "discovered": dict(self.discovered),
                "dropped": dict(self.dropped),
                "unknown_fields": dict(self.unknown_fields),
                "rejections": {f"{a}:{r}": n for (a, r), n in self.rejections.items()},
            }

    def rejected(self, adapter: str, reason: str) -> int:
        with self._lock:
            return self.rejections[(adapter, reason)]

    def prometheus(self) -> str:
        """The counters in Prometheus text exposition format."""
        lines: list[str] = []
        with self._lock:
            for metric, counter, help_text in (
                ("cityweave_device_messages_total", self.messages, "Device messages decoded."),
                ("cityweave_device_readings_total", self.readings, "Readings produced."),
                ("cityweave_device_discovered_total", self.discovered, "Device announcements."),
                ("cityweave_device_messages_dropped_total", self.dropped,
                 "Messages that yielded nothing usable."),
                ("cityweave_device_unknown_fields_total", self.unknown_fields,
                 "Fields kept raw because no adapter mapping exists (reason unknown_field)."),
            ):
                lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} counter"]
                lines += [f'{metric}{{adapter="{a}"}} {n}' for a, n in sorted(counter.items())]
            metric = "cityweave_device_rejections_total"
            lines += [f"# HELP {metric} Values or messages refused, by reason.", f"# TYPE {metric} counter"]
            lines += [f'{metric}{{adapter="{a}",reason="{r}"}} {n}'
                      for (a, r), n in sorted(self.rejections.items())]
        return "\n".join(lines) + "\n"
