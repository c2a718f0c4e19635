"""Open311 GeoReport v2 at ``/open311/v2``: a thin adapter over ``cityweave.workorders``.

Reads go through ``workorders.public`` (public work orders only, no reporter), the one write
through ``workorders.service.submit`` with ``Channel.OPEN311`` and the caller's API key, so
routing, deadlines, audit and notifications are the native ones. What this module decides is
only how Open311 spells things (``render``) and reads parameters (``params``). Every error is
the spec's error document with the spec's status: 400 bad parameter, 403 missing or invalid
``api_key``, 404 unknown service code or request. See docs/open311.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from cityweave.accounts.models import User
from cityweave.accounts.service import API_KEY_PREFIX, principal_for_token
from cityweave.api.deps import CtxDep, SessionDep, client_ip
from cityweave.api.open311 import params, render
from cityweave.api.open311.params import Open311Error, bad
from cityweave.authz.policy import Unauthorized
from cityweave.context import AppContext, Call
from cityweave.errors import AuthenticationFailed, CityWeaveError, Invalid, NotFound
from cityweave.workorders import public, service
from cityweave.workorders.models import Category, Channel, WorkOrder

PREFIX = "/open311/v2"
SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"

_DOC_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/xml": {}, "application/json": {}},
          "description": "XML (`.xml`) or JSON (`.json`) as the GeoReport v2 specification shows"},
    400: {"description": "`[{\"code\": 400, \"description\": …}]` or `<errors><error>…`"},
    404: {"description": "unknown service_code, request or token (non-public requests too)"},
}
router = APIRouter(prefix=PREFIX, tags=["Open311 GeoReport v2"], responses=_DOC_RESPONSES)

Format = Annotated[str, Path(description="xml or json")]
Lang = Annotated[str | None, Query(description="zh-CN (default) or en; else Accept-Language")]
AcceptLanguage = Annotated[str | None, Header(include_in_schema=False)]
Jurisdiction = Annotated[str | None, Query(description="ignored: one jurisdiction per installation")]


def _zone(ctx: AppContext) -> ZoneInfo:
    return ZoneInfo(ctx.settings.rules_timezone)


def _answer(fmt_raw: str, session: Session | None, work: Callable[[str], Response]) -> Response:
    """Run ``work`` with the checked format; turn every refusal into the spec's error document.
    A failed request writes nothing (the session is rolled back before the commit runs)."""
    fmt = fmt_raw.lower() if fmt_raw.lower() in params.FORMATS else "xml"
    try:
        return work(params.output_format(fmt_raw))
    except (Open311Error, CityWeaveError, Unauthorized, ValidationError) as exc:
        if session is not None:
            session.rollback()
        status, descriptions = _error(exc)
        return render.errors(fmt, status, descriptions)


def _error(exc: Exception) -> tuple[int, list[str]]:
    if isinstance(exc, Open311Error):
        return exc.status, [exc.description]
    if isinstance(exc, Invalid):
        names = {"/category_id": "service_code", "/lat": "lat", "/lon": "long", "/place_id": "address_id",
                 "/address": "address_string", "/description": "description"}
        return 400, [f"{names.get(e.pointer, e.pointer.strip('/') or 'request')}: {e.detail}" for e in exc.errors]
    if isinstance(exc, AuthenticationFailed | Unauthorized):
        return 403, [f"api_key: {exc}"]
    if isinstance(exc, NotFound):
        return 404, [str(exc)]
    if isinstance(exc, ValidationError):
        return 400, [str(e.get("msg", "invalid")) for e in exc.errors()]
    status = getattr(exc, "status", 400)
    return (status if status in (403, 404) else 400), [str(exc)]


def _categories(session: Session) -> dict[str, Category]:
    return {c.id: c for c in service.list_categories(session, include_inactive=True)}


def _requests(session: Session, orders: list[WorkOrder], lang: str, zone: ZoneInfo) -> list[dict[str, Any]]:
    categories, departments = _categories(session), public.departments(session)
    notes, places = public.status_notes(session, orders), public.place_ids(session, orders)
    shown = []
    for order in orders:
        description, media_url = params.split_media(order.description)
        shown.append(render.request(
            order, lang=lang, zone=zone, category=categories.get(order.category_id),
            department=departments.get(order.department_id), status_notes=notes.get(order.id),
            address_id=places.get(order.id), description=description, media_url=media_url))
    return shown


# -- discovery and services -------------------------------------------------------------------------
@router.get("/discovery.{format}", summary="Service discovery")
def discovery(request: Request, ctx: CtxDep, session: SessionDep, format: Format) -> Response:
    def work(fmt: str) -> Response:
        changed = session.execute(select(func.max(Category.updated_at))).scalar()
        changeset = render.w3(changed, _zone(ctx)) or "1970-01-01T00:00:00Z"
        base = str(request.base_url).rstrip("/")
        return render.document(fmt, "discovery", {
            "changeset": changeset,
            "contact": "CityWeave: ask the operators of this installation (see /docs for the native API)",
            "key_service": ("POST requires an api_key: an API key (cwk_…) of a CityWeave service account, "
                            "issued by an administrator at POST /api/v1/users/{id}/api-keys"),
            "endpoints": [{
                "specification": SPECIFICATION,
                "url": base + PREFIX,
                "changeset": changeset,
                "type": "production" if ctx.settings.mode == "production" else "test",
                "formats": ["text/xml", "application/json"],
            }],
        })
    return _answer(format, session, work)


@router.get("/services.{format}", summary="GET Service List: the work-order categories")
def services(session: SessionDep, format: Format, locale: Lang = None, jurisdiction_id: Jurisdiction = None,
             accept_language: AcceptLanguage = None) -> Response:
    lang = params.language({"locale": locale or ""}, accept_language)
    return _answer(format, session, lambda fmt: render.document(
        fmt, "services", [render.service(c, lang) for c in service.list_categories(session)]))


@router.get("/services/{service_code}.{format}", summary="GET Service Definition")
def service_definition(session: SessionDep, service_code: str, format: Format,
                       jurisdiction_id: Jurisdiction = None) -> Response:
    def work(fmt: str) -> Response:
        category = session.get(Category, service_code)
        if category is None or not category.active:
            raise Open311Error(404, f"service_code {service_code[:50]!r} was not found")
        return render.document(fmt, "service_definition", render.service_definition(category))
    return _answer(format, session, work)


# -- requests ---------------------------------------------------------------------------------------
async def _form(request: Request) -> FormData | Open311Error:
    """The POST body: ``application/x-www-form-urlencoded`` as the spec says."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not content_type and not await request.body():
        return FormData()  # nothing sent: answered as a missing api_key
    if content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return bad("send the request as application/x-www-form-urlencoded")
    try:
        return await request.form(max_files=0, max_fields=200)
    except Exception:  # noqa: BLE001 - whatever the parser refuses is the client's error
        return bad("the form could not be read")


_FORM_DOC = {"requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
    "type": "object", "required": ["api_key", "service_code"],
    "properties": {name: {"type": "string"} for name in (
        "api_key", "jurisdiction_id", "service_code", "lat", "long", "address_string", "address_id",
        "email", "device_id", "account_id", "first_name", "last_name", "phone", "description", "media_url")},
    "additionalProperties": {"type": "string", "description": "attribute[code]=value (no service has any)"},
}}}}}


@router.post("/requests.{format}", summary="POST Service Request (api_key required)", openapi_extra=_FORM_DOC,
             responses={403: {"description": "missing or invalid api_key"}})
def create_request(request: Request, ctx: CtxDep, session: SessionDep, format: Format,
                   form: Annotated[FormData | Open311Error, Depends(_form)], locale: Lang = None,
                   accept_language: AcceptLanguage = None) -> Response:
    lang = params.language({"locale": locale or ""}, accept_language)

    def work(fmt: str) -> Response:
        if isinstance(form, Open311Error):
            raise form
        call = Call(ctx=ctx, session=session, principal=_gateway(ctx, session, form, request))
        data = params.submission(form)
        try:
            category = service.get_category(session, data.category_id)
        except Invalid:
            raise Open311Error(404, f"service_code {data.category_id!r} was not found") from None
        order = service.submit(call, data, channel=Channel.OPEN311)
        return render.document(fmt, "service_requests", [{
            "service_request_id": order.id,
            "service_notice": _notice(category, order, lang),
        }])
    return _answer(format, session, work)


def _gateway(ctx: AppContext, session: Session, form: FormData, request: Request) -> Any:
    """The caller: an API key (``cwk_…``) of an active service account, or 403."""
    keys = [v for v in form.getlist("api_key") if isinstance(v, str)] or request.query_params.getlist("api_key")
    key = keys[0].strip() if len(keys) == 1 else ""
    if not key:
        raise Open311Error(403, "api_key is missing -- can't proceed with create_request")
    if not key.startswith(API_KEY_PREFIX) or len(key) > 200:
        raise Open311Error(403, "api_key is not a CityWeave API key -- can't proceed with create_request")
    principal = principal_for_token(ctx, session, key, source_ip=client_ip(request))
    user = session.get(User, principal.user_id)
    if user is None or not user.is_service_account:
        raise Open311Error(403, "api_key does not belong to a service account -- can't proceed with create_request")
    return principal


def _notice(category: Category, order: WorkOrder, lang: str) -> str:
    if lang == "en":
        text = (f"Received as {order.number}. {category.name_en}: a response within "
                f"{category.accept_within_minutes} minutes, resolution within {category.resolve_within_hours} hours.")
        return text if order.public else text + " This kind of matter is not shown in public listings."
    text = (f"已受理，工单号 {order.number}。{category.name}：{category.accept_within_minutes} 分钟内响应，"
            f"{category.resolve_within_hours} 小时内办结。")
    return text if order.public else text + "此类事项不在公开列表中展示。"


@router.get("/tokens/{token}.{format}", summary="GET service_request_id from a token (tokens = ids)")
def token(ctx: CtxDep, session: SessionDep, token: str, format: Format, jurisdiction_id: Jurisdiction = None) -> Response:
    def work(fmt: str) -> Response:
        try:
            order = public.get(session, token[:40])
        except NotFound:
            raise Open311Error(404, f"token {token[:50]!r} was not found") from None
        return render.document(fmt, "service_requests", [{"service_request_id": order.id, "token": token}])
    return _answer(format, session, work)


@router.get("/requests.{format}", summary="GET Service Requests (public ones; page/page_size extension)")
def requests(
    ctx: CtxDep, session: SessionDep, format: Format,
    service_request_id: Annotated[str | None, Query(description="comma list; overrides the other filters")] = None,
    service_code: Annotated[str | None, Query(description="comma list")] = None,
    start_date: Annotated[str | None, Query(description="W3C, e.g. 2010-01-01T00:00:00Z")] = None,
    end_date: Annotated[str | None, Query(description="W3C; at most 90 days after start_date")] = None,
    status: Annotated[str | None, Query(description="open, closed (comma list)")] = None,
    page: Annotated[str | None, Query(description="extension: 1, 2, …")] = None,
    page_size: Annotated[str | None, Query(description="extension: at most 1000 (the default)")] = None,
    locale: Lang = None, jurisdiction_id: Jurisdiction = None, accept_language: AcceptLanguage = None,
) -> Response:
    lang = params.language({"locale": locale or ""}, accept_language)
    zone = _zone(ctx)

    def work(fmt: str) -> Response:
        paging = params.paging({"page": page or "", "page_size": page_size or ""})
        ids = params.comma_list("service_request_id", service_request_id)
        if ids:
            orders = public.find(session, ids)[paging.offset:paging.offset + paging.page_size]
        else:
            wanted = params.comma_list("status", status, pattern=r"^(?i:open|closed)$")
            statuses = [s for w in {w.lower() for w in wanted} for s in render.NATIVE_STATUSES[w]]
            start, end = params.window(params.w3_datetime("start_date", start_date, zone),
                                       params.w3_datetime("end_date", end_date, zone), ctx.clock.now())
            orders = public.search(session, start=start, end=end,
                                   category_ids=params.comma_list("service_code", service_code),
                                   statuses=statuses, offset=paging.offset, limit=paging.page_size)
        return render.document(fmt, "service_requests", _requests(session, orders, lang, zone))
    return _answer(format, session, work)


@router.get("/requests/{service_request_id}.{format}", summary="GET Service Request (a public one)")
def request_by_id(ctx: CtxDep, session: SessionDep, service_request_id: str, format: Format,
                  locale: Lang = None, jurisdiction_id: Jurisdiction = None,
                  accept_language: AcceptLanguage = None) -> Response:
    lang = params.language({"locale": locale or ""}, accept_language)

    def work(fmt: str) -> Response:
        try:
            order = public.get(session, service_request_id[:40])
        except NotFound:
            raise Open311Error(404, f"service_request_id {service_request_id[:50]!r} was not found") from None
        return render.document(fmt, "service_requests", _requests(session, [order], lang, _zone(ctx)))
    return _answer(format, session, work)


# -- service request updates (mySociety's extension) ------------------------------------------------
@router.get("/servicerequestupdates.{format}", summary="GET Service Request Updates (extension)")
def request_updates(
    ctx: CtxDep, session: SessionDep, format: Format,
    start_date: Annotated[str | None, Query(description="W3C")] = None,
    end_date: Annotated[str | None, Query(description="W3C")] = None,
    page: Annotated[str | None, Query(description="extension: 1, 2, …")] = None,
    page_size: Annotated[str | None, Query(description="extension: at most 1000 (the default)")] = None,
    locale: Lang = None, jurisdiction_id: Jurisdiction = None, accept_language: AcceptLanguage = None,
) -> Response:
    """Public steps and department replies of public requests, oldest first."""
    lang = params.language({"locale": locale or ""}, accept_language)
    zone = _zone(ctx)

    def work(fmt: str) -> Response:
        paging = params.paging({"page": page or "", "page_size": page_size or ""})
        start, end = params.window(params.w3_datetime("start_date", start_date, zone),
                                   params.w3_datetime("end_date", end_date, zone), ctx.clock.now())
        events = public.updates(session, start=start, end=end, offset=paging.offset, limit=paging.page_size)
        return render.document(fmt, "service_request_updates",
                               [render.update(e, lang=lang, zone=zone) for e in events])
    return _answer(format, session, work)
