"""The page routes: sign-in and sign-out, preferences, the staff console and the resident home.

Each page builds the signed-in person's ``Call`` (from the session cookie) and asks the domain
services, exactly as the API routers do; templates only lay out what they are given.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import Integer, func, select
from sqlalchemy.orm import Session

from cityweave.accounts import service as accounts
from cityweave.accounts.models import Role
from cityweave.alarms import service as alarms
from cityweave.alarms.models import Alarm, AlarmStatus
from cityweave.api.routers.alarms import publish_after_commit
from cityweave.authz import policy
from cityweave.authz.policy import Action, Principal, Resource, Unauthorized
from cityweave.context import AppContext, Call
from cityweave.devices.registry.models import Device, DeviceStatus
from cityweave.errors import AuthenticationFailed, CityWeaveError, Invalid
from cityweave.i18n.fields import field_error_message
from cityweave.listing import PageRequest
from cityweave.people import welfare
from cityweave.web import i18n
from cityweave.web.render import Renderer
from cityweave.web.session import (
    CSRF_FIELD,
    CSRF_HEADER,
    LANG_COOKIE,
    LARGE_COOKIE,
    SESSION_COOKIE,
    UNSAFE_METHODS,
    clear_session,
    csrf_ok,
    csrf_token,
    set_preference,
    set_session,
)
from cityweave.workorders import service as workorders
from cityweave.workorders.models import OPEN_STATUSES

router = APIRouter(include_in_schema=False)
STAFF_ROLES = {Role.GRID_WORKER, Role.PROPERTY_STAFF, Role.COMMUNITY_ADMIN, Role.DEPARTMENT_OFFICER,
               Role.SERVICE_PROVIDER, Role.CITY_OPERATOR, Role.PLATFORM_ADMIN}


class SignInRequired(Exception):
    """Raised by page dependencies; answered with a redirect to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


class CsrfFailed(Exception):
    pass


@dataclass
class Viewer:
    """Who looks at a page, in which language and text size."""

    locale: str
    large: bool
    tv: bool
    call: Call | None = None
    session_token: str | None = None

    @property
    def principal(self) -> Principal | None:
        return self.call.principal if self.call else None


def _ctx(request: Request) -> AppContext:
    return request.app.state.ctx


def _db(request: Request) -> Iterator[Session]:
    ctx = _ctx(request)
    with ctx.db.session() as session:
        if request.method in UNSAFE_METHODS:
            ctx.db.write_first(session)
        yield session


DbDep = Annotated[Session, Depends(_db, scope="function")]


def _viewer(request: Request, session: DbDep) -> Viewer:
    ctx = _ctx(request)
    token = request.cookies.get(SESSION_COOKIE)
    call = None
    if token and len(token) <= 200:
        try:
            principal = accounts.principal_for_token(ctx, session, token, source_ip=_ip(request))
            if principal.via == "session":
                call = Call(ctx, session, principal)
        except AuthenticationFailed:
            call = None
    user_locale = call.principal.locale if call else None
    locale = i18n.negotiate(request.cookies.get(LANG_COOKIE), user_locale, request.headers.get("accept-language"))
    large = request.cookies.get(LARGE_COOKIE) == "1"
    viewer = Viewer(locale=locale, large=large, tv=request.query_params.get("tv") == "1", call=call,
                    session_token=token if call else None)
    request.state.viewer = viewer
    return viewer


ViewerDep = Annotated[Viewer, Depends(_viewer)]


async def _signed_in(request: Request, viewer: ViewerDep) -> Viewer:
    if viewer.call is None:
        raise SignInRequired(request.url.path)
    if request.method in UNSAFE_METHODS:
        form = await request.form() if "form" in request.headers.get("content-type", "") else {}
        presented = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)
        if not csrf_ok(_ctx(request), viewer.session_token or "", presented if isinstance(presented, str) else None):
            raise CsrfFailed()
    return viewer


SignedIn = Annotated[Viewer, Depends(_signed_in)]


def _ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def _render(request: Request, viewer: Viewer, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    renderer: Renderer = request.app.state.page_renderer
    csrf = csrf_token(_ctx(request), viewer.session_token) if viewer.session_token else ""
    html = renderer.render(template, viewer.locale, viewer=viewer, csrf=csrf, request_path=request.url.path,
                           **values)
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


class PageRefused(Exception):
    """A domain error (or invalid input) on a page: answered with an error page in the viewer's
    language and the error's status (404 outside the viewer's view, 403, 409, 422)."""

    def __init__(self, status: int, detail: str = "", fields: list[tuple[str, dict[str, Any]]] | None = None) -> None:
        self.status = status
        self.detail = detail
        # (field, Pydantic error) pairs: worded in the viewer's language when the page is drawn
        self.fields = fields or []


def refuse(exc: Exception) -> PageRefused:
    if isinstance(exc, Invalid) and exc.errors and all(e.error for e in exc.errors):
        return PageRefused(exc.status, exc.detail,
                           [(e.pointer.rsplit("/", 1)[-1], e.error) for e in exc.errors if e.error])
    if isinstance(exc, CityWeaveError):
        return PageRefused(exc.status, exc.detail)
    if isinstance(exc, Unauthorized):  # hidden: answered as if the object did not exist
        return PageRefused(404 if exc.hidden else 403, "" if exc.hidden else str(exc))
    if isinstance(exc, ValidationError):
        fields = [(next((str(p) for p in reversed(err.get("loc", ())) if isinstance(p, str)), ""), dict(err))
                  for err in exc.errors(include_url=False)]
        return PageRefused(422, str(exc).splitlines()[0] if str(exc) else "", fields)
    return PageRefused(422, str(exc).splitlines()[0] if str(exc) else "")


def _field_problems(fields: list[tuple[str, dict[str, Any]]], locale: str) -> str:
    """"description: 至少需要 1 个字符。" per field, in the viewer's language."""
    colon, sep = ("：", "；") if locale == "zh-CN" else (": ", "; ")
    return sep.join(f"{name}{colon}{field_error_message(err, locale)}" if name else field_error_message(err, locale)
                    for name, err in fields)


def staff_call(viewer: Viewer) -> Call:
    """The console is for staff; residents have their home (403, never another family's data)."""
    assert viewer.call is not None
    if not viewer.call.principal.roles & STAFF_ROLES:
        raise PageRefused(403, "the console is for staff")
    return viewer.call


def is_staff(principal: Principal | None) -> bool:
    return bool(principal and principal.roles & STAFF_ROLES)


def _home_of(principal: Principal) -> str:
    return "/console" if principal.roles & STAFF_ROLES else "/home"


def _safe_next(next_path: str | None) -> str | None:
    # Only our own absolute paths: never another site, never a scheme-relative URL.
    if next_path and next_path.startswith("/") and not next_path.startswith("//") and "\\" not in next_path:
        return next_path
    return None


# -- sign-in and preferences -------------------------------------------------------------------------
@router.get("/", response_class=HTMLResponse)
def root(viewer: ViewerDep) -> Response:
    if viewer.call is None:
        return RedirectResponse("/signin", status_code=303)
    return RedirectResponse(_home_of(viewer.call.principal), status_code=303)


@router.get("/signin", response_class=HTMLResponse)
def signin_page(request: Request, viewer: ViewerDep, next: str | None = None) -> Response:
    if viewer.call is not None:
        return RedirectResponse(_safe_next(next) or _home_of(viewer.call.principal), status_code=303)
    return _render(request, viewer, "signin.html", next=_safe_next(next) or "")


@router.post("/signin", response_class=HTMLResponse)
def signin(
    request: Request, viewer: ViewerDep, session: DbDep,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    ctx = _ctx(request)
    try:
        user = accounts.authenticate_password(ctx, session, username.strip(), password, source_ip=_ip(request))
    except AuthenticationFailed as failed:
        session.commit()  # the failure counter and the audit record stay, as for the API
        locked = "locked" in failed.detail
        return _render(request, viewer, "signin.html", status_code=401, next=_safe_next(next) or "",
                       error="locked" if locked else "wrong", username=username[:64])
    token = accounts.issue_session(ctx, session, user, source_ip=_ip(request))
    principal = Principal.from_user(user, via="session")
    response = RedirectResponse(_safe_next(next) or _home_of(principal), status_code=303)
    set_session(response, request, token, ctx.settings.session_hours * 3600)
    if viewer.locale != user.locale and not request.cookies.get(LANG_COOKIE):
        set_preference(response, request, LANG_COOKIE, user.locale if user.locale in i18n.LOCALES else i18n.DEFAULT)
    return response


@router.post("/signout")
def signout(request: Request, viewer: SignedIn, session: DbDep,
            everywhere: Annotated[bool, Form()] = False) -> Response:
    ctx = _ctx(request)
    assert viewer.call is not None and viewer.session_token is not None
    if everywhere:
        accounts.revoke_all_for_user(ctx, session, viewer.call.principal.user_id)
    else:
        accounts.revoke_token(ctx, session, viewer.session_token)
    viewer.call.audit("auth.logout", "user", viewer.call.principal.user_id, details={"everywhere": everywhere})
    response = RedirectResponse("/signin", status_code=303)
    clear_session(response, request)
    return response


@router.post("/preferences")
def preferences(
    request: Request,
    lang: Annotated[str | None, Form(max_length=10)] = None,
    large: Annotated[str | None, Form(max_length=1)] = None,
    back: Annotated[str, Form(max_length=300)] = "/",
) -> Response:
    """Language and text size: cookies of the viewer, no account needed (the sign-in page has them
    too). Harmless to forge, so no CSRF token; SameSite=Lax keeps other sites from setting them."""
    response = RedirectResponse(_safe_next(back) or "/", status_code=303)
    if lang in i18n.LOCALES:
        set_preference(response, request, LANG_COOKIE, lang)
    if large in ("0", "1"):
        set_preference(response, request, LARGE_COOKIE, large)
    return response


# -- staff console -----------------------------------------------------------------------------------
def category_names(call: Call, locale: str) -> dict[str, str]:
    """Work-order category id → its name in the viewer's language (inactive ones too: old cases)."""
    return {c.id: (c.name if locale == "zh-CN" else c.name_en)
            for c in workorders.list_categories(call.session, include_inactive=True)}


def _overview(call: Call, locale: str) -> dict[str, Any]:
    session = call.session
    open_alarms = dict(session.execute(
        select(Alarm.severity, func.count()).where(
            Alarm.status.in_([AlarmStatus.RAISED, AlarmStatus.ACKNOWLEDGED, AlarmStatus.DISPATCHED]),
            policy.scope_clause(call.principal, Resource.ALARM, Action.READ),
        ).group_by(Alarm.severity)
    ).all())
    devices = session.execute(
        select(func.count(), func.sum(func.coalesce(Device.online, False).cast(Integer)))
        .where(Device.status.in_([DeviceStatus.CLAIMED, DeviceStatus.ACTIVE]),
               policy.scope_clause(call.principal, Resource.DEVICE, Action.READ))
    ).one()
    recent = alarms.list_alarms(call, PageRequest(limit=10, sort="-last_at"), status="open").items
    orders = workorders.list_work_orders(call, PageRequest(limit=8, sort="resolve_due_at"),
                                         status=list(OPEN_STATUSES))
    overdue = workorders.list_work_orders(call, PageRequest(limit=1), status=list(OPEN_STATUSES), overdue=True).total
    return {
        "open_alarms": {s.value if hasattr(s, "value") else s: n for s, n in open_alarms.items()},
        "devices_total": devices[0] or 0, "devices_online": int(devices[1] or 0),
        "recent_alarms": recent, "work_orders": orders.items, "work_orders_open": orders.total,
        "work_orders_overdue": overdue, "categories": category_names(call, locale),
        "welfare": welfare.welfare_status(call),  # None for roles that do not read care tags
    }


@router.get("/console", response_class=HTMLResponse)
def console(request: Request, viewer: SignedIn) -> Response:
    assert viewer.call is not None
    if not viewer.call.principal.roles & STAFF_ROLES:
        return RedirectResponse("/home", status_code=303)
    return _render(request, viewer, "console/overview.html", **_overview(viewer.call, viewer.locale))


@router.get("/console/overview", response_class=HTMLResponse)
def console_fragment(request: Request, viewer: SignedIn) -> Response:
    """The overview's figures alone: htmx swaps them in when a live event arrives."""
    assert viewer.call is not None
    return _render(request, viewer, "console/_figures.html", **_overview(viewer.call, viewer.locale))


# -- resident home (the rest of it is home.py) -----------------------------------------------------
@router.post("/home/emergency", response_class=HTMLResponse)
def emergency(request: Request, viewer: SignedIn,
              household_id: Annotated[str, Form(max_length=64)]) -> Response:
    """The one-tap emergency call (the page asks to confirm and can cancel for a few seconds)."""
    assert viewer.call is not None
    try:
        change = alarms.emergency_call(viewer.call, household_id)
    except CityWeaveError:
        return _render(request, viewer, "home/_emergency.html", status_code=400, sent=False)
    publish_after_commit(request, viewer.call, change)  # notifications, as the API's emergency call
    return _render(request, viewer, "home/_emergency.html", sent=True)


def sign_in_redirect(request: Request, exc: SignInRequired) -> Response:
    return RedirectResponse(f"/signin?next={quote(exc.next_path)}", status_code=303)


def page_refused(request: Request, exc: PageRefused) -> Response:
    viewer: Viewer | None = getattr(request.state, "viewer", None)
    if viewer is None:
        viewer = Viewer(locale=i18n.negotiate(request.cookies.get(LANG_COOKIE), None,
                                              request.headers.get("accept-language")),
                        large=request.cookies.get(LARGE_COOKIE) == "1", tv=False)
    if exc.fields:
        return _render(request, viewer, "error.html", status_code=exc.status, status=exc.status,
                       detail=_field_problems(exc.fields, viewer.locale), detail_lang=viewer.locale)
    return _render(request, viewer, "error.html", status_code=exc.status, status=exc.status, detail=exc.detail)


def csrf_refused(request: Request, exc: CsrfFailed) -> Response:
    return HTMLResponse("<!doctype html><title>403</title><p>CSRF token missing or wrong.</p>", status_code=403)

