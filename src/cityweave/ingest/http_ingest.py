"""HTTP ingest for devices without MQTT: the same decoding, the same queue, the same sinks.

A device authenticates with its device token (``X-Device-Token``); the token names the device, so
the message is decoded as if published on that device's own native topic
(``cityweave/v1/<address>/<kind>``). A body that names another device is refused as
``topic_mismatch``, exactly like a device publishing on another device's MQTT topic.

Decoding happens in the request, because the answer needs the verdict (422 with the reasons);
storing happens in the pipeline's next batch (202 Accepted). A full queue answers 503 with
Retry-After: back-pressure reaches HTTP clients too. Token checking goes through the small
:class:`DeviceTokenVerifier` protocol; the device registry provides the real one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol

from cityweave.devices.binding import DeviceBinding
from cityweave.devices.reading import DecodeResult
from cityweave.devices.reasons import Reason
from cityweave.ingest.pipeline import Inbound, Pipeline

KINDS = ("state", "event", "availability", "announce")


class DeviceTokenVerifier(Protocol):
    def verify(self, token: str) -> DeviceBinding | None:
        """The binding of the device holding ``token``; None for a wrong, revoked or unbound one."""
        ...


class InMemoryTokenVerifier:
    """token -> binding in a dict: tests and the single-process demo."""

    def __init__(self, tokens: dict[str, DeviceBinding] | None = None) -> None:
        self.tokens = dict(tokens or {})

    def verify(self, token: str) -> DeviceBinding | None:
        return self.tokens.get(token)


class Verdict(enum.StrEnum):
    ACCEPTED = "accepted"
    UNAUTHENTICATED = "unauthenticated"
    MALFORMED = "malformed"
    OVERSIZE = "oversize"
    REJECTED = "rejected"
    BUSY = "busy"


@dataclass
class Outcome:
    verdict: Verdict
    readings: int = 0
    rejections: list[dict[str, str]] = field(default_factory=list)
    device_key: str | None = None


class HttpIngest:
    def __init__(self, pipeline: Pipeline, verifier: DeviceTokenVerifier, *, queue_timeout: float = 2.0) -> None:
        self.pipeline = pipeline
        self.verifier = verifier
        self.queue_timeout = queue_timeout

    def accept(self, token: str | None, kind: str, body: bytes) -> Outcome:
        binding = self.verifier.verify(token) if token else None
        if binding is None or binding.adapter != "native":
            self.pipeline.metrics.drop("unauthenticated")
            return Outcome(Verdict.UNAUTHENTICATED)
        topic = f"cityweave/v1/{binding.address}/{kind}"
        received_at = self.pipeline.clock.now()
        result = self.pipeline.decode(topic, body, received_at)
        if result is None:  # the native adapter always handles its topics
            return Outcome(Verdict.REJECTED, rejections=[{"reason": str(Reason.UNEXPECTED_TOPIC), "detail": topic}])
        rejections = [{"reason": str(r.reason), "detail": r.detail, **({"field": r.field} if r.field else {})}
                      for r in result.rejections]
        if _usable(result) is False:
            reasons = set(result.reasons())
            verdict = (Verdict.OVERSIZE if Reason.OVERSIZE in reasons
                       else Verdict.MALFORMED if reasons & {Reason.MALFORMED_JSON, Reason.BAD_ENCODING}
                       else Verdict.REJECTED)
            self.pipeline.metrics.received_one("http")
            self.pipeline.metrics.drop(str(result.rejections[0].reason) if result.rejections else "empty")
            return Outcome(verdict, rejections=rejections, device_key=binding.device_key)
        item = Inbound(topic, body, received_at, transport="http", decoded=result)
        if not self.pipeline.submit(item, timeout=self.queue_timeout):
            return Outcome(Verdict.BUSY, device_key=binding.device_key)
        return Outcome(Verdict.ACCEPTED, readings=len(result.readings), rejections=rejections,
                       device_key=binding.device_key)


def _usable(result: DecodeResult) -> bool:
    return bool(result.readings or result.discovered or result.availability)
