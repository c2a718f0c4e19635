"""Channel plugins: how an outbox row leaves the building.

A :class:`Channel` takes one rendered :class:`Message` for one :class:`Recipient` and either
returns (delivered), or raises :class:`DeliveryError` (``permanent=False``: try again later with
backoff; ``permanent=True``: give up now) or :class:`NoAddress` (nothing to send to: suppressed).

* ``webhook``: an HTTP POST of JSON to the recipient's webhook URL (a user's, or a rule's own),
  signed with HMAC-SHA256; :func:`check_webhook_url` (the one SSRF guard, also used when a user
  saves the URL) refuses URLs that are not http(s), carry credentials, or lead to an internal
  address. When sending, the name is resolved ONCE (:func:`pin_webhook_url`), every address is
  checked, and the connection goes to a vetted address (:func:`pinned_request`: the URL's host is
  the IP; the Host header, TLS SNI and certificate check keep the name), so a DNS server that
  answers a public address to the check and an internal one to the connect gains nothing;
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
from urllib.parse import SplitResult, urlsplit

import httpx

from cityweave.i18n import translate
from cityweave.security.masking import mask_phone, mask_url

log = logging.getLogger("cityweave.notifications")

SIGNATURE_HEADER = "X-CityWeave-Signature"
TIMESTAMP_HEADER = "X-CityWeave-Timestamp"
DELIVERY_HEADER = "X-CityWeave-Delivery"


@dataclass(frozen=True)
class Recipient:
    user_id: str  # "" for a rule's own webhook (an outbox row of no user)
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
    # The whole JSON body instead of the rendered message (a rule's webhook: rule_key, ...).
    payload: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        if self.payload is not None:
            return {"id": self.id, **self.payload}
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
    work later), as opposed to a URL that is refused for what it is or where it leads. ``reason``
    is English; :meth:`message` words it in another language (catalogue ``notify.webhook_url.*``)."""

    def __init__(self, key: str, *, unresolved: bool = False, **params: str) -> None:
        self.key = key
        self.params = params
        self.unresolved = unresolved
        self.reason = self.message("en")
        super().__init__(self.reason)

    def message(self, locale: str) -> str:
        params = dict(self.params)
        if "why" in params:
            params["why"] = translate(f"notify.address.{params['why']}", locale)
        return translate(f"notify.webhook_url.{self.key}", locale, **params)


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


@dataclass(frozen=True)
class PinnedUrl:
    """A webhook URL resolved once and vetted: connect to one of ``addresses`` (all checked),
    never to what the name resolves to later."""

    url: str
    scheme: str
    host: str  # as in the URL (lower case, no brackets)
    port: int | None
    addresses: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]


def _parse(url: str) -> tuple[SplitResult, str, int | None]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookUrlRefused("invalid", error=str(exc)) from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise WebhookUrlRefused("scheme")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise WebhookUrlRefused("credentials")
    host = parts.hostname
    if not host:
        raise WebhookUrlRefused("no_host")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise WebhookUrlRefused("spaces")
    return parts, host, port


def _resolve_all(parts: SplitResult, host: str, port: int | None, resolve: Resolver,
                 ) -> tuple[bool, list[ipaddress.IPv4Address | ipaddress.IPv6Address]]:
    """(whether ``host`` is a literal, its addresses): one lookup, every address it answers."""
    try:
        return True, [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = resolve(host, port or (443 if parts.scheme.lower() == "https" else 80), type=socket.SOCK_STREAM)
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    except (OSError, UnicodeError, ValueError) as exc:
        raise WebhookUrlRefused("unresolved", unresolved=True, host=host) from exc
    if not addresses:
        raise WebhookUrlRefused("unresolved", unresolved=True, host=host)
    return False, list(dict.fromkeys(addresses))


def _refuse_internal(host: str, literal: bool,
                     addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address]) -> None:
    for address in addresses:
        why = internal_address(address)
        if why is not None:
            if literal:
                raise WebhookUrlRefused("internal", host=host, why=why)
            raise WebhookUrlRefused("internal_resolved", host=host, address=str(address), why=why)


def check_webhook_url(url: str, *, allow_private: bool = False,
                      resolve: Resolver = socket.getaddrinfo) -> str:
    """Refuse (:class:`WebhookUrlRefused`) a webhook URL the server must not POST to: not http or
    https, with credentials (``user:pass@``), no host, or a host that is, or resolves to, a
    loopback, private, link-local, multicast, reserved, unspecified or otherwise non-global
    address. Every address a name resolves to must pass (the client may use any of them).
    ``allow_private`` (``CITYWEAVE_NOTIFY_WEBHOOK_ALLOW_PRIVATE``) lets internal addresses through;
    the other rules still hold. Returns the URL unchanged.

    Called when a user saves the URL: :func:`pin_webhook_url`'s checks (with ``allow_private`` the
    name is not looked up at all). Every delivery pins again, so that a name which later resolves
    to an internal address is still refused."""
    if allow_private:
        _parse(url)
    else:
        pin_webhook_url(url, resolve=resolve)
    return url


def pin_webhook_url(url: str, *, allow_private: bool = False,
                    resolve: Resolver = socket.getaddrinfo) -> PinnedUrl:
    """:func:`check_webhook_url` for one delivery: the name is resolved exactly once (even with
    ``allow_private``) and the addresses that passed are returned, to connect to one of them."""
    parts, host, port = _parse(url)
    literal, addresses = _resolve_all(parts, host, port, resolve)
    if not allow_private:
        _refuse_internal(host, literal, addresses)
    return PinnedUrl(url=url, scheme=parts.scheme.lower(), host=host, port=port, addresses=tuple(addresses))


def pinned_request(client: httpx.Client, pinned: PinnedUrl,
                   address: ipaddress.IPv4Address | ipaddress.IPv6Address, *, content: bytes,
                   headers: dict[str, str], timeout: float) -> httpx.Request:
    """A POST of ``content`` to ``pinned.url`` that connects to ``address`` (no DNS lookup by the
    client): the request URL's host is the IP; the Host header is the URL's (name and explicit
    port, as the client would send it) and, for https, the ``sni_hostname`` extension makes
    httpcore send the name in the TLS SNI and verify the certificate against it."""
    original = httpx.URL(pinned.url)
    target = original.copy_with(host=str(address))
    extensions: dict[str, Any] = {}
    if pinned.scheme == "https":
        extensions["sni_hostname"] = original.raw_host.decode("ascii")  # IDNA-encoded, as httpcore would
    request = client.build_request("POST", target, content=content,
                                   headers={**headers, "Host": original.netloc.decode("ascii")},
                                   timeout=timeout, extensions=extensions)
    return request


MAX_ADDRESSES_TRIED = 3  # a name with several vetted addresses: the next on a refused connection


class _RedactRequestUrls(logging.Filter):
    """httpx logs every request at INFO with its full URL ("HTTP Request: POST <url> ..."); a
    webhook URL's path and query may carry the receiver's secret: logged as scheme://host:port."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if (isinstance(record.msg, str) and record.msg.startswith("HTTP Request:")
                and isinstance(args, tuple) and len(args) >= 2):
            record.args = (args[0], mask_url(str(args[1])), *args[2:])
        return True


logging.getLogger("httpx").addFilter(_RedactRequestUrls())


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
                # No keep-alive: connections are pooled by (scheme, IP, port), and a TLS
                # connection set up for one name must not carry a request for another.
                self._client = httpx.Client(timeout=self.timeout, follow_redirects=False,
                                            limits=httpx.Limits(max_keepalive_connections=0))
            return self._client

    def send(self, recipient: Recipient, message: Message) -> None:
        url = recipient.webhook_url
        if not url:
            raise NoAddress("no webhook URL")
        try:  # resolved once here; the connection goes to these addresses, not to a new lookup
            pinned = pin_webhook_url(url, allow_private=bool(self.allow_private), resolve=self._resolve)
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
        client = self._http()
        response: httpx.Response | None = None
        for n, address in enumerate(pinned.addresses[:MAX_ADDRESSES_TRIED]):
            request = pinned_request(client, pinned, address, content=body, headers=headers, timeout=self.timeout)
            try:
                response = client.send(request)
                response.close()
                break
            except httpx.ConnectError as exc:
                if n + 1 < min(len(pinned.addresses), MAX_ADDRESSES_TRIED):
                    continue
                raise DeliveryError(_scrub(f"{type(exc).__name__}: {exc}", url)) from exc
            except httpx.HTTPError as exc:
                raise DeliveryError(_scrub(f"{type(exc).__name__}: {exc}", url)) from exc
        assert response is not None
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


def _scrub(reason: str, url: str) -> str:
    """An error text without the URL's path or query (they may carry the receiver's secret)."""
    parts = urlsplit(url)
    for secret in (url, parts.query, parts.path if len(parts.path) > 1 else ""):
        if secret:
            reason = reason.replace(secret, "…")
    return reason[:300]


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
