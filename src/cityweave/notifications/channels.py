"""Channel plugins: how an outbox row leaves the building.

A :class:`Channel` takes one rendered :class:`Message` for one :class:`Recipient` and either
returns (delivered), or raises :class:`DeliveryError` (``permanent=False``: try again later with
backoff; ``permanent=True``: give up now) or :class:`NoAddress` (nothing to send to: suppressed).

* ``webhook``: an HTTP POST of JSON to the recipient's webhook URL, signed with HMAC-SHA256;
  :func:`check_webhook_url` (the one SSRF guard, also used when a user saves the URL) refuses
  URLs that are not http(s), carry credentials, or lead to an internal address;
* ``sms`` and ``voice``: through a :class:`TextProvider`. The only provider shipped is
  :class:`LogProvider`, which **sends nothing**: it writes the message to the log (phone number
  masked) and keeps the last ones in memory. The demo uses it; a real SMS gateway (Aliyun,
  Tencent Cloud, Twilio, ...) is one small class implementing the protocol.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

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


# -- the SSRF guard ------------------------------------------------------------------------------
Resolver = Callable[..., list[tuple[Any, ...]]]
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class WebhookUrlRefused(ValueError):
    """A webhook URL the server will not call. ``unresolved``: only the DNS lookup failed (it may
    work later), as opposed to a URL that is refused for what it is or where it leads."""

    def __init__(self, reason: str, *, unresolved: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unresolved = unresolved


def _embedded_ipv4(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped ::ffff:a.b.c.d, 6to4, NAT64, Teredo)."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def internal_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why ``ip`` is not a public internet address (loopback, private, ...), or None if it is."""
    for candidate in (ip, _embedded_ipv4(ip)):
        if candidate is None:
            continue
        for flag in ("loopback", "unspecified", "link_local", "multicast", "private", "reserved"):
            if getattr(candidate, f"is_{flag}"):
                return flag.replace("_", "-")
        if getattr(candidate, "is_site_local", False):
            return "site-local"
        if not candidate.is_global:
            return "non-global"
    return None


def check_webhook_url(url: str, *, allow_private: bool = False,
                      resolve: Resolver = socket.getaddrinfo) -> str:
    """Refuse (:class:`WebhookUrlRefused`) a webhook URL the server must not POST to: not http or
    https, with credentials (``user:pass@``), no host, or a host that is, or resolves to, a
    loopback, private, link-local, multicast, reserved, unspecified or otherwise non-global
    address. Every address a name resolves to must pass (the client may use any of them).
    ``allow_private`` (``CITYWEAVE_NOTIFY_WEBHOOK_ALLOW_PRIVATE``) lets internal addresses through;
    the other rules still hold. Returns the URL unchanged.

    Called when a user saves the URL *and* before every delivery, so that a name which later
    resolves to an internal address is still refused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookUrlRefused(f"the webhook URL is not a valid URL ({exc})") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise WebhookUrlRefused("the webhook URL must start with http:// or https://")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise WebhookUrlRefused("the webhook URL must not contain credentials (user:password@)")
    host = parts.hostname
    if not host:
        raise WebhookUrlRefused("the webhook URL has no host")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise WebhookUrlRefused("the webhook URL must not contain spaces or control characters")
    if allow_private:
        return url
    try:
        literal: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = resolve(host, port or (443 if parts.scheme.lower() == "https" else 80),
                            type=socket.SOCK_STREAM)
            addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
        except (OSError, UnicodeError, ValueError) as exc:
            raise WebhookUrlRefused(f"the webhook host {host!r} cannot be resolved",
                                    unresolved=True) from exc
        if not addresses:
            raise WebhookUrlRefused(f"the webhook host {host!r} cannot be resolved", unresolved=True)
    for address in addresses:
        why = internal_address(address)
        if why is not None:
            shown = "" if literal is not None else f" (resolves to {address})"
            raise WebhookUrlRefused(
                f"the webhook host {host!r}{shown} is a {why} address; webhooks go to public addresses only")
    return url


class WebhookChannel:
    name = "webhook"

    def __init__(self, secret: bytes, *, timeout: float = 5.0, client: httpx.Client | None = None,
                 allow_private: bool | None = None, resolve: Resolver = socket.getaddrinfo) -> None:
        self.secret = secret
        self.timeout = timeout
        # None: the installation's CITYWEAVE_NOTIFY_WEBHOOK_ALLOW_PRIVATE, applied by the
        # Dispatcher that gets this channel; until then (and if nobody sets it) refused.
        self.allow_private = allow_private
        self._resolve = resolve
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
        try:
            check_webhook_url(recipient.webhook_url, allow_private=bool(self.allow_private),
                              resolve=self._resolve)
        except WebhookUrlRefused as exc:  # a name that cannot be resolved now may resolve later
            raise DeliveryError(f"webhook URL refused: {exc.reason}"[:300],
                                permanent=not exc.unresolved) from exc
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
