"""Channel plugins: how an outbox row leaves the building.

A :class:`Channel` takes one rendered :class:`Message` for one :class:`Recipient` and either
returns (delivered), or raises :class:`DeliveryError` (``permanent=False``: try again later with
backoff; ``permanent=True``: give up now) or :class:`NoAddress` (nothing to send to: suppressed).

* ``webhook``: an HTTP POST of JSON to the recipient's webhook URL, signed with HMAC-SHA256;
* ``sms`` and ``voice``: through a :class:`TextProvider`. The only provider shipped is
  :class:`LogProvider`, which **sends nothing**: it writes the message to the log (phone number
  masked) and keeps the last ones in memory. The demo uses it; a real SMS gateway (Aliyun,
  Tencent Cloud, Twilio, ...) is one small class implementing the protocol.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import httpx

from cityweave.security.masking import mask_phone

log = logging.getLogger("cityweave.notifications")

SIGNATURE_HEADER = "X-CityWeave-Signature"
TIMESTAMP_HEADER = "X-CityWeave-Timestamp"
DELIVERY_HEADER = "X-CityWeave-Delivery"


@dataclass(frozen=True)
class Recipient:
    user_id: str
    locale: str
    display_name: str = ""
    phone: str | None = None
    webhook_url: str | None = None


@dataclass(frozen=True)
class Message:
    id: int
    channel: str
    kind: str
    severity: str
    subject: str
    body: str
    locale: str
    created_at: datetime
    place_path: str | None = None
    ref: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "severity": self.severity, "subject": self.subject,
                "body": self.body, "locale": self.locale, "created_at": self.created_at.isoformat(),
                "place_path": self.place_path, "ref": self.ref, "data": self.data}


class DeliveryError(Exception):
    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.permanent = permanent


class NoAddress(Exception):
    """The recipient has nowhere to receive this channel (no phone, no webhook URL)."""


class Channel(Protocol):
    name: str

    def send(self, recipient: Recipient, message: Message) -> None: ...


# -- webhook ------------------------------------------------------------------------------------
def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">``: the receiver recomputes it with the
    shared secret and rejects old timestamps, so a captured request cannot be replayed later."""
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: bytes, timestamp: str, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


class WebhookChannel:
    name = "webhook"

    def __init__(self, secret: bytes, *, timeout: float = 5.0, client: httpx.Client | None = None) -> None:
        self.secret = secret
        self.timeout = timeout
        self._client = client  # made on first use: most installations never call a webhook
        self._lock = threading.Lock()

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self.timeout, follow_redirects=False)
            return self._client

    def send(self, recipient: Recipient, message: Message) -> None:
        if not recipient.webhook_url:
            raise NoAddress("no webhook URL")
        body = json.dumps(message.as_json(), ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self.secret, timestamp, body),
            DELIVERY_HEADER: str(message.id),  # the same on retries: receivers drop duplicates
            "User-Agent": "CityWeave-Webhook/1",
        }
        try:
            response = self._http().post(recipient.webhook_url, content=body, headers=headers,
                                         timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}"[:300]) from exc
        if response.is_success:
            return
        # Client errors will not get better by themselves (except timeouts and rate limits).
        permanent = 400 <= response.status_code < 500 and response.status_code not in (408, 425, 429)
        raise DeliveryError(f"HTTP {response.status_code}", permanent=permanent)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


# -- SMS and voice ------------------------------------------------------------------------------
class TextProvider(Protocol):
    def send_sms(self, phone: str, text: str) -> None: ...

    def call(self, phone: str, text: str) -> None: ...


class LogProvider:
    """Sends nothing: logs each SMS or call (phone masked) and keeps the last ``keep`` in
    ``sent`` as (kind, phone, text). For the demo and tests, not for production."""

    def __init__(self, keep: int = 1000) -> None:
        self.sent: deque[tuple[str, str, str]] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def send_sms(self, phone: str, text: str) -> None:
        self._record("sms", phone, text)

    def call(self, phone: str, text: str) -> None:
        self._record("voice", phone, text)

    def _record(self, kind: str, phone: str, text: str) -> None:
        with self._lock:
            self.sent.append((kind, phone, text))
        log.info("[%s not sent: log provider] to %s: %s", kind, mask_phone(phone), text)


class SmsChannel:
    name = "sms"

    def __init__(self, provider: TextProvider) -> None:
        self.provider = provider

    def send(self, recipient: Recipient, message: Message) -> None:
        if not recipient.phone:
            raise NoAddress("no phone number")
        self.provider.send_sms(recipient.phone, f"{message.subject}\n{message.body}".strip())


class VoiceChannel:
    name = "voice"

    def __init__(self, provider: TextProvider) -> None:
        self.provider = provider

    def send(self, recipient: Recipient, message: Message) -> None:
        if not recipient.phone:
            raise NoAddress("no phone number")
        self.provider.call(recipient.phone, message.subject)
