"""Reading Open311 parameters: formats, W3C dates, comma lists, paging, language, the POST form.

Every problem here is an :class:`Open311Error` with the spec's HTTP status (400 for a bad
parameter), so the router answers in the spec's error format, never with a problem document.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from starlette.datastructures import FormData

from cityweave.i18n import negotiate
from cityweave.workorders.schemas import Contact, WorkOrderSubmit

FORMATS = ("xml", "json")
MAX_SPAN = timedelta(days=90)  # "may not span more than 90 days"; also the default window
MAX_RESULTS = 1000  # "first 1000 requests returned"
MAX_LIST = 100  # ids or service codes in one comma list
MEDIA_PREFIX = "media_url: "  # how a media_url is kept in the description (see docs/open311.md)

# Open311 names of the native submit fields, for error messages.
FIELD_NAMES = {"category_id": "service_code", "lat": "lat", "lon": "long", "address": "address_string",
               "place_id": "address_id", "description": "description", "contact": "contact"}
CONTACT_NAMES = {"name": "first_name/last_name", "phone": "phone", "email": "email"}


class Open311Error(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


def bad(description: str) -> Open311Error:
    return Open311Error(400, description)


def output_format(value: str) -> str:
    fmt = value.lower()
    if fmt not in FORMATS:
        raise bad(f"unknown format {value!r}: use .xml or .json")
    return fmt


def language(query: Mapping[str, str], accept_language: str | None) -> str:
    """``locale`` parameter first (zh-CN or en), then Accept-Language, then zh-CN."""
    wanted = (query.get("locale") or "").strip()
    if wanted and wanted.lower().startswith("en"):
        wanted = "en"
    elif wanted and wanted.lower().startswith("zh"):
        wanted = "zh-CN"
    return negotiate(accept_language, wanted or None)


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def w3_datetime(name: str, value: str | None, local: ZoneInfo) -> datetime | None:
    """A W3C date-time with a zone (``2010-01-01T00:00:00Z``, ``…+08:00``), or a date
    (midnight, local time). An empty value is the same as none ("optional arguments")."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if _DATE.match(text):
        try:
            return datetime.combine(date.fromisoformat(text), time(), local).astimezone(UTC)
        except ValueError:
            raise bad(f"{name}: {value!r} is not a date") from None
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise bad(f"{name}: {value!r} is not a W3C date-time such as 2010-01-01T00:00:00Z") from None
    if "T" not in text.upper() or parsed.tzinfo is None:
        raise bad(f"{name}: {value!r} needs a time and a time zone (Z or ±hh:mm)")
    return parsed.astimezone(UTC)


def window(start: datetime | None, end: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """The spec's range: the most recent 90 days unless told otherwise, never longer than 90 days."""
    if start is None and end is None:
        return now - MAX_SPAN, now
    if start is None:
        assert end is not None
        start = end - MAX_SPAN
    if end is None:
        end = min(start + MAX_SPAN, max(now, start))
    if end < start:
        raise bad("end_date is before start_date")
    if end - start > MAX_SPAN:
        raise bad("start_date and end_date may not span more than 90 days")
    return start, end


def comma_list(name: str, value: str | None, *, pattern: str = r"^[A-Za-z0-9_.-]{1,40}$") -> list[str]:
    if value is None:
        return []
    items = [v.strip() for v in value.split(",") if v.strip()]
    if len(items) > MAX_LIST:
        raise bad(f"{name}: at most {MAX_LIST} values")
    for item in items:
        if not re.match(pattern, item):
            raise bad(f"{name}: {item[:50]!r} is not a valid value")
    return items


def positive_int(name: str, value: str | None, default: int, maximum: int) -> int:
    if value is None or not value.strip():
        return default
    if not value.strip().isdigit() or not 1 <= int(value) <= maximum:
        raise bad(f"{name} must be a whole number from 1 to {maximum}")
    return int(value)


@dataclass(frozen=True)
class Paging:
    page: int
    page_size: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


def paging(query: Mapping[str, str]) -> Paging:
    """The page/page_size extension; without it, the spec's first 1,000."""
    return Paging(positive_int("page", query.get("page"), 1, 1_000_000),
                  positive_int("page_size", query.get("page_size"), MAX_RESULTS, MAX_RESULTS))


# -- POST requests ----------------------------------------------------------------------------------
_URL = re.compile(r"^https?://[^\s<>\"']{1,490}$")
_CJK = re.compile(r"[\u3400-\u9fff]")


def _one(form: FormData, name: str) -> str | None:
    values = form.getlist(name)
    if len(values) > 1:
        raise bad(f"{name} was given more than once")
    value = values[0] if values else None
    if value is not None and not isinstance(value, str):
        raise bad(f"{name} must be a text field, not a file")
    return value.strip() if value is not None and value.strip() else None


def _float(form: FormData, name: str) -> float | None:
    value = _one(form, name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise bad(f"{name}: {value[:40]!r} is not a number") from None
    if not math.isfinite(number):
        raise bad(f"{name}: {value[:40]!r} is not a number")
    return number


def full_name(first: str | None, last: str | None) -> str | None:
    """Chinese names read family name first without a space; others "first last"."""
    if not first and not last:
        return None
    if _CJK.search((first or "") + (last or "")):
        return f"{last or ''}{first or ''}"
    return " ".join(p for p in (first, last) if p)


def join_media(description: str, media_url: str | None) -> str:
    return f"{description}\n\n{MEDIA_PREFIX}{media_url}" if media_url else description


def split_media(description: str) -> tuple[str, str | None]:
    """The inverse of :func:`join_media`, for showing a request."""
    head, sep, tail = description.rpartition(f"\n\n{MEDIA_PREFIX}")
    if sep and _URL.match(tail):
        return head, tail
    return description, None


def submission(form: FormData) -> WorkOrderSubmit:
    """The POST form as the native submit model (validated by it)."""
    service_code = _one(form, "service_code")
    if service_code is None:
        raise bad("service_code was not provided")
    lat, lon = _float(form, "lat"), _float(form, "long")
    address, address_id = _one(form, "address_string"), _one(form, "address_id")
    if (lat is None) != (lon is None):
        raise bad("lat and long must be sent together")
    if lat is None and address is None and address_id is None:
        raise bad("a location is required: lat and long, address_string or address_id")
    description = _one(form, "description")
    if description is None:
        raise bad("description was not provided")
    media_url = _one(form, "media_url")
    if media_url is not None and not _URL.match(media_url):
        raise bad("media_url must be an http(s) URL of at most 500 characters")
    contact = {"name": full_name(_one(form, "first_name"), _one(form, "last_name")),
               "phone": _one(form, "phone"), "email": _one(form, "email")}
    try:
        return WorkOrderSubmit(
            category_id=service_code, description=join_media(description, media_url), place_id=address_id,
            lat=lat, lon=lon, address=address,
            contact=Contact(**contact) if any(contact.values()) else None,
        )
    except ValidationError as exc:
        raise bad("; ".join(_explain(e) for e in exc.errors())) from None


def _explain(error: Mapping[str, object]) -> str:
    loc = [str(part) for part in error.get("loc", ())]  # type: ignore[union-attr]
    if len(loc) >= 2 and loc[0] == "contact":
        name = CONTACT_NAMES.get(loc[1], loc[1])
    elif loc:
        name = FIELD_NAMES.get(loc[0], loc[0])
    else:
        name = "request"
    message = str(error.get("msg", "invalid"))
    return f"{name}: {message.removeprefix('Value error, ')}"


__all__ = ["MAX_RESULTS", "Open311Error", "Paging", "bad", "comma_list", "language", "output_format",
           "paging", "split_media", "submission", "w3_datetime", "window"]
