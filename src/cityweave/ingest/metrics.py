"""Counters of the transport and the pipeline, next to the adapters' :class:`DecodeMetrics`.

Message-level outcomes (``dropped_total{reason}``) complement the adapters' value-level
rejections: a message is dropped when nothing usable came out of it (its first reason counts), when
no adapter subscribes to its topic (``unexpected_topic``), when its receipt shows it was stored
already (``duplicate``), when it is the second copy of a life-safety message the other MQTT session
brought first (``safety_copy``: processed once, not lost; see ``pipeline.SafetyCopies``) or when
the store refused it alone (``store_error``).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

from cityweave.devices.metrics import DecodeMetrics


class IngestMetrics:
    def __init__(self, decode: DecodeMetrics | None = None) -> None:
        self._lock = threading.Lock()
        self.decode = decode or DecodeMetrics()
        self.received: Counter[str] = Counter()  # by transport: mqtt, http
        self.processed = 0
        self.readings_stored = 0
        self.batches = 0
        self.dropped: Counter[str] = Counter()
        self.store_retries = 0
        self.batch_seconds_sum = 0.0
        self.batch_seconds_max = 0.0
        self.lag_seconds = 0.0  # now - received_at of the oldest message of the last batch
        self.queue_depth: Callable[[], int] = lambda: 0
        self.connected: Callable[[], bool] = lambda: False

    def received_one(self, transport: str) -> None:
        with self._lock:
            self.received[transport] += 1

    def drop(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self.dropped[reason] += n

    def batch_done(self, messages: int, readings: int, seconds: float, lag: float) -> None:
        with self._lock:
            self.processed += messages
            self.readings_stored += readings
            self.batches += 1
            self.batch_seconds_sum += seconds
            self.batch_seconds_max = max(self.batch_seconds_max, seconds)
            self.lag_seconds = lag

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            return {
                "received": dict(self.received), "processed": self.processed,
                "readings_stored": self.readings_stored, "batches": self.batches,
                "dropped": dict(self.dropped), "store_retries": self.store_retries,
                "queue_depth": self.queue_depth(), "lag_seconds": self.lag_seconds,
                "connected": self.connected(),
            }

    def prometheus(self) -> str:
        """Prometheus text for the ingest counters followed by the adapters' counters."""
        lines: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
            lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"])
            lines.extend(f"{name}{labels} {value:g}" for labels, value in samples)

        with self._lock:
            metric("cityweave_ingest_received_total", "counter", "Messages received, by transport.",
                   [(f'{{transport="{t}"}}', n) for t, n in sorted(self.received.items())])
            metric("cityweave_ingest_processed_total", "counter", "Messages processed and acknowledged.",
                   [("", self.processed)])
            metric("cityweave_ingest_readings_stored_total", "counter", "Readings handed to the store.",
                   [("", self.readings_stored)])
            metric("cityweave_ingest_dropped_total", "counter", "Messages dropped, by reason.",
                   [(f'{{reason="{r}"}}', n) for r, n in sorted(self.dropped.items())])
            metric("cityweave_ingest_store_retries_total", "counter", "Batches retried after a store error.",
                   [("", self.store_retries)])
            metric("cityweave_ingest_batch_seconds", "summary", "Time to decode, store and commit a batch.",
                   [("_sum", self.batch_seconds_sum), ("_count", self.batches)])
            metric("cityweave_ingest_batch_seconds_max", "gauge", "Slowest batch so far.",
                   [("", self.batch_seconds_max)])
            metric("cityweave_ingest_lag_seconds", "gauge",
                   "Age of the oldest message of the last batch when it was committed.", [("", self.lag_seconds)])
        metric("cityweave_ingest_queue_depth", "gauge", "Messages waiting between transport and worker.",
               [("", self.queue_depth())])
        metric("cityweave_ingest_broker_connected", "gauge", "1 while connected to the MQTT broker.",
               [("", 1 if self.connected() else 0)])
        return "\n".join(lines) + "\n" + self.decode.prometheus()
