"""Signing in, tokens, API keys, users and their role grants.

Tokens are opaque random strings; the database holds only their SHA-256, so a copy of the
database cannot be replayed. Access tokens are short-lived; refresh tokens rotate on every
use and a reused (stolen) refresh token revokes its whole family.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cityweave.accounts.models import ApiKey, AuthToken, Role, RoleGrant, TokenKind, User
from cityweave.accounts.schemas import (
    ApiKeyCreate,
    GrantIn,
    TokenPair,
    UserCreate,
    UserOut,
    UserUpdate,
)
from cityweave.authz.policy import (
    SCOPE_KIND,
    Action,
    Principal,
    Resource,
    Unauthorized,
    can_grant,
    check,
    scope_clause,
)
from cityweave.context import AppContext, Call
from cityweave.db.base import new_id
from cityweave.errors import AuthenticationFailed, Conflict, FieldError, Invalid, NotFound
from cityweave.listing import Page, PageRequest, paginate
from cityweave.places.models import Place
from cityweave.security.passwords import (
    hash_password,
    needs_rehash,
    password_problems,
    verify_password,
)
from cityweave.security.tokens import digest, new_prefixed_secret, row_for_prefixed_secret

ACCESS_PREFIX, REFRESH_PREFIX, SESSION_PREFIX, API_KEY_PREFIX = "cwa_", "cwr_", "cws_", "cwk_"


class InvalidGrant(AuthenticationFailed):
    """Wrong username/password or refresh token: OAuth2's ``invalid_grant`` (answered as 400)."""

    status = 400
    slug = "invalid-grant"


# -- signing in -------------------------------------------------------------------------------------
def authenticate_password(
    ctx: AppContext, session: Session, username: str, password: str, *, source_ip: str | None
) -> User:
    """Check a password, counting failures; lock the account after too many in a window."""
    now = ctx.clock.now()
    s = ctx.settings
    user = session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    locked = user is not None and user.locked_until is not None and user.locked_until > now
    # Always run the hash, even for unknown or locked users: equal timing for every answer.
    ok = verify_password(user.password_hash if user else None, password)
    if user is None or not user.is_active or user.is_service_account:
        _audit_login(ctx, session, None, username, "failure", source_ip, "unknown or inactive user")
        raise InvalidGrant("wrong username or password")
    if locked:
        _audit_login(ctx, session, user, username, "denied", source_ip, "account locked")
        raise InvalidGrant(
            "too many failed sign-ins; the account is locked for a while", locked_until=user.locked_until
        )
    if not ok:
        window = timedelta(minutes=s.lockout_window_minutes)
        if user.first_failed_at is None or now - user.first_failed_at > window:
            user.first_failed_at, user.failed_logins = now, 0
        user.failed_logins += 1
        reason = "wrong password"
        if user.failed_logins >= s.lockout_threshold:
            user.locked_until = now + timedelta(minutes=s.lockout_minutes)
            reason = "wrong password; account locked"
        _audit_login(ctx, session, user, username, "failure", source_ip, reason)
        raise InvalidGrant("wrong username or password")
    user.failed_logins, user.first_failed_at, user.locked_until = 0, None, None
    user.last_login_at = now
    if user.password_hash and needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    _audit_login(ctx, session, user, username, "ok", source_ip, None)
    return user


def _audit_login(
    ctx: AppContext, session: Session, user: User | None, username: str, outcome: str,
    source_ip: str | None, reason: str | None,
) -> None:
    from cityweave.audit import trail

    trail.append(
        session,
        actor=None,
        actor_label=username[:100],
        action="auth.login",
        object_kind="user",
        object_id=user.id if user else None,
        outcome=outcome,
        details={"reason": reason} if reason else {},
        at=ctx.clock.now(),
        source_ip=source_ip,
    )


def issue_tokens(
    ctx: AppContext, session: Session, user: User, *, source_ip: str | None, family: str | None = None
) -> TokenPair:
    now = ctx.clock.now()
    family = family or secrets.token_hex(16)
    access = ACCESS_PREFIX + secrets.token_urlsafe(32)
    refresh = REFRESH_PREFIX + secrets.token_urlsafe(32)
    access_ttl = timedelta(minutes=ctx.settings.access_token_minutes)
    for token, kind, ttl in (
        (access, TokenKind.ACCESS, access_ttl),
        (refresh, TokenKind.REFRESH, timedelta(days=ctx.settings.refresh_token_days)),
    ):
        session.add(
            AuthToken(
                token_hash=digest(token), kind=kind, user_id=user.id, family=family,
                issued_at=now, expires_at=now + ttl, client_ip=source_ip,
            )
        )
    session.flush()
    return TokenPair(access_token=access, refresh_token=refresh, expires_in=int(access_ttl.total_seconds()))


def issue_session(ctx: AppContext, session: Session, user: User, *, source_ip: str | None) -> str:
    """A browser sign-in: one opaque token of kind ``session`` (the web pages keep it in an
    HttpOnly cookie). Same table as API tokens, so sign-out everywhere ends it too."""
    now = ctx.clock.now()
    token = SESSION_PREFIX + secrets.token_urlsafe(32)
    session.add(AuthToken(token_hash=digest(token), kind=TokenKind.SESSION, user_id=user.id,
                          family=secrets.token_hex(16), issued_at=now,
                          expires_at=now + timedelta(hours=ctx.settings.session_hours), client_ip=source_ip))
    session.flush()
    return token


def refresh_tokens(ctx: AppContext, session: Session, refresh_token: str, *, source_ip: str | None) -> TokenPair:
    now = ctx.clock.now()
    row = session.execute(
        select(AuthToken).where(AuthToken.token_hash == digest(refresh_token), AuthToken.kind == TokenKind.REFRESH)
    ).scalar_one_or_none()
    if row is None or row.expires_at <= now:
        raise InvalidGrant("the refresh token is unknown or expired")
    if row.revoked_at is not None:
        # A rotated token came back: someone holds a copy. End every token of that sign-in.
        _revoke_family(session, row.family, now)
        from cityweave.audit import trail

        trail.append(session, actor=None, actor_label="token-reuse", action="auth.refresh_reuse",
                     object_kind="user", object_id=row.user_id, outcome="denied", at=now, source_ip=source_ip)
        raise InvalidGrant("the refresh token was already used; all tokens of this sign-in are revoked")
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        raise InvalidGrant("the account is no longer active")
    _revoke_family(session, row.family, now)
    return issue_tokens(ctx, session, user, source_ip=source_ip, family=row.family)


def revoke_token(ctx: AppContext, session: Session, token: str) -> None:
    """RFC 7009 revocation: revoking any token of a sign-in ends the whole sign-in."""
    row = session.execute(select(AuthToken).where(AuthToken.token_hash == digest(token))).scalar_one_or_none()
    if row is not None:
        _revoke_family(session, row.family, ctx.clock.now())


def revoke_all_for_user(ctx: AppContext, session: Session, user_id: str) -> int:
    """Sign out everywhere."""
    result = session.execute(
        update(AuthToken)
        .where(AuthToken.user_id == user_id, AuthToken.revoked_at.is_(None))
        .values(revoked_at=ctx.clock.now())
    )
    return result.rowcount or 0


def _revoke_family(session: Session, family: str, now: datetime) -> None:
    session.execute(
        update(AuthToken).where(AuthToken.family == family, AuthToken.revoked_at.is_(None)).values(revoked_at=now)
    )


def principal_for_token(ctx: AppContext, session: Session, token: str, *, source_ip: str | None) -> Principal:
    """The caller behind a bearer token (access or session) or an API key."""
    now = ctx.clock.now()
    if token.startswith(API_KEY_PREFIX):
        return _principal_for_api_key(ctx, session, token, source_ip=source_ip)
    row = session.execute(
        select(AuthToken).where(AuthToken.token_hash == digest(token))
    ).scalar_one_or_none()
    if row is None or row.kind is TokenKind.REFRESH:
        raise AuthenticationFailed("the access token is not valid")
    if row.revoked_at is not None:
        raise AuthenticationFailed("the access token was revoked")
    if row.expires_at <= now:
        raise AuthenticationFailed("the access token has expired")
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        raise AuthenticationFailed("the account is no longer active")
    return Principal.from_user(user, via=row.kind.value, source_ip=source_ip)


def _principal_for_api_key(ctx: AppContext, session: Session, key: str, *, source_ip: str | None) -> Principal:
    row = row_for_prefixed_secret(session, ApiKey, key, API_KEY_PREFIX.rstrip("_"), "API key")
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        raise AuthenticationFailed("the API key's account is no longer active")
    row.last_used_at = ctx.clock.now()
    return Principal.from_user(user, via="api_key", source_ip=source_ip)


# -- API keys ---------------------------------------------------------------------------------------
def create_api_key(call: Call, user_id: str, data: ApiKeyCreate) -> tuple[ApiKey, str]:
    user = get_user(call, user_id, Action.UPDATE)
    if any(k.name == data.name and k.revoked_at is None for k in list_api_keys(call, user.id)):
        raise Conflict(f"the account already has a key named {data.name!r}")
    issued = new_prefixed_secret(API_KEY_PREFIX.rstrip("_"))
    key = ApiKey(prefix=issued.prefix, secret_hash=issued.secret_hash, name=data.name, user_id=user.id,
                 created_at=call.now())
    call.session.add(key)
    call.session.flush()
    call.audit("api_key.create", "user", user.id, details={"key": issued.prefix, "name": data.name})
    return key, issued.text


def list_api_keys(call: Call, user_id: str) -> list[ApiKey]:
    get_user(call, user_id)
    return list(call.session.execute(select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.id)).scalars())


def revoke_api_key(call: Call, user_id: str, key_id: int) -> None:
    get_user(call, user_id, Action.UPDATE)
    key = call.session.get(ApiKey, key_id)
    if key is None or key.user_id != user_id:
        raise NotFound("no such API key")
    if key.revoked_at is None:
        key.revoked_at = call.now()
        call.audit("api_key.revoke", "user", user_id, details={"key": key.prefix})


# -- users and grants -------------------------------------------------------------------------------
USER_SORTABLE = {"id": User.id, "username": User.username, "created_at": User.created_at}


def get_user(call: Call, user_id: str, action: Action = Action.READ) -> User:
    user = call.session.execute(
        select(User).where(User.id == user_id, scope_clause(call.principal, Resource.USER, Action.READ))
    ).scalar_one_or_none()
    if user is None:
        raise NotFound(f"no user {user_id!r}")
    if action is not Action.READ:
        paths = [g.place_path for g in user.grants if g.place_path] or ["/"]
        # Changing an account needs the right over *every* scope it holds: a community admin
        # must not be able to reset a city operator who also happens to live in the community.
        for path in paths:
            check(call.principal, Resource.USER, action, [path])
        if any(g.place_path is None for g in user.grants) and call.principal.scope_paths(Resource.USER, action) is not None:
            raise Unauthorized("only a platform admin may change an account with a global role")
    return user


def list_users(call: Call, page: PageRequest, *, role: Role | None = None, q: str | None = None) -> Page[User]:
    stmt = select(User).where(scope_clause(call.principal, Resource.USER, Action.READ))
    if role:
        stmt = stmt.where(User.grants.any(RoleGrant.role == role))
    if q:
        stmt = stmt.where(User.username.ilike(f"%{q}%") | User.display_name.ilike(f"%{q}%"))
    return paginate(call.session, stmt, page, USER_SORTABLE, "username")


def create_user(call: Call, data: UserCreate) -> User:
    if not call.principal.may(Resource.USER, Action.CREATE):
        raise Unauthorized("not allowed to create accounts")
    if data.password and (problems := password_problems(data.password)):
        raise Invalid.field("/password", "password needs: " + "; ".join(problems))
    if call.session.execute(select(User.id).where(User.username == data.username)).first():
        raise Conflict(f"the username {data.username!r} is taken", pointer="/username")
    if not data.grants and call.principal.scope_paths(Resource.USER, Action.CREATE) is not None:
        raise Invalid.field("/grants", "give the account at least one role within your scope")
    user = User(
        id=new_id("u"),
        username=data.username,
        password_hash=hash_password(data.password) if data.password else None,
        display_name=data.display_name,
        person_id=data.person_id,
        locale=data.locale,
        is_service_account=data.is_service_account,
        created_at=call.now(),
    )
    call.session.add(user)
    call.session.flush()
    for i, grant in enumerate(data.grants):
        _add_grant(call, user, grant, f"/grants/{i}")
    call.audit("user.create", "user", user.id, details={"username": user.username,
               "grants": [f"{g.role.value}@{g.place_id or '*'}" for g in data.grants]})
    return user


def update_user(call: Call, user_id: str, data: UserUpdate) -> User:
    user = get_user(call, user_id, Action.UPDATE)
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    for name, value in changes.items():
        setattr(user, name, value)
    if changes.get("is_active") is False:
        revoke_all_for_user(call.ctx, call.session, user.id)
    call.audit("user.update", "user", user.id, details={"fields": sorted(changes)})
    return user


def unlock_user(call: Call, user_id: str) -> User:
    user = get_user(call, user_id, Action.UPDATE)
    user.failed_logins, user.first_failed_at, user.locked_until = 0, None, None
    call.audit("user.unlock", "user", user.id)
    return user


def set_password(call: Call, user_id: str, new_password: str, *, current_password: str | None = None) -> None:
    own = user_id == call.principal.user_id
    user = get_user(call, user_id, Action.READ if own else Action.UPDATE)
    if own and not verify_password(user.password_hash, current_password or ""):
        raise Invalid.field("/current_password", "the current password is wrong")
    if problems := password_problems(new_password):
        raise Invalid.field("/new_password", "password needs: " + "; ".join(problems))
    user.password_hash = hash_password(new_password)
    revoke_all_for_user(call.ctx, call.session, user.id)
    call.audit("user.password", "user", user.id, details={"by": "self" if own else "admin"})


def add_grant(call: Call, user_id: str, data: GrantIn) -> RoleGrant:
    user = get_user(call, user_id)
    return _add_grant(call, user, data, "")


def remove_grant(call: Call, user_id: str, grant_id: int) -> None:
    user = get_user(call, user_id)
    grant = next((g for g in user.grants if g.id == grant_id), None)
    if grant is None:
        raise NotFound("no such grant")
    if not can_grant(call.principal, grant.role, grant.place_path):
        raise Unauthorized(f"not allowed to take away the role {grant.role.value} here")
    user.grants.remove(grant)
    revoke_all_for_user(call.ctx, call.session, user.id)
    call.audit("grant.delete", "user", user.id, place_path=grant.place_path,
               details={"role": grant.role.value, "place_id": grant.place_id})


def _add_grant(call: Call, user: User, data: GrantIn, pointer: str) -> RoleGrant:
    place: Place | None = None
    scope_kind = SCOPE_KIND[data.role]
    if scope_kind is None:
        if data.place_id is not None:
            raise Invalid.field(f"{pointer}/place_id", f"the role {data.role.value} has no place scope")
    else:
        if data.place_id is None:
            raise Invalid.field(f"{pointer}/place_id", f"the role {data.role.value} needs a place")
        place = call.session.get(Place, data.place_id)
        if place is None:
            raise Invalid.field(f"{pointer}/place_id", f"no place {data.place_id!r}")
        if scope_kind != "any" and place.kind.value != scope_kind:
            raise Invalid.field(f"{pointer}/place_id", f"the role {data.role.value} is held over a {scope_kind}")
    if data.categories and data.role is not Role.DEPARTMENT_OFFICER:
        raise Invalid([FieldError(f"{pointer}/categories", "only department officers have categories")])
    if not can_grant(call.principal, data.role, place.path if place else None):
        raise Unauthorized(f"not allowed to grant the role {data.role.value} here")
    if any(g.role == data.role and g.place_id == data.place_id for g in user.grants):
        raise Conflict("the account already holds this role here")
    grant = RoleGrant(role=data.role, place_id=place.id if place else None,
                      place_path=place.path if place else None, categories=data.categories,
                      created_at=call.now(), created_by=call.principal.user_id)
    user.grants.append(grant)
    call.session.flush()
    call.audit("grant.create", "user", user.id, place_path=grant.place_path,
               details={"role": data.role.value, "place_id": grant.place_id})
    return grant


def user_out(user: User, now: datetime) -> UserOut:
    out = UserOut.model_validate(user)
    out.locked = bool(user.locked_until and user.locked_until > now)
    return out
