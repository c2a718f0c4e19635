"""Cookie sessions and CSRF protection for the pages.

* ``cw_session``: the session token (kind ``session`` in ``auth_tokens``), HttpOnly, SameSite=Lax,
  Secure whenever the page was served over TLS. Nothing personal is in a URL or a cookie.
* CSRF: a token derived from the session token with a keyed hash (HMAC), sent back in a hidden
  form field ``csrf`` or the ``X-CSRF-Token`` header (htmx). No server-side state: it is valid
  exactly as long as the session is, and useless with any other session.
* Viewer preferences that need no account (language, large text, TV mode) are plain cookies.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request
from fastapi.responses import Response

from cityweave.context import AppContext

SESSION_COOKIE = "cw_session"
LANG_COOKIE = "cw_lang"
LARGE_COOKIE = "cw_large"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _key(ctx: AppContext) -> bytes:
    return ctx.cipher.blind_index("web-csrf", "web.csrf").encode()


def csrf_token(ctx: AppContext, session_token: str) -> str:
    return hmac.new(_key(ctx), session_token.encode(), hashlib.sha256).hexdigest()


def csrf_ok(ctx: AppContext, session_token: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(csrf_token(ctx, session_token), presented or "")


def is_tls(request: Request) -> bool:
    # Behind a reverse proxy, uvicorn's --proxy-headers turns X-Forwarded-Proto into the scheme.
    return request.url.scheme == "https"


def set_session(response: Response, request: Request, token: str, max_age: int) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=max_age, httponly=True, samesite="lax",
                        secure=is_tls(request), path="/")


def clear_session(response: Response, request: Request) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=is_tls(request))


def set_preference(response: Response, request: Request, name: str, value: str) -> None:
    response.set_cookie(name, value, max_age=365 * 24 * 3600, httponly=True, samesite="lax",
                        secure=is_tls(request), path="/")
