"""Masked forms of personal data and secrets for lists and logs: 张**, 138****1234,
1101**********1234, https://hooks.example.com/…"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_PHONE_DIGITS = re.compile(r"\D")


def mask_name(name: str | None) -> str | None:
    if not name:
        return name
    if _is_cjk(name[0]):
        return name[0] + "*" * max(1, len(name) - 1)
    # Latin names: keep the initial of each word.
    return " ".join(part[0] + "*" * max(1, len(part) - 1) for part in name.split())


def mask_phone(phone: str | None) -> str | None:
    if not phone:
        return phone
    digits = normalise_phone(phone)
    if len(digits) >= 7:
        return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]
    return "*" * len(digits)


def mask_id_number(id_number: str | None) -> str | None:
    if not id_number:
        return id_number
    if len(id_number) <= 8:
        return "*" * len(id_number)
    return id_number[:4] + "*" * (len(id_number) - 8) + id_number[-4:]


def normalise_phone(phone: str) -> str:
    """Digits only, without a leading +86 / 0086 country code, so searches match any spelling."""
    digits = _PHONE_DIGITS.sub("", phone)
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    elif len(digits) == 15 and digits.startswith("0086"):
        digits = digits[4:]
    return digits


def normalise_id_number(id_number: str) -> str:
    return id_number.strip().upper()


def _is_cjk(char: str) -> bool:
    return "\u4e00" <= char <= "\u9fff" or "\u3400" <= char <= "\u4dbf"


def mask_url(url: str | None) -> str | None:
    """A URL as written to logs, errors, views and the audit trail: scheme, host and port only.
    Query strings and paths of webhook URLs often carry the receiver's secret (Slack, DingTalk,
    WeCom ...)."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(unparseable)"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{port}/…"
