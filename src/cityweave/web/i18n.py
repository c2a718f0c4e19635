"""Gettext catalogues for the pages (Babel), and dates and numbers in the viewer's locale.

The catalogues are ``locale/<lang>/LC_MESSAGES/messages.po``; they are compiled in memory on
first use, so there is no build step and a translator's edit shows on the next start. Message
ids are English; ``zh_CN`` translates them, ``en`` may refine wording.
"""

from __future__ import annotations

import io
from datetime import datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_datetime as babel_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import Translations

LOCALES = ("zh-CN", "en")
DEFAULT = "zh-CN"
TIMEZONE = ZoneInfo("Asia/Shanghai")
_DIR = Path(__file__).parent / "locale"


def _folder(locale: str) -> str:
    return locale.replace("-", "_")


@cache
def translations(locale: str) -> Translations:
    po = _DIR / _folder(locale) / "LC_MESSAGES" / "messages.po"
    with po.open("rb") as handle:
        catalog = read_po(handle, locale=_folder(locale))
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(fp=buffer)


def negotiate(cookie: str | None, user_locale: str | None, accept_language: str | None) -> str:
    """The viewer's choice (cookie), then their account's, then the browser's, then zh-CN."""
    for candidate in (cookie, user_locale):
        if candidate in LOCALES:
            return candidate
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return DEFAULT


def format_datetime(value: datetime | None, locale: str, form: str = "short") -> str:
    if value is None:
        return ""
    return babel_datetime(value.astimezone(TIMEZONE), format=form, locale=Locale.parse(_folder(locale)))


def format_number(value: float | None, locale: str) -> str:
    if value is None:
        return "–"
    return format_decimal(value, locale=Locale.parse(_folder(locale)))
