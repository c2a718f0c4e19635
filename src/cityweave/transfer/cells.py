"""Reading the cells of one spreadsheet row into typed values, collecting every problem.

Spreadsheets arrive with typos, masked copies and numbers Excel mangled. Each parser here
returns ``None`` (or ``[]``) for a bad value and records an :class:`Issue` (an i18n key and its
parameters) instead of raising, so one pass over a row finds all of its problems, and messages
are translated only when the report is rendered, in the reader's language.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from cityweave.people.identity_numbers import id_check_digit, phone_problem
from cityweave.schema import contains_nul
from cityweave.security.masking import normalise_phone
from cityweave.transfer.tables import Cell, Formula, unescape
from cityweave.transfer.templates import LIST_SEPARATORS, Choices, normalise

PLACE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_ID_NUMBER = re.compile(r"^\d{17}[\dX]$")
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y年%m月%d日", "%Y%m%d")

M = TypeVar("M", bound=BaseModel)


# -- problems, collected first and translated when the report is rendered ---------------------------
@dataclass(frozen=True)
class Label:
    """A coded value inside a message, shown in the reader's language."""

    choices: Choices
    codes: tuple[str, ...]

    def render(self, locale: str) -> str:
        return ", ".join(self.choices.label(c, locale) for c in self.codes)


@dataclass
class Issue:
    row: int | None
    field: str | None
    code: str
    params: dict[str, object]
    column: str | None = None


class Issues:
    """Every problem found so far, in order, and the rows that have any."""

    def __init__(self) -> None:
        self.items: list[Issue] = []
        self.rows: set[int] = set()

    def add(self, row: int | None, field: str | None, code: str, /, *, column: str | None = None,
            **params: object) -> None:
        """Positional-only, so that messages may have parameters called row, field or code."""
        self.items.append(Issue(row, field, code, params, column))
        if row is not None:
            self.rows.add(row)

    def __bool__(self) -> bool:
        return bool(self.items)


# -- one row ---------------------------------------------------------------------------------------
REPORTED = Formula("")  # stands in for a cell whose problem was already reported


class RowReader:
    """Typed access to one row's cells. Each parser returns None (or []) and records an issue
    when the value is wrong, so that one pass finds every problem in the row."""

    def __init__(self, number: int, values: dict[str, Cell], issues: Issues, today: date) -> None:
        self.number = number
        self.values = values
        self.issues = issues
        self.today = today

    def error(self, key: str, code: str, /, **params: object) -> None:
        self.issues.add(self.number, key, code, **params)

    @property
    def clean(self) -> bool:
        return self.number not in self.issues.rows

    def has(self, key: str) -> bool:
        return self.values.get(key) is not None

    def _raw(self, key: str) -> Cell:
        value = self.values.get(key)
        return None if value is REPORTED else value

    def _text(self, key: str, *, required: bool = False) -> str | None:
        value = self._raw(key)
        if value is None:
            if required and self.values.get(key) is not REPORTED:
                self.error(key, "import.required")
            return None
        return _as_text(value)

    def text(self, key: str, *, max_len: int, required: bool = False) -> str | None:
        text = self._text(key, required=required)
        if text is None:
            return None
        if len(text) > max_len:
            self.error(key, "import.too_long", max=max_len)
            return None
        if CONTROL.search(text):
            self.error(key, "import.bad_value", value=_shorten(text))
            return None
        return text

    def place_id(self, key: str, *, required: bool = False) -> str | None:
        text = self._text(key, required=required)
        if text is None:
            return None
        place_id = normalise(text)  # ids are lower-case only, so 'CA-B1' can only mean 'ca-b1'
        if not PLACE_ID.match(place_id):
            self.error(key, "import.bad_id", value=_shorten(text))
            return None
        return place_id

    def id_list(self, key: str, *, required: bool = False, max_items: int) -> list[str]:
        text = self._text(key, required=required)
        if text is None:
            return []
        result: list[str] = []
        for part in _split(text):
            place_id = normalise(part)
            if not PLACE_ID.match(place_id):
                self.error(key, "import.bad_id", value=_shorten(part))
            elif place_id in result:
                self.error(key, "import.duplicate_id", value=place_id, other=self.number)
            else:
                result.append(place_id)
        if len(result) > max_items:
            self.error(key, "import.too_many_values", max=max_items)
        return result

    def choice(self, key: str, choices: Choices, *, required: bool = False,
               code: str = "import.bad_choice") -> str | None:
        text = self._text(key, required=required)
        if text is None:
            return None
        value = choices.parse(text)
        if value is None:
            self.error(key, code, value=_shorten(text), choices=Label(choices, tuple(choices.labels)))
        return value

    def choice_list(self, key: str, choices: Choices) -> list[str]:
        text = self._text(key)
        if text is None:
            return []
        result: list[str] = []
        for part in _split(text):
            value = choices.parse(part)
            if value is None:
                self.error(key, "import.bad_choice", value=_shorten(part),
                           choices=Label(choices, tuple(choices.labels)))
            elif value not in result:
                result.append(value)
        return result

    def decimal(self, key: str, low: float, high: float) -> float | None:
        value = self._raw(key)
        if value is None:
            return None
        number = _as_number(value)
        if number is None:
            self.error(key, "import.bad_number", value=_shorten(_as_text(value)))
        elif not low <= number <= high:
            self.error(key, "import.out_of_range", min=_plain(low), max=_plain(high))
            number = None
        return number

    def integer(self, key: str, low: int, high: int) -> int | None:
        value = self._raw(key)
        number = self.decimal(key, low, high)
        if number is None:
            return None
        if not number.is_integer():
            self.error(key, "import.bad_integer", value=_shorten(_as_text(value)))
            return None
        return int(number)

    def date_value(self, key: str) -> date | None:
        value = self._raw(key)
        if value is None:
            return None
        parsed = _as_date(value)
        if parsed is None:
            self.error(key, "import.bad_date", value=_shorten(_as_text(value)))
        elif parsed > self.today:
            self.error(key, "import.future_date")
            parsed = None
        return parsed

    def date_values(self, key: str) -> list[date]:
        text = self._text(key)
        if text is None:
            return []
        value = self._raw(key)
        if isinstance(value, (date, datetime, int)):  # one real date cell
            single = self.date_value(key)
            return [single] if single else []
        result: list[date] = []
        for part in _split(text):
            parsed = _as_date(part)
            if parsed is None:
                self.error(key, "import.bad_date", value=_shorten(part))
            elif parsed > self.today:
                self.error(key, "import.future_date")
            else:
                result.append(parsed)
        return result

    def json_object(self, key: str) -> dict[str, Any] | None:
        text = self._text(key)
        if text is None:
            return None
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if not isinstance(value, dict) or contains_nul(value):
            self.error(key, "import.bad_json")
            return None
        return value

    def personal_text(self, key: str, *, max_len: int, required: bool = False) -> str | None:
        """Free text that must not be a masked value copied from a masked export (张**)."""
        text = self.text(key, max_len=max_len, required=required)
        if text is not None and "*" in text:
            self.error(key, "import.masked_value")
            return None
        return text

    def phone(self, key: str) -> str | None:
        text = self._text(key)
        if text is None:
            return None
        if "*" in text:
            self.error(key, "import.masked_value")
            return None
        digits = normalise_phone(normalise(text))
        if phone_problem(digits):
            self.error(key, "import.bad_phone")
            return None
        return digits

    def id_number(self, key: str) -> str | None:
        value = self._raw(key)
        if isinstance(value, float):  # Excel turned 18 digits into a float and kept 15 of them
            self.error(key, "import.number_lost_digits")
            return None
        text = self._text(key)
        if text is None:
            return None
        if "*" in text:
            self.error(key, "import.masked_value")
            return None
        number = normalise(text).upper()
        if problem := _id_number_problem(number):
            self.error(key, problem)
            return None
        return number

    def model(self, model: type[M], fields: dict[str, Any], columns: dict[str, str]) -> M | None:
        """Build the domain's input model; its own checks stay the last word on every field."""
        try:
            return model(**fields)
        except ValidationError as exc:
            for err in exc.errors():
                name = str(err["loc"][0]) if err["loc"] else ""
                key = columns.get(name, name if name in self.values else None)
                self.issues.add(self.number, key, "import.bad_value",
                                value=_shorten(str(fields.get(name, ""))))
            return None


def _id_number_problem(number: str) -> str | None:
    """The i18n key for what is wrong with an ID-card number (GB 11643), or None."""
    if not _ID_NUMBER.match(number):
        return "import.bad_id_number"
    try:
        date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return "import.bad_id_number_date"
    if id_check_digit(number[:17]) != number[17]:
        return "import.bad_id_number_check"
    return None


def _as_text(value: Cell) -> str:
    if isinstance(value, str):
        return unescape(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _plain(value)
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (date, time)):
        return value.isoformat()
    return ""


def _plain(number: float) -> str:
    """``18`` rather than ``18.0``: what the person typed."""
    number = float(number)  # ints too (int.is_integer needs Python 3.12)
    if number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return repr(number)


def _as_number(value: Cell) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        try:
            number = float(normalise(_as_text(value)).replace(",", "").replace("_", ""))
        except ValueError:
            return None
    return number if math.isfinite(number) else None


def _as_date(value: Cell) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = normalise(_as_text(value)) if value is not None else ""
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def _split(text: str) -> list[str]:
    return [part for part in LIST_SEPARATORS.split(text) if part]


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"

