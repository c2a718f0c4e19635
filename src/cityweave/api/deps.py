"""Request-scoped dependencies: the app context, a database session and the authenticated caller."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Query, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from pydantic import BaseModel
from sqlalchemy.orm import Session

from cityweave.accounts.service import principal_for_token
from cityweave.authz.policy import Principal
from cityweave.context import AppContext, Call
from cityweave.errors import AuthenticationFailed, Forbidden
from cityweave.listing import MAX_LIMIT, PageRequest
from cityweave.web.session import CSRF_HEADER, SESSION_COOKIE, UNSAFE_METHODS, csrf_ok

T = TypeVar("T")

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False)


def get_ctx(request: Request) -> AppContext:
    return request.app.state.ctx


def get_session(request: Request, ctx: Annotated[AppContext, Depends(get_ctx)]) -> Iterator[Session]:
    """One transaction per request: committed when the endpoint returns, rolled back on error.
    Requests that change things begin as writers (``Database.write_first``), so on SQLite they
    wait for the ingest's batch commits instead of failing with "database is locked"."""
    with ctx.db.session() as session:
        if request.method not in _READ_METHODS:
            ctx.db.write_first(session)
        yield session


_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


# scope="function": the commit runs when the endpoint returns and *before* the response is
# sent, so a failed commit becomes an error answer instead of a 2xx for data that was lost.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def get_principal(
    request: Request,
    ctx: Annotated[AppContext, Depends(get_ctx)],
    session: SessionDep,
    bearer: Annotated[str | None, Depends(oauth2_scheme)],
    api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> Principal:
    token = bearer or api_key
    if not token and (cookie := request.cookies.get(SESSION_COOKIE)):
        # A page's own calls (the live event stream, htmx) ride on the browser session; a
        # cookie is sent by the browser on its own, so changes also need the CSRF token.
        if len(cookie) > 200:
            raise AuthenticationFailed("the session is not valid")
        principal = principal_for_token(ctx, session, cookie, source_ip=client_ip(request))
        if request.method in UNSAFE_METHODS and not csrf_ok(ctx, cookie, request.headers.get(CSRF_HEADER)):
            raise Forbidden("a page's change needs its CSRF token (X-CSRF-Token)")
        return principal
    if not token:
        raise AuthenticationFailed("sign in first: send a bearer token or an API key")
    if len(token) > 200:
        raise AuthenticationFailed("the token is not valid")
    return principal_for_token(ctx, session, token, source_ip=client_ip(request))


def get_call(
    ctx: Annotated[AppContext, Depends(get_ctx)],
    session: SessionDep,
    principal: Annotated[Principal, Depends(get_principal)],
) -> Call:
    return Call(ctx=ctx, session=session, principal=principal)


def page_request(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="items to skip")] = 0,
    sort: Annotated[
        str | None,
        Query(max_length=100, pattern=r"^-?[a-z_]+(,-?[a-z_]+)*$",
              description="comma-separated keys; '-' for descending, e.g. -created_at,name"),
    ] = None,
) -> PageRequest:
    return PageRequest(limit=limit, offset=offset, sort=sort)


CallDep = Annotated[Call, Depends(get_call)]
PageDep = Annotated[PageRequest, Depends(page_request)]
CtxDep = Annotated[AppContext, Depends(get_ctx)]


class PageOut(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int
