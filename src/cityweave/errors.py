"""Domain errors. Services raise these; the HTTP edge turns them into RFC 7807 problems."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class CityWeaveError(Exception):
    status = 400
    slug = "bad-request"

    def __init__(self, detail: str, **extra: object) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFound(CityWeaveError):
    status = 404
    slug = "not-found"


class Conflict(CityWeaveError):
    status = 409
    slug = "conflict"


class Forbidden(CityWeaveError):
    status = 403
    slug = "forbidden"


class AuthenticationFailed(CityWeaveError):
    status = 401
    slug = "unauthenticated"


@dataclass
class FieldError:
    """One invalid input field; ``pointer`` is an RFC 6901 JSON pointer into the request body.

    ``detail`` is English. ``error``, when the field failed Pydantic validation, is that error
    (``type``, ``msg``, ``ctx``): the HTTP edge words it in the caller's language from it."""

    pointer: str
    detail: str
    error: dict[str, Any] | None = field(default=None, compare=False)


class Invalid(CityWeaveError):
    """Input that is well-formed but wrong (a bad parent, an unknown role, ...)."""

    status = 422
    slug = "validation-error"
    DEFAULT_DETAIL = "The request has invalid fields."  # translated at the HTTP edge (errors.validation)

    def __init__(self, errors: list[FieldError], detail: str = DEFAULT_DETAIL) -> None:
        super().__init__(detail)
        self.errors = errors

    @classmethod
    def field(cls, pointer: str, detail: str) -> Invalid:
        return cls([FieldError(pointer, detail)])
