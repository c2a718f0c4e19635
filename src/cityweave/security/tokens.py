"""Secrets handed out once and kept only as hashes: bearer tokens, API keys, device tokens.

A *prefixed secret* reads ``<scheme>_<prefix>_<secret>`` (``cwk_3f9c0d2a61b9_…`` for an API key,
``cwd_…`` for a device). The prefix is stored in the clear to find the row; the secret only as
its SHA-256, so a copy of the database cannot be replayed. Random secrets of 256 bits need no
slow hash: there is nothing to guess.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityweave.errors import AuthenticationFailed

T = TypeVar("T")


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class PrefixedSecret:
    scheme: str  # e.g. "cwk"
    prefix: str
    secret: str

    @property
    def text(self) -> str:
        """What the holder is given, once."""
        return f"{self.scheme}_{self.prefix}_{self.secret}"

    @property
    def secret_hash(self) -> str:
        return digest(self.secret)


def new_prefixed_secret(scheme: str) -> PrefixedSecret:
    return PrefixedSecret(scheme, secrets.token_hex(6), secrets.token_urlsafe(32))


def parse_prefixed_secret(text: str, scheme: str) -> tuple[str, str] | None:
    """``(prefix, secret)``, or ``None`` when the text is not of this scheme's shape."""
    parts = text.split("_", 2)
    if len(parts) != 3 or parts[0] != scheme or not parts[1] or len(parts[1]) > 16 or not parts[2]:
        return None
    return parts[1], parts[2]


def secret_matches(stored_hash: str, secret: str) -> bool:
    return hmac.compare_digest(stored_hash, digest(secret))


def row_for_prefixed_secret(session: Session, model: type[T], text: str, scheme: str, what: str) -> T:
    """The row (an ORM class with ``prefix``, ``secret_hash`` and ``revoked_at``) that ``text``
    unlocks; :class:`AuthenticationFailed` naming ``what`` ("API key", "device token") otherwise."""
    parsed = parse_prefixed_secret(text, scheme)
    if parsed is None:
        raise AuthenticationFailed(f"the {what} is malformed")
    prefix, secret = parsed
    row = session.execute(select(model).where(model.prefix == prefix)).scalar_one_or_none()  # type: ignore[attr-defined]
    if row is None or not secret_matches(row.secret_hash, secret):
        raise AuthenticationFailed(f"the {what} is not valid")
    if row.revoked_at is not None:
        raise AuthenticationFailed(f"the {what} was revoked")
    return row
