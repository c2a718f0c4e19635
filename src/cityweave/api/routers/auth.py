"""Sign-in (OAuth2 password and refresh-token grants), revocation and the caller's own account."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form, Request, status

from cityweave.accounts import service
from cityweave.accounts.schemas import PasswordChange, TokenPair, UserOut
from cityweave.api.deps import CallDep, CtxDep, client_ip
from cityweave.api.problems import Problem
from cityweave.errors import Invalid

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])

_ERRORS = {400: {"model": Problem, "description": "invalid_grant"}, 422: {"model": Problem}}


@router.post("/token", response_model=TokenPair, responses=_ERRORS)
def token(
    request: Request,
    ctx: CtxDep,
    grant_type: Annotated[Literal["password", "refresh_token"], Form()] = "password",
    username: Annotated[str | None, Form(max_length=64)] = None,
    password: Annotated[str | None, Form(max_length=256)] = None,
    refresh_token: Annotated[str | None, Form(max_length=200)] = None,
    scope: Annotated[str, Form(max_length=200)] = "",
) -> TokenPair:
    """OAuth2 token endpoint (RFC 6749 §4.3 and §6), as FastAPI's security tutorial names it."""
    ip = client_ip(request)
    failure: service.InvalidGrant | None = None
    # Own transaction: a failed attempt must be *committed* (counter, lockout, audit), not rolled back.
    with ctx.db.session() as session:
        ctx.db.write_first(session)
        try:
            if grant_type == "password":
                if not username or password is None:
                    raise Invalid.field("/username", "username and password are required")
                user = service.authenticate_password(ctx, session, username, password, source_ip=ip)
                return service.issue_tokens(ctx, session, user, source_ip=ip)
            if not refresh_token:
                raise Invalid.field("/refresh_token", "refresh_token is required")
            return service.refresh_tokens(ctx, session, refresh_token, source_ip=ip)
        except service.InvalidGrant as exc:
            failure = exc
    raise failure


@router.post("/revoke", status_code=status.HTTP_200_OK, responses=_ERRORS)
def revoke(ctx: CtxDep, token: Annotated[str, Form(max_length=200)]) -> dict[str, str]:
    """RFC 7009: always answers 200, whether or not the token existed."""
    with ctx.db.session() as session:
        ctx.db.write_first(session)
        service.revoke_token(ctx, session, token)
    return {"status": "revoked"}


@router.get("/me", response_model=UserOut)
def me(call: CallDep) -> UserOut:
    return service.user_out(service.get_user(call, call.principal.user_id), call.now())


@router.post("/logout-all", responses=_ERRORS)
def logout_all(call: CallDep) -> dict[str, int]:
    """Sign out everywhere: every token of the caller's account stops working."""
    count = service.revoke_all_for_user(call.ctx, call.session, call.principal.user_id)
    call.audit("auth.logout_all", "user", call.principal.user_id)
    return {"revoked": count}


@router.post("/password", status_code=status.HTTP_204_NO_CONTENT, responses=_ERRORS)
def change_password(call: CallDep, body: PasswordChange) -> None:
    service.set_password(call, call.principal.user_id, body.new_password, current_password=body.current_password)
