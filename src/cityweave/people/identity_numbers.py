"""Checks for Chinese resident identity card numbers (GB 11643-1999) and phone numbers."""

from __future__ import annotations

import re
from datetime import date

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_ID_SHAPE = re.compile(r"^\d{17}[\dX]$")
_PHONE_SHAPE = re.compile(r"^(1[3-9]\d{9}|0\d{9,11}|\d{7,8})$")


def id_check_digit(first17: str) -> str:
    return _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def id_number_problem(number: str) -> str | None:
    """Why an 18-digit ID number is wrong, or None when it is valid."""
    if not _ID_SHAPE.match(number):
        return "an ID-card number has 17 digits and a final digit or X"
    try:
        date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return "the birth date inside the ID-card number is not a real date"
    if id_check_digit(number[:17]) != number[17]:
        return "the check digit of the ID-card number is wrong"
    return None


def birth_date_from_id(number: str) -> date:
    return date(int(number[6:10]), int(number[10:12]), int(number[12:14]))


def gender_from_id(number: str) -> str:
    return "male" if int(number[16]) % 2 else "female"


def phone_problem(digits: str) -> str | None:
    if not _PHONE_SHAPE.match(digits):
        return "a phone number is a mainland mobile (11 digits, 1[3-9]…) or a landline with area code"
    return None
