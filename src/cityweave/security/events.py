"""Security events: what the platform's security watch counts (failed sign-ins, lockouts, refused
requests, token reuse, unusual reveals, device login failures, connection floods, audit failures).

Whoever notices one publishes a :class:`SecurityEvent` on ``ctx.bus``. Unlike domain events these
are published at once, not after a commit: a refused request or a failed login commits nothing,
and the watch must hear of it all the same. Publishing never blocks on storage; the security
watch (its own domain) records, counts and raises alarms from what it hears.

Fields hold no personal data: a username is what the caller typed (so it may be wrong), never a
person's name, phone or ID number; ``ip`` is the client address the edge saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class SecurityEventKind(StrEnum):
    SIGN_IN_FAILED = "sign_in_failed"  # wrong password, unknown user, locked account
    SIGN_IN_RATE_LIMITED = "sign_in_rate_limited"  # refused before checking the password
    ACCOUNT_LOCKED = "account_locked"  # this failure locked the account
    REQUEST_REFUSED = "request_refused"  # 403 by the policy (role, resource, action in detail)
    REQUEST_RATE_LIMITED = "request_rate_limited"  # API rate limit (429)
    REFRESH_TOKEN_REUSED = "refresh_token_reused"  # a rotated refresh token came back: theft?
    PERSONAL_DATA_REVEALED = "personal_data_revealed"  # a person's data shown whole
    PERSONAL_DATA_EXPORTED = "personal_data_exported"  # an export with unmasked persons
    DEVICE_AUTH_FAILED = "device_auth_failed"  # wrong device token (HTTP ingest, MQTT login)
    MQTT_CONNECT_REFUSED = "mqtt_connect_refused"  # embedded broker: login failed or rate limit
    AUDIT_VERIFY_FAILED = "audit_verify_failed"  # the audit chain or its anchor does not verify


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    kind: SecurityEventKind
    at: datetime
    ip: str | None = None  # client address as the edge saw it
    username: str | None = None  # the account named (as typed), if any
    user_id: str | None = None  # the account acting or targeted, when known
    role: str | None = None  # the acting principal's role, when known
    resource: str | None = None  # e.g. "person", "device"; for refusals and reveals
    count: int = 1  # several of the same at once (an export of 200 persons: 200)
    detail: dict[str, Any] = field(default_factory=dict)  # small, no personal data
