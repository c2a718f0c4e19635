"""Response headers for the pages: only our own files may run, nothing may frame us.

Applied to every response that is not JSON, so the API's answers stay as they are. The
policy has no 'unsafe-inline' and no 'unsafe-eval': templates hold no inline script or style,
and htmx runs with eval-based features off (see ``base.html``'s htmx-config).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(self)"),
]


class PageSecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Swagger UI (/docs) is FastAPI's own page with an inline bootstrap script; it keeps
        # the browser's defaults rather than a policy written for our pages.
        if scope["type"] != "http" or scope.get("path", "").startswith("/docs"):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                content_type = next((v for k, v in headers if k == b"content-type"), b"")
                if content_type.startswith(b"text/html"):
                    present = {k for k, _ in headers}
                    headers += [(k, v) for k, v in HEADERS if k not in present]
                    if scope.get("scheme") == "https":
                        headers.append((b"strict-transport-security", b"max-age=31536000"))
                    message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
