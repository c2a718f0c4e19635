"""RFC 7807 / RFC 9457 problem details for every error the API returns.

``type`` is a relative URI under ``/problems/``; that route answers with a description, so a
client (or a person) can look a problem type up.
"""

from __future__ import annotations

import logging
import re
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
from cityweave.i18n.fields import field_error_message

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
