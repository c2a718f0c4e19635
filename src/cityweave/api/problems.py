"""RFC 7807 / RFC 9457 problem details for every error the API returns.

``type`` is a relative URI under ``/problems/``; that route answers with a description, so a
client (or a person) can look a problem type up.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from cityweave.authz.policy import Unauthorized
from cityweave.errors import CityWeaveError, Invalid
from cityweave.i18n import lookup, negotiate, translate

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

PROBLEM_TYPES: dict[str, str] = {
    "validation-error": "The request has fields that are missing, of the wrong type or out of range; "
    "`errors` points at each one (RFC 6901 JSON pointers into the body, or the parameter name), with a "
    "`detail` in the caller's language (Accept-Language) and a stable `code` (e.g. missing, "
    "string_too_long, greater_than_equal; invalid for a domain rule).",
    "malformed-json": "The body is not valid JSON.",
    "unauthenticated": "No valid credentials: send `Authorization: Bearer <token>` or an API key.",
    "invalid-grant": "OAuth2 invalid_grant: the username, password or refresh token is wrong.",
    "forbidden": "The caller's role or scope does not allow this action.",
    "not-found": "No such resource, or none the caller may see.",
    "conflict": "The request conflicts with the current state (a duplicate, or something in use).",
    "payload-too-large": "The body is larger than the server accepts.",
    "method-not-allowed": "The resource does not support this HTTP method.",
    "unsupported-media-type": "Send the body as the documented content type.",
    "internal-error": "An unexpected error; it has been logged with the request id.",
    "command-rejected": "The device command cannot be sent: unknown or read-only capability, a value "
    "out of range, or something this device does not support; `reason` names which.",
    "ingest-busy": "The device ingest queue is full (back-pressure); retry after `Retry-After` seconds.",
    "transport-unavailable": "No device transport (MQTT ingest) runs in this installation, so nothing "
    "can be delivered to devices.",
}


class ProblemFieldError(BaseModel):
    """One invalid input: ``pointer`` into the body, or ``parameter`` and ``in`` for a query,
    path or header parameter; ``detail`` in the caller's language (Accept-Language); ``code`` the
    stable error type (Pydantic's ``type``, e.g. ``missing``, ``string_too_long``; ``invalid``
    for a domain rule) so that a client can word the message itself."""

    model_config = ConfigDict(populate_by_name=True)

    pointer: str | None = None
    parameter: str | None = None
    in_: str | None = Field(default=None, alias="in")
    detail: str
    code: str | None = None


class Problem(BaseModel):
    """Documents the error body in OpenAPI."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[ProblemFieldError] | None = None


def problem_response(
    request: Request | None,
    status: int,
    slug: str,
    detail: str | None = None,
    *,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"/problems/{slug}",
        "title": HTTPStatus(status).phrase,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if request is not None:
        body["instance"] = request.url.path
    if errors:
        body["errors"] = errors
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _pointer(loc: tuple[Any, ...]) -> tuple[str, str]:
    """(where, pointer): body fields as JSON pointers, parameters by name."""
    if not loc:
        return "body", ""
    where, rest = loc[0], loc[1:]
    if where == "body":
        return "body", "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in rest)
    return str(where), str(rest[0]) if rest else ""


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        locale = _locale(request)
        errors = []
        malformed = False
        for err in exc.errors():
            if err.get("type") == "json_invalid":
                malformed = True
            where, pointer = _pointer(tuple(err.get("loc", ())))
            detail = field_error_message(err, locale)
            code = str(err.get("type") or "invalid")
            if where == "body":
                errors.append({"pointer": pointer, "detail": detail, "code": code})
            else:
                errors.append({"parameter": pointer, "in": where, "detail": detail, "code": code})
        if malformed:
            return problem_response(request, 400, "malformed-json", translate("errors.malformed_json", locale),
                                    errors=errors)
        return problem_response(request, 422, "validation-error", translate("errors.validation", locale), errors=errors)

    @app.exception_handler(Invalid)
    async def _invalid(request: Request, exc: Invalid) -> JSONResponse:
        # Domain rules: a field's detail is the service's own (English) text, code "invalid";
        # fields that failed Pydantic validation inside a service (rules, scenes) are translated
        # like request validation. The summary is translated when it is the generic one.
        locale = _locale(request)
        errors = []
        for e in exc.errors:
            detail, code = e.detail, "invalid"
            if e.error and e.error.get("type"):
                detail, code = field_error_message(e.error, locale), str(e.error["type"])
            if e.pointer.startswith("/") or e.pointer == "":
                errors.append({"pointer": e.pointer, "detail": detail, "code": code})
            else:
                errors.append({"parameter": e.pointer, "in": "query", "detail": detail, "code": code})
        detail = exc.detail
        if detail == Invalid.DEFAULT_DETAIL:
            detail = translate("errors.validation", locale)
        return problem_response(request, 422, "validation-error", detail, errors=errors)

    @app.exception_handler(CityWeaveError)
    async def _domain(request: Request, exc: CityWeaveError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        extra = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in exc.extra.items()}
        if exc.slug == "invalid-grant":
            # OAuth2 clients read `error`; people read `detail`. Give both.
            extra.update(error="invalid_grant", error_description=exc.detail)
        return problem_response(request, exc.status, exc.slug, _with_lead(exc.slug, exc.detail, _locale(request)),
                                headers=headers, **extra)

    @app.exception_handler(Unauthorized)
    async def _unauthorized(request: Request, exc: Unauthorized) -> JSONResponse:
        locale = _locale(request)
        if exc.hidden:
            return problem_response(request, 404, "not-found", translate("errors.not_found", locale))
        return problem_response(request, 403, "forbidden", _with_lead("forbidden", str(exc), locale))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = {
            401: "unauthenticated", 403: "forbidden", 404: "not-found", 405: "method-not-allowed",
            409: "conflict", 413: "payload-too-large", 415: "unsupported-media-type",
        }.get(exc.status_code, "http-error")
        detail = str(exc.detail)
        try:
            generic = detail == HTTPStatus(exc.status_code).phrase
        except ValueError:
            generic = False
        if generic:  # Starlette's own text ("Not Found"): say it in the caller's language
            detail = lookup(f"errors.http.{exc.status_code}", _locale(request)) or detail
        return problem_response(request, exc.status_code, slug, detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(DataError)
    async def _data_error(request: Request, exc: DataError) -> JSONResponse:
        # The database refused a value the validators let through (a backstop, not a path).
        log.warning("database refused a value on %s: %s", request.url.path, exc.orig)
        return problem_response(request, 422, "validation-error", translate("errors.not_storable", _locale(request)))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(request, 500, "internal-error", translate("errors.unexpected", _locale(request)))


_HAN = re.compile(r"[\u4e00-\u9fff]")


def _with_lead(slug: str, detail: str, locale: str) -> str:
    """A domain error's detail in the caller's language. Services word their errors in English
    with the specifics (ids, states, limits); ``errors.domain.<slug>`` wraps them: in Chinese a
    lead per problem type ("未找到：{detail}", "与当前状态冲突：{detail}" ...) so what happened is
    readable and the specifics are not lost; in English the detail as it is. Details already in
    Chinese are left alone."""
    if not detail or _HAN.search(detail):
        return detail
    template = lookup(f"errors.domain.{slug}", locale)
    return template.format(detail=detail) if template else detail


def _locale(request: Request) -> str:
    """zh-CN or en from Accept-Language (its first language we speak; zh-CN when none)."""
    return negotiate(request.headers.get("accept-language"))


# -- field errors in the caller's language ------------------------------------------------------------
# Each Pydantic error type has a catalogue entry ``errors.field.<type>`` (en mirrors Pydantic's own
# wording), filled from the error's ``ctx``. A validator may raise
# ``PydanticCustomError("<type>", "<English text>", ctx)`` with a matching catalogue key to be
# translated the same way. ``<key>.one`` is the English singular (count 1).

#: types worded alike
_SAME_AS = {
    "model_attributes_type": "model_type",
    "dataclass_type": "model_type",
    "frozen_set_type": "set_type",
    "decimal_type": "decimal_parsing",
    "iterable_type": "list_type",
}
#: the ctx entry that decides between ``<key>`` and ``<key>.one``
_COUNT = {
    "string_too_short": "min_length",
    "string_too_long": "max_length",
    "too_short": "min_length",
    "too_long": "max_length",
    "too_long_unknown": "max_length",
}
#: Pydantic's container names (too_short/too_long ``field_type``) in Chinese
_ZH_FIELD_TYPES = {"List": "列表", "Tuple": "数组", "Set": "集合", "Frozenset": "集合", "Dictionary": "对象",
                   "Deque": "列表", "Data": "数据", "Value": "取值", "Generator": "序列"}
_OWN_MESSAGE = ("value_error", "assertion_error")
_PYDANTIC_PREFIX = re.compile(r"^(Value error|Assertion failed), ")


def field_error_message(err: Mapping[str, Any], locale: str) -> str:
    """One Pydantic error (an item of ``ValidationError.errors()``) as text in ``locale``.

    Never empty: without a catalogue entry, English keeps Pydantic's message and Chinese gets
    a generic phrase followed by it."""
    kind = str(err.get("type") or "")
    message = str(err.get("msg") or "") or kind or "invalid"
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    if kind in _OWN_MESSAGE:
        # Our validators' hand-written text: kept; Chinese says what kind of problem it is.
        error = ctx.get("error")
        own = str(error) if error is not None and str(error) else _PYDANTIC_PREFIX.sub("", message)
        return _fill(f"errors.field.{kind}", locale, {"message": own}) or own
    key = f"errors.field.{_SAME_AS.get(kind, kind)}"
    if kind == "too_long" and ctx.get("actual_length") is None:
        key = "errors.field.too_long_unknown"
    if locale == "zh-CN":
        for name in ("expected", "expected_schemes", "expected_tags"):
            if isinstance(ctx.get(name), str):
                ctx[name] = _zh_alternatives(ctx[name])
        if "field_type" in ctx:
            ctx["field_type"] = _ZH_FIELD_TYPES.get(str(ctx["field_type"]), "")
    text = None
    count = _COUNT.get(key.removeprefix("errors.field."))
    if locale == "en" and count and ctx.get(count) == 1:
        text = _fill(key + ".one", locale, ctx)
    text = text or _fill(key, locale, ctx)
    if text:
        return text
    if locale == "en":
        return message
    return _fill("errors.field.unknown", locale, {"message": message}) or message


def _fill(key: str, locale: str, params: Mapping[str, Any]) -> str | None:
    template = lookup(key, locale)
    if not template:
        return None
    try:
        return template.format(**params)
    except (KeyError, IndexError, ValueError, AttributeError):
        log.warning("catalogue entry %s (%s) does not fit the error's context %s", key, locale, sorted(params))
        return None


def _zh_alternatives(expected: str) -> str:
    """Pydantic joins choices as "'a', 'b' or 'c'"; in Chinese they read 'a'、'b'、'c'."""
    if "'" in expected:
        if "' or '" in expected:
            head, tail = expected.rsplit("' or '", 1)
            expected = f"{head}', '{tail}"
        return expected.replace("', '", "'、'")
    if " or " in expected:  # numbers: 1, 2 or 3
        head, tail = expected.rsplit(" or ", 1)
        return "、".join([*head.split(", "), tail])
    return expected
